"""The on-device agent: a request in, calls of declared tools (and a text answer) out.

One run: the call format (calls/formats/, chosen for the model) renders the declarations and
the request -> the model's reply is decoded: at each decision point (call or answer; another
call or the results) the format's marker tokens are compared; a call is decoded under the
schema grammar in the format's syntax, then parsed and validated; only a declared tool with
valid arguments is executed (with a timeout) -> the results go back to the model -> decoding
continues until a text answer or max_steps rounds of calls.

Prefix reuse: the declarations (with the format's instructions and demonstrations) are the same
for every request, so their KV state is computed once per agent, kept as a KVSnapshot and
restored at the start of each run; only the request is prefilled. With cache_dir the snapshot is
also kept on disk (edge_runtime.prefix_cache) so the first request after a restart skips it.
The format's preamble alone (instructions + demonstrations) is also shared between agents of
one model, so a new toolset pays only for its own declarations.

Grounding (calls/grounding.py): while a value is written, tokens that continue a span or a
number of the request get a logit bonus, so values the request contains are easy to produce.

Sessions: each run (and each respond()) holds one session of the model's pool
(Model.acquire_session) from its first token to its last, so agents sharing a model - or one
agent on several threads - queue for a session or use their own, never one another's state.
Decoding drives that session through Session.eval (its public API): free text uses the full
logits; inside a call only the grammar's allowed ids are scored (eval(ids, rows=allowed)), and a
step with a single allowed id is not scored at all - its token is batched into the next eval.
"""
from __future__ import annotations

import contextlib
import threading
import warnings
import weakref
from dataclasses import dataclass, field

import numpy as np

from .calls.formats import CALL_BIAS_KEY, encode_segments, get_format, prefix_ids
from .calls.grammar import CallGrammar, TokenConstraint
from .calls.grounding import Grounding, rules_of
from .calls.schema import declare, validate
from .calls.syntax import END, ParseFailure
from .calls.vocab import Vocab
from .errors import InvalidArgumentError
from .memory import check_agent_budget
from .sampling import Sampler
from .tool_exec import ToolRunner

MAX_PARALLEL = 4          # calls in one model reply
MAX_CALL_TOKENS = 1024    # unconstrained call bodies are cut here (constrained ones are bounded)
TOOL_CHOICES = ("required", "auto", "none")


def model_call_bias(model) -> float:
    """The call bias a model decides with: the one its adapter was chosen with, which a merged
    model carries (CALL_BIAS_KEY: the shipped adapter's was chosen on the generator's dev split,
    `tune`'s on held-out examples of the user's tools), else 0.0, the model's own lean."""
    meta = getattr(getattr(model, "gguf", None), "metadata", None) or {}
    try:
        return float(meta[CALL_BIAS_KEY]) if CALL_BIAS_KEY in meta else 0.0
    except (TypeError, ValueError):   # a fake or odd model: no evidence
        return 0.0


# The preamble's KV state per model, shared by the agents of that model and format. It is kept
# only once a second toolset needs it: a single agent holds its whole prefix anyway, and a board
# should not pay twice for the same positions.
_PREAMBLES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_PREAMBLES_LOCK = threading.Lock()


@dataclass
class AgentResult:
    calls: list = field(default_factory=list)   # [{"name", "arguments", "result"}] in order
    text: str = ""                              # the final text answer ("" if none)
    format: str = ""                            # the call format used


@dataclass
class Turn:
    """One model reply (Agent.respond): text or calls, never executed."""
    text: str = ""
    calls: list = field(default_factory=list)   # [{"name", "arguments"}]
    finish_reason: str = "stop"                 # "stop" | "length" | "tool_calls"
    usage: dict = field(default_factory=dict)


class Decoder:
    """Tokens owed to the session's KV state, evaluated lazily in one batch when logits are
    next needed (forced tokens and the rendered tool results ride along for free)."""

    def __init__(self, session, sampler):
        self.session, self.sampler, self.pending = session, sampler, []
        self.evaluated = 0
        self.keep = None     # after rewind(): the state's first `keep` tokens stay, then pending

    def feed(self, ids):
        self.pending.extend(int(i) for i in ids)

    def position(self) -> int:
        """How many tokens the context holds, evaluated or pending."""
        return (self.session.n_past if self.keep is None else self.keep) + len(self.pending)

    def rewind(self, n):
        """Forget every token after the first n; the state catches up at the next logits()."""
        held = self.session.n_past if self.keep is None else self.keep
        if n >= held:
            self.pending = self.pending[:n - held]
        else:
            self.keep, self.pending = n, []

    def logits(self, rows=None):
        ids, self.pending = self.pending, []
        self.evaluated += len(ids)
        if self.keep is not None:
            # prepare() keeps the state's common prefix and evaluates the rest
            full, self.keep = list(self.session.history[:self.keep]) + ids, None
            out = np.asarray(self.session.prepare(full), np.float32)
            return out if rows is None else out[np.asarray(rows)]
        return np.asarray(self.session.eval(ids, rows=rows), np.float32)

    def choose(self, allowed, bonus=None) -> int:
        """Pick among allowed ids (no eval when there is only one)."""
        if len(allowed) == 1:
            return int(allowed[0])
        rows = np.asarray(allowed, np.int32)
        logits = self.logits(rows)
        if bonus is not None:
            logits = np.add(logits, bonus, out=logits if logits.flags.writeable else None)
        return self.sampler.sample(logits, rows)


def _plain_report(records) -> str:
    """What the tools returned, said plainly (when the model gives no usable answer)."""
    parts = []
    for r in records:
        res = r["result"]
        if isinstance(res, dict) and "error" in res:
            parts.append(f"{r['name']} failed: {res['error']}")
        elif isinstance(res, dict):
            parts.append(f"{r['name']}: " + ", ".join(f"{k} {v}" for k, v in res.items()))
        else:
            parts.append(f"{r['name']}: {res}")
    return "; ".join(parts) + "." if parts else ""


class Agent:
    """er.Agent(model, tools=[callables or OpenAI-style schemas], format=None).

    format: None (chosen for the model: "functiongemma" for FunctionGemma GGUFs, else
    "python"), or a name from edge_runtime.calls.formats.FORMATS.
    tool_choice: "auto" (the model calls or answers: a taught model declines what no tool
    serves), "required" (the first reply is a call) or "none".
    demonstrations: the format's worked examples in the (cached) prefix.
    grounding: bias argument values toward the request's own spans and numbers: True (every
    rule of calls.grounding.RULES), False, or the names of the rules to use.
    call_bias: added to the call token's logit where "auto" decides between a call and an
    answer (call_margin() shows the model's own lean); None: the model's (model_call_bias).
    A schema without a callable is declared to the model but has nothing to execute: its call
    is returned with result None and the run stops there, for the caller to carry out.
    """

    def __init__(self, model, tools, system=None, cache_dir=None, timeout=10.0,
                 tool_choice="auto", constrained=True, max_tokens=48, reuse_prefix=True,
                 format=None, grounding=True, demonstrations=True,
                 call_bias=None):
        if tool_choice not in TOOL_CHOICES:
            raise ValueError(f"tool_choice must be one of {', '.join(TOOL_CHOICES)}")
        self.model, self.system, self.timeout = model, system, timeout
        self.tool_choice, self.constrained, self.max_tokens = tool_choice, constrained, max_tokens
        self.cache_dir, self.reuse_prefix = cache_dir, reuse_prefix
        self.grounding = rules_of(grounding)
        self.call_bias = model_call_bias(model) if call_bias is None else float(call_bias)
        self.format = get_format(format, model, demonstrations)
        tools = list(tools or [])
        self.tools = declare(tools)
        self.schemas = {t["name"]: t["parameters"] for t in self.tools}
        self.functions = {t["name"]: f if callable(f) else None
                          for t, f in zip(self.tools, tools)}
        ToolRunner(self.functions, timeout)     # refuses a bad timeout now, not mid-run
        self.grammar = CallGrammar(self.tools, self.format.syntax)
        # The server's workers share an Agent: what is built on first use is built once, under
        # this lock (the prefix's KV state too: a second session waits, then restores it).
        self._lazy = threading.RLock()
        self._constraint = None
        self._prefix_ids = None    # the declarations' token ids (a prefix of every prompt)
        self.prefix_snapshot = None   # its KV state, once computed or read from cache_dir
        check_agent_budget(model, self)   # MemoryBudgetError; maps the grammar's index now

    @property
    def constraint(self) -> TokenConstraint:
        with self._lazy:
            if self._constraint is None:
                self._constraint = TokenConstraint(self.grammar,
                                                   Vocab.from_tokenizer(self.model.tokenizer),
                                                   self.format.symbol_ids)
            return self._constraint

    # ---- the declarations prefix -------------------------------------------------------------

    def prefix_ids(self) -> list:
        with self._lazy:
            if self._prefix_ids is None:
                self._prefix_ids = prefix_ids(self.format, self.model.tokenizer, self.system,
                                              self.tools)
            return self._prefix_ids

    def _preamble(self, session):
        """Restore the shared preamble state if it is a prefix of ours; returns its length."""
        ids = encode_segments(self.model.tokenizer, self.format.preamble(self.system), True)
        if len(ids) <= 1 or self.prefix_ids()[:len(ids)] != ids:
            return 0
        key = tuple(ids)
        with _PREAMBLES_LOCK:
            cache = _PREAMBLES.setdefault(self.model, {})
            snap, seen = cache.get(key), key in cache
        if snap is None:
            session.reset()
            session.eval(ids, rows=[0])
            with _PREAMBLES_LOCK:   # the second toolset over this preamble: keep it
                cache.clear()
                cache[key] = session.snapshot() if seen else None
        else:
            session.restore(snap)
        return len(ids)

    def _restore_prefix(self, session):
        """Put the declarations' KV state into session: from the agent's snapshot (in memory,
        or its file in cache_dir), else from cache_dir, else computed (and then saved to
        cache_dir). With cache_dir the state is kept only in the file (a FileSnapshot): it is
        read back from the page cache, not held in the process's anonymous memory."""
        from .prefix_cache import PrefixCache, PrefixCacheWarning
        ids = self.prefix_ids()
        if self.prefix_snapshot is not None:
            try:
                session.restore(self.prefix_snapshot)
                return
            except ValueError as e:    # its file changed or became unreadable: recompute
                warnings.warn(f"ignoring the prefix snapshot: {e}", PrefixCacheWarning,
                              stacklevel=4)
                self.prefix_snapshot = None
        cache = None
        if self.cache_dir is not None:
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
        done = self._preamble(session)
        if not done:
            session.reset()
        session.eval(ids[done:], rows=[0])      # only the state matters: score a single row
        if cache is not None and cache.save_session(session) is not None:
            on_disk = cache.load(ids)
            if on_disk is not None:
                session.restore(on_disk)   # the same state; now the session's base
                self.prefix_snapshot = on_disk
                return
        self.prefix_snapshot = session.snapshot()   # no file: kept in memory

    def _session(self):
        """The session a run or reply holds from its first token to its last: one of the
        model's pool (Model.acquire_session, waiting for one to come free), or the model
        itself when it has no sessions (test fakes)."""
        acquire = getattr(self.model, "acquire_session", None)
        return acquire() if acquire is not None else contextlib.nullcontext(self.model)

    def _start(self, session, dec, segments):
        """Load prefix + segments into the session's state (via the prefix snapshot) and leave
        what still has to be evaluated pending in dec."""
        tok = self.model.tokenizer
        prefix = self.prefix_ids()
        rest = encode_segments(tok, segments, False)
        cached = 0
        if self.reuse_prefix and hasattr(session, "restore"):
            with self._lazy:
                self._restore_prefix(session)
            cached = len(prefix)
        else:
            session.reset()
            rest = prefix + rest
        dec.feed(rest)
        return cached + len(rest), cached     # (prompt tokens, of which restored from cache)

    # ---- executing calls --------------------------------------------------------------------

    def dispatch(self, call: dict, runner=None) -> dict:
        """Run one parsed call if - and only if - its tool is declared and its arguments are
        valid; otherwise the error is the result. Returns {"name", "arguments", "result"}.
        runner: the run's ToolRunner (its timeout rule spans the run); a fresh one if None."""
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
                runner = runner or ToolRunner(self.functions, self.timeout)
                result = runner.call(name, args)["result"]
        return {"name": name, "arguments": args, "result": result}

    def _parse_ids(self, ids) -> dict:
        try:
            return self.format.parse(self.format.decode(ids))
        except ParseFailure as e:
            return {"name": None, "arguments": {}, "error": f"malformed call: {e}"}

    # ---- the loop ------------------------------------------------------------------------

    def run(self, request: str, max_steps: int = 4, on_event=None) -> AgentResult:
        with self._session() as session:
            return self._run(session, request, max_steps, on_event)

    def _run(self, session, request, max_steps, on_event) -> AgentResult:
        _check_text(request, "the request")
        if not request.strip():
            raise InvalidArgumentError("the request is empty")
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 0:
            raise InvalidArgumentError(f"max_steps must be an integer >= 0 (0: answer without "
                                       f"calling), got {max_steps!r}")
        emit = on_event or (lambda event: None)
        runner = ToolRunner(self.functions, self.timeout)   # one per run: the timeout rule
        dec = Decoder(session, Sampler())
        self._start(session, dec, self.format.turn([{"role": "user", "content": request}], {}))
        ground = Grounding(request, self.constraint.v, tools=self.tools, rules=self.grounding) \
            if self.grounding else None
        out = AgentResult(format=self.format.name)
        choice = self.tool_choice
        for step in range(max_steps + 1):
            if step == max_steps:
                choice = "none"
            calls, text, finish = self._reply(dec, choice, ground, emit)
            if not calls:
                # an answer that never ends is no answer: say what the tools returned instead
                ran = [c for c in out.calls if c["result"] is not None]
                out.text = text if text and (finish == "stop" or not ran) else _plain_report(ran)
                break
            records, stop = [], False
            for call in calls:
                rec = self.dispatch(call, runner) if "error" not in call else \
                    {"name": None, "arguments": {}, "result": {"error": call["error"]}}
                emit({"type": "call", "name": rec["name"], "arguments": rec["arguments"]})
                out.calls.append(rec)
                if rec["name"] in self.functions and self.functions[rec["name"]] is None \
                        and rec["result"] is None:
                    stop = True   # declared without an implementation: the caller runs it
                    continue
                emit({"type": "result", "name": rec["name"], "result": rec["result"]})
                records.append(rec)
            if stop:
                break
            dec.feed(encode_segments(self.model.tokenizer, self.format.results(records), False))
            choice = "auto"
        emit({"type": "answer", "text": out.text})
        return out

    def respond(self, messages, tool_choice="auto", max_tokens=None, temperature=0.0,
                top_p=1.0, seed=None, stop=None, on_text=None,
                parallel_tool_calls=True) -> Turn:
        """One model reply to an OpenAI-style conversation, without executing anything.
        tool_choice: "auto" | "required" | "none" | {"type": "function", "function":
        {"name": N}}. parallel_tool_calls=False: at most one call."""
        with self._session() as session:
            return self._respond(session, messages, tool_choice, max_tokens, temperature,
                                 top_p, seed, stop, on_text, parallel_tool_calls)

    def _respond(self, session, messages, tool_choice, max_tokens, temperature, top_p, seed,
                 stop, on_text, parallel=True) -> Turn:
        named = None
        if isinstance(tool_choice, dict):
            named = (tool_choice.get("function") or {}).get("name")
            if named not in self.schemas:
                raise ValueError(f"tool_choice names an undeclared tool {named!r}")
            tool_choice = "required"
        if tool_choice not in TOOL_CHOICES:
            raise ValueError(f"tool_choice must be one of {', '.join(TOOL_CHOICES)} or a "
                             "named function")
        names = {}
        convo = []
        for i, m in enumerate(messages):
            if not isinstance(m, dict):
                raise InvalidArgumentError(f"messages[{i}] must be a dict")
            parts = m.get("content")
            for part in parts if isinstance(parts, list) else [parts]:
                text = part.get("text") if isinstance(part, dict) else part
                if isinstance(text, str):
                    _check_text(text, f"messages[{i}].content")
            role = m.get("role")
            if role in ("system", "developer"):
                continue     # the system text is part of the cached prefix (Agent(system=))
            for c in m.get("tool_calls") or []:
                names[c.get("id")] = (c.get("function") or {}).get("name")
            convo.append(m)
        request = " ".join(str(m.get("content") or "") for m in convo if m.get("role") == "user")
        dec = Decoder(session, Sampler(temperature, 0, top_p, seed))
        n_prompt, cached = self._start(session, dec, self.format.turn(convo, names))
        ground = Grounding(request, self.constraint.v, tools=self.tools, rules=self.grounding) \
            if self.grounding and request else None
        limit = self.max_tokens if max_tokens is None else max_tokens
        calls, text, finish = self._reply(dec, tool_choice, ground, None, named=named,
                                          max_tokens=limit, stop=stop, on_text=on_text,
                                          most=MAX_PARALLEL if parallel else 1)
        usage = {"prompt_tokens": n_prompt, "cached_tokens": cached,
                 "completion_tokens": max(0, dec.evaluated + len(dec.pending) - (n_prompt - cached))}
        bad = [c for c in calls if "error" in c]
        calls = [c for c in calls if "error" not in c and not validate(c["arguments"],
                                                                       self.schemas[c["name"]])]
        if bad and not calls:
            raise RuntimeError(bad[0]["error"])
        return Turn(text=text, calls=calls, usage=usage,
                    finish_reason="tool_calls" if calls else finish)

    # ---- one model reply ----------------------------------------------------------------

    def _decide(self, dec, options, bias=None):
        """Which of the marker tokens in options {label: id} the model prefers; bias:
        {label: logit bonus}."""
        labels = list(options)
        ids = np.asarray([options[k] for k in labels], np.int32)
        order = np.argsort(ids)
        bonus = None if not bias else \
            np.asarray([bias.get(labels[i], 0.0) for i in order], np.float32)
        pick = dec.choose(ids[order], bonus)
        return labels[int(np.flatnonzero(ids == pick)[0])]

    def call_margin(self, messages) -> float:
        """How strongly the model leans to a call as its first reply to messages (OpenAI-style,
        as respond() takes them): the call token's logit minus the best alternative's (the
        answer marker in the python format, any other token in FunctionGemma's), before
        call_bias. For choosing call_bias on one's own data."""
        convo = [m for m in messages if m.get("role") not in ("system", "developer")]
        fmt = self.format
        with self._session() as session:
            dec = Decoder(session, Sampler())
            self._start(session, dec, fmt.turn(convo, {}))
            if fmt.answer_id is not None:
                rows = np.asarray(sorted((fmt.call_id, fmt.answer_id)), np.int32)
                got = dict(zip(rows.tolist(), dec.logits(rows).tolist()))
                return got[fmt.call_id] - got[fmt.answer_id]
            logits = dec.logits()
            call = float(logits[fmt.call_id])
            logits[fmt.call_id] = -np.inf
            return call - float(logits.max())

    def _reply(self, dec, choice, ground, emit, named=None, max_tokens=None, stop=None,
               on_text=None, most=MAX_PARALLEL):
        """Decode one model reply: ([calls], text, finish_reason), at most `most` calls. A call
        is {"name", "arguments"} or {"error"} when it could not be read."""
        fmt = self.format
        wants_call = choice == "required"
        if choice == "auto":
            if fmt.answer_id is not None:
                wants_call = self._decide(dec, {"call": fmt.call_id, "answer": fmt.answer_id},
                                          {"call": self.call_bias}) == "call"
            else:   # FunctionGemma: a call starts with its own token, anything else is text
                logits = dec.logits()
                logits[fmt.call_id] += self.call_bias
                wants_call = int(np.argmax(logits)) == fmt.call_id
                if not wants_call:     # these logits start the text answer
                    return [], *self._answer(dec, max_tokens, stop, on_text, emit, logits)
        if not wants_call:
            return [], *self._answer(dec, max_tokens, stop, on_text, emit)
        calls = []
        while True:
            mark = dec.position()
            if ground is not None:
                ground.call_index = len(calls)
            call = self._call(dec, ground, named)
            dec.feed(encode_segments(self.model.tokenizer, fmt.close_call(), False))
            if call in calls:     # the same call again is the model repeating itself: one action,
                dec.rewind(mark)  # and the context holds it once, as its result will say
                break
            calls.append(call)
            if named or len(calls) >= most or "error" in call:
                break
            if self._decide(dec, {"call": fmt.call_id, "results": fmt.result_id}) != "call":
                break
        return calls, "", "tool_calls"

    def _call(self, dec, ground, named):
        fmt = self.format
        tok = self.model.tokenizer
        dec.feed(encode_segments(tok, fmt.open_call(), False))
        ids = []
        if not self.constrained:
            stops = set(fmt.answer_stops) | {fmt.result_id}
            for _ in range(MAX_CALL_TOKENS):
                t = int(np.argmax(dec.logits()))
                dec.feed([t])
                ids.append(t)
                if t in stops or "\n" in tok.token_to_piece(t).decode("utf-8", "replace") \
                        or t == fmt.symbol_ids.get(END):
                    break
            return self._parse_ids(ids)
        c = self.constraint
        st = c.start()
        if named:
            word = self.grammar.sx.call_open + named.encode() + self.grammar.sx.args_open
            st = self.grammar.feed(st, word)
            forced = tok.encode(word.decode(), add_bos=False, special=False)
            dec.feed(forced)
            ids += forced
        written = bytearray(b"".join(c.v.pieces[t] for t in ids))
        while not self.grammar.done(st):
            allowed = c.allowed(st)
            bonus = ground.bonus(c, st, allowed, bytes(written)) if ground is not None else None
            t = dec.choose(allowed, bonus)
            st = c.advance(st, t)
            dec.feed([t])
            ids.append(t)
            written += c.v.pieces[t]
        return self._parse_ids(ids)

    def _answer(self, dec, max_tokens, stop, on_text, emit, logits=None):
        """Free text until the format's stop, a newline (plain-text formats), a stop string,
        a repetition or max_tokens: (text, finish_reason). The answer is never empty: its first
        token may not be the stop (a model leaning to a call, told not to, would stop at once)."""
        fmt, tok = self.format, self.model.tokenizer
        limit = self.max_tokens if max_tokens is None else max_tokens
        if logits is None:
            dec.feed(encode_segments(tok, fmt.open_answer(), False))
        never = np.asarray(sorted(set(fmt.symbol_ids.values()) | {fmt.call_id}
                                  - set(fmt.answer_stops)), np.int64) \
            if fmt.symbol_ids else np.zeros(0, np.int64)
        text, finish = bytearray(), "length"
        stops = [s for s in ([stop] if isinstance(stop, str) else (stop or [])) if s]
        first = np.asarray(sorted(set(fmt.answer_stops) | set(never.tolist())), np.int64)
        for _ in range(limit):
            if logits is None:
                logits = dec.logits()
            logits[first if not text else never] = -np.inf
            t = dec.sampler.sample(logits)
            logits = None
            if t in fmt.answer_stops:
                finish = "stop"
                break
            piece = tok.token_to_piece(t)
            if not fmt.symbol_ids and b"\n" in piece:
                text += piece.split(b"\n")[0]
                finish = "stop"
                break
            dec.feed([t])
            text += piece
            s = text.decode("utf-8", "ignore")
            if on_text is not None:
                on_text(piece.decode("utf-8", "replace"))
            if emit is not None:
                emit({"type": "token", "text": piece.decode("utf-8", "replace")})
            if any(x in s for x in stops) or _repeats(s):
                finish = "stop"
                break
        s = text.decode("utf-8", "replace")
        for x in stops:
            s = s.split(x)[0]
        return s.strip(), finish


def _check_text(s, where):
    if not isinstance(s, str):
        raise InvalidArgumentError(f"{where} must be a str, got {type(s).__name__}")
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgumentError(f"{where} is not valid Unicode (a lone surrogate)") from None


def _repeats(s: str) -> bool:
    """The text has started looping: its last 12+ characters already occurred twice."""
    tail = s[-12:]
    return len(s) >= 36 and len(tail.strip()) >= 6 and s.count(tail) >= 3
