"""The on-device agent: a request in, calls of declared tools (and a text answer) out.

One run: render the request with the tool declarations -> decode the model turn -> each call
is parsed, validated against its tool's schema and, only if the tool is declared and the
arguments are valid, executed (with a timeout) -> the results go back into the same model
turn as <start_function_response> blocks -> decoding continues until a text answer or
max_steps rounds of calls.

Prefix reuse: the developer turn (system text + tool declarations) is the same for every
request, so its KV state is computed once per agent, kept as a KVSnapshot, and restored at the
start of each run; only the request is prefilled. A snapshot, not a rewind, because sliding-
window rings that wrapped past the prefix cannot be rewound. With cache_dir the snapshot is also
kept on disk (edge_runtime.prefix_cache) so the first request after a restart skips it too.
Models without sessions (test fakes) are simply re-prompted in full.

Decoding drives Model.eval directly (only its public API): free text uses the full logits;
inside a call only the grammar's allowed ids are scored (Model.eval(ids, rows=allowed)), and a
step with a single allowed id is not scored at all - its token is batched into the next eval.
With tool_choice="required" (the default) the first reply is forced to open a call: the base
Gemma 3 270M never opens one by itself. The constraint guarantees a valid call of a declared
tool, not that it is the right tool or the right values.
"""
from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass, field

import numpy as np

from .functiongemma import (DEFAULT_SYSTEM, CallGrammar, TokenConstraint, Vocab, encode,
                            normalize_tool, parse, render, render_response,
                            schema_from_callable, validate)
from .functiongemma import tokens as T

MAX_PARALLEL = 4          # calls in one model reply
MAX_CALL_TOKENS = 1024    # unconstrained call bodies are cut here (constrained ones are bounded)
_NEVER_IN_TEXT = (46, 47, 49, 51, 52)   # function tokens that cannot appear in a text answer


@dataclass
class AgentResult:
    calls: list = field(default_factory=list)   # [{"name", "arguments", "result"}] in order
    text: str = ""                              # the final text answer ("" if none)


class _Decoder:
    """Tokens owed to the model's KV state, evaluated lazily in one batch when logits are
    next needed (forced tokens and the rendered tool results ride along for free)."""

    def __init__(self, model):
        self.model, self.pending = model, []

    def feed(self, ids):
        self.pending.extend(int(i) for i in ids)

    def logits(self, rows=None):
        ids, self.pending = self.pending, []
        return np.asarray(self.model.eval(ids, rows=rows), np.float32)

    def choose(self, allowed) -> int:
        """Greedy pick among allowed ids (no eval when there is only one)."""
        if len(allowed) == 1:
            return int(allowed[0])
        rows = np.asarray(allowed, np.int32)
        return int(rows[int(np.argmax(self.logits(rows)))])


def _call_tool(fn, args, timeout):
    """fn(**args) in a worker thread; an exception or overrun becomes {"error": ...}. A tool
    that overruns keeps running in its (daemon) thread: Python cannot stop it."""
    box = {}

    def work():
        try:
            box["value"] = fn(**args)
        except BaseException as e:  # the tool's failure is the model's input, not ours
            box["error"] = f"{type(e).__name__}: {e}"

    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        return {"error": f"timed out after {timeout:g} s"}
    return {"error": box["error"]} if "error" in box else box.get("value")


def _plain(v):
    """A tool result reduced to what the format can carry (str, number, bool, None, list,
    dict with string keys)."""
    if v is None or isinstance(v, (str, bool, int, float)):
        return v
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return str(v)


class Agent:
    """er.Agent(model, tools=[callables or OpenAI-style schemas]).

    A schema without a callable is declared to the model but has nothing to execute: its call
    is returned with result None and the run stops there, for the caller to carry out.
    """

    def __init__(self, model, tools, system=None, cache_dir=None, timeout=10.0,
                 tool_choice="required", constrained=True, max_tokens=96, reuse_prefix=True):
        if tool_choice not in ("required", "auto"):
            raise ValueError("tool_choice must be 'required' or 'auto'")
        self.model, self.system, self.timeout = model, system or DEFAULT_SYSTEM, timeout
        self.tool_choice, self.constrained, self.max_tokens = tool_choice, constrained, max_tokens
        self.cache_dir, self.reuse_prefix = cache_dir, reuse_prefix
        self.tools, self.schemas, self.functions = [], {}, {}
        for t in tools or []:
            spec = schema_from_callable(t) if callable(t) else t
            norm = normalize_tool(spec)
            if norm["name"] in self.schemas:
                raise ValueError(f"tool {norm['name']!r} is declared twice")
            self.tools.append({"type": "function", "function": norm})
            self.schemas[norm["name"]] = norm["parameters"]
            self.functions[norm["name"]] = t if callable(t) else None
        if not self.tools:
            raise ValueError("an agent needs at least one tool")
        self.grammar = CallGrammar(self.tools)
        self._constraint = None
        self._prefix_ids = None    # the developer turn's token ids (a prefix of every prompt)
        self.prefix_snapshot = None   # its KV state, once computed or read from cache_dir

    @property
    def constraint(self) -> TokenConstraint:
        if self._constraint is None:
            self._constraint = TokenConstraint(self.grammar, Vocab.from_tokenizer(self.model.tokenizer))
        return self._constraint

    def prompt(self, request: str) -> str:
        return render([{"role": "developer", "content": self.system},
                       {"role": "user", "content": request}], self.tools)

    # ---- the declarations prefix -------------------------------------------------------------

    def prefix_ids(self) -> list:
        """Ids of the developer turn. It ends with "<end_of_turn>\n" and the next text is always
        the special <start_of_turn>, where the tokenizer splits, so these ids are a true prefix
        of every request's prompt ids (run() still checks that before relying on it)."""
        if self._prefix_ids is None:
            text = render([{"role": "developer", "content": self.system}], self.tools,
                          add_generation_prompt=False)
            self._prefix_ids = encode(self.model.tokenizer, text, add_bos=True)
        return self._prefix_ids

    def _restore_prefix(self, session):
        """Put the declarations' KV state into session: from memory, else from cache_dir, else
        computed (and then saved to cache_dir)."""
        if self.prefix_snapshot is not None:
            session.restore(self.prefix_snapshot)
            return
        ids = self.prefix_ids()
        cache = None
        if self.cache_dir is not None:
            from .prefix_cache import PrefixCache, PrefixCacheWarning
            cache = PrefixCache(self.cache_dir, self.model)
            snap = cache.load(ids)
            if snap is not None:
                try:
                    session.restore(snap)
                    self.prefix_snapshot = snap
                    return
                except ValueError as e:
                    warnings.warn(f"ignoring prefix snapshot {cache.path_for(ids)}: {e}",
                                  PrefixCacheWarning, stacklevel=4)
        session.reset()
        session.eval(ids, rows=[0])      # only the state matters: score a single row
        self.prefix_snapshot = session.snapshot()
        if cache is not None:
            cache.save(self.prefix_snapshot)

    def _start(self, dec, ids):
        """Load the prompt ids into the model's state (via the prefix snapshot when it applies)
        and leave what still has to be evaluated pending in dec."""
        session = getattr(self.model, "session", None)
        n = len(self.prefix_ids()) if self.reuse_prefix and session is not None else 0
        if 0 < n < len(ids) and ids[:n] == self.prefix_ids():
            self._restore_prefix(session)
            dec.feed(ids[n:])
        else:
            self.model.reset()
            dec.feed(ids)

    # ---- executing calls --------------------------------------------------------------------

    def dispatch(self, call: dict) -> dict:
        """Run one parsed call if - and only if - its tool is declared and its arguments are
        valid; otherwise the error is the result. Returns {"name", "arguments", "result"}."""
        name, args = call.get("name"), call.get("arguments")
        if name not in self.schemas:
            result = {"error": f"unknown tool {name!r}"}
        else:
            errors = validate(args, self.schemas[name])
            if errors:
                result = {"error": "invalid arguments: " + "; ".join(errors)}
            elif self.functions[name] is None:
                result = None
            else:
                result = _plain(_call_tool(self.functions[name], args, self.timeout))
        return {"name": name, "arguments": args, "result": result}

    def _dispatch_ids(self, ids) -> dict:
        tok = self.model.tokenizer
        parsed = parse([T.START_CALL_ID] + list(ids), tok)
        if parsed.errors or len(parsed.calls) != 1:
            why = parsed.errors[0].message if parsed.errors else "no call found"
            return {"name": None, "arguments": {}, "result": {"error": f"malformed call: {why}"}}
        return self.dispatch(parsed.calls[0])

    # ---- the loop ------------------------------------------------------------------------

    def run(self, request: str, max_steps: int = 4, on_event=None) -> AgentResult:
        emit = on_event or (lambda event: None)
        tok = self.model.tokenizer
        dec = _Decoder(self.model)
        self._start(dec, encode(tok, self.prompt(request), add_bos=True))
        out = AgentResult()
        for step in range(max_steps + 1):
            force = self.tool_choice == "required" and step == 0
            text, calls = self._reply(dec, force, can_call=step < max_steps, emit=emit)
            if not calls:
                out.text = text.strip()
                break
            responses, stop = [], False
            for ids in calls:
                rec = self._dispatch_ids(ids)
                emit({"type": "call", "name": rec["name"], "arguments": rec["arguments"]})
                out.calls.append(rec)
                if rec["name"] in self.functions and self.functions[rec["name"]] is None \
                        and rec["result"] is None:
                    stop = True   # declared without an implementation: the caller runs it
                    continue
                emit({"type": "result", "name": rec["name"], "result": rec["result"]})
                responses.append(render_response(rec["name"] or "unknown", rec["result"]))
            if stop:
                break
            dec.feed(encode(tok, "".join(responses), add_bos=False))
        emit({"type": "answer", "text": out.text})
        return out

    def _reply(self, dec, force, can_call, emit):
        """Decode until the model turn pauses: returns (text, [call token ids])."""
        tok = self.model.tokenizer
        text, calls, n_text = bytearray(), [], 0
        mode = "open" if force else "text"
        while True:
            if mode == "open":                       # a call starts: <start_function_call>
                dec.feed([T.START_CALL_ID])
                st, ids, mode = self.constraint.start() if self.constrained else None, [], "call"
            elif mode == "call":
                if self.constrained:
                    t = dec.choose(self.constraint.allowed(st))
                    st = self.constraint.advance(st, t)
                    finished = self.grammar.done(st)
                else:
                    t = int(np.argmax(dec.logits()))
                    finished = t in (T.END_CALL_ID, T.EOS_ID, T.END_TURN_ID, T.START_RESP_ID) \
                        or len(ids) >= MAX_CALL_TOKENS
                dec.feed([t])
                ids.append(t)
                if finished:
                    calls.append(ids)
                    mode = "after"
            elif mode == "after":                    # another call, or the results are due
                options = [T.START_RESP_ID, T.END_TURN_ID]
                if len(calls) < MAX_PARALLEL:
                    options.append(T.START_CALL_ID)
                if dec.choose(sorted(options)) != T.START_CALL_ID:
                    return text.decode("utf-8", "replace"), calls
                mode = "open"
            else:                                    # free text
                if n_text >= self.max_tokens:
                    return text.decode("utf-8", "replace"), calls
                logits = dec.logits()
                logits[list(_NEVER_IN_TEXT)] = -np.inf
                if not can_call:
                    logits[T.START_CALL_ID] = -np.inf
                t = int(np.argmax(logits))
                if t == T.START_CALL_ID:
                    mode = "open"
                    continue
                if t in (T.EOS_ID, T.END_TURN_ID, T.START_RESP_ID):
                    return text.decode("utf-8", "replace"), calls
                dec.feed([t])
                piece = tok.token_to_piece(t)
                text += piece
                n_text += 1
                emit({"type": "token", "text": piece.decode("utf-8", "replace")})
