"""Call formats as a layer: what the agent says to the model and how the model answers.

A format turns a conversation into *segments*: plain text (always encoded with special tokens
treated as text, so nothing a user, a tool or a schema supplies can become a control token)
and control token ids that only the format itself places. It names the moments where the
model decides (call or answer; another call or the results), the text that opens a call and an
answer, and its call syntax, from which the grammar and the parser derive.

    functiongemma  FunctionGemma's own tokens and chat template (FunctionGemma GGUFs)
    python         Python keyword calls in a plain-text log (any other Gemma 3 model)
"""
from __future__ import annotations

import json

from ..functiongemma.render import (DEFAULT_SYSTEM, call_arguments, render, render_call,
                                    render_response)
from ..functiongemma import syntax as fg_syntax
from ..functiongemma import tokens as T
from . import python_format as P
from .content import content_text
from .syntax import END, ESC, format_call, parse_call

FORMATS = ("functiongemma", "python")


def encode_segments(tokenizer, segments, add_bos: bool) -> list:
    """Ids of segments: ints are control ids placed by a format, strings are text."""
    ids = [tokenizer.bos_id] if add_bos and tokenizer.bos_id is not None else []
    for s in segments:
        if isinstance(s, int):
            ids.append(s)
        elif s:
            ids.extend(tokenizer.encode(s, add_bos=False, special=False))
    return ids


def prefix_ids(fmt, tokenizer, system, tools) -> list:
    """The ids every prompt of an agent starts with: fmt's instructions, demonstrations and
    the declarations of tools (normalized: calls.schema.declare), after BOS."""
    return encode_segments(tokenizer, fmt.prefix(system, tools), True)


def _content(m) -> str:
    """A message's text; a tool result given as a mapping, as JSON."""
    c = m.get("content")
    return json.dumps(c) if isinstance(c, dict) else content_text(c)


class PythonFormat:
    name = "python"
    syntax = P.SYNTAX
    symbol_ids: dict = {}

    def __init__(self, tokenizer, demonstrations=True):
        tok = tokenizer
        self.tok, self.demonstrations = tok, demonstrations
        first = lambda text: tok.encode(text, add_bos=False, special=False)[0]   # noqa: E731
        # decision tokens: the first token of each line marker after a newline
        self.call_id, self.answer_id, self.result_id = first("Call"), first("Answer"), \
            first("Result")
        self.answer_stops = frozenset(i for i in (tok.eos_id, getattr(tok, "eot_id", None))
                                      if i is not None)

    def prefix(self, system, tools) -> list:
        return [P.render_preamble(system, self.demonstrations) + P.render_functions(tools)]

    def preamble(self, system) -> list:
        return [P.render_preamble(system, self.demonstrations)]

    def turn(self, messages, names_by_id) -> list:
        """The conversation after the prefix, ending where the model speaks next."""
        out = []
        for m in messages:
            role = m.get("role")
            if role == "user":
                out.append(f"{P.REQUEST} {P._one_line(_content(m))}\n")
            elif role == "assistant":
                for c in m.get("tool_calls") or []:
                    out.append(f"{P.CALL} " + format_call(self.syntax, *call_arguments(c)) + "\n")
                text = _content(m)
                if text:
                    out.append(f"{P.ANSWER} {P._one_line(text)}\n")
            elif role == "tool":
                out.append(self.result(_tool_result(m)))
            else:
                raise ValueError(f"unknown message role {role!r}")
        return out

    def open_call(self) -> list:
        return [f"{P.CALL} "]

    def close_call(self) -> list:
        return ["\n"]

    def open_answer(self) -> list:
        return [f"{P.ANSWER}"]

    def result(self, result) -> str:
        return f"{P.RESULT} {P.render_result(result)}\n"

    def results(self, records) -> list:
        return [self.result(r["result"]) for r in records]

    def parse(self, text: str) -> dict:
        return parse_call(self.syntax, text)

    def decode(self, ids) -> str:
        return self.tok.decode(ids)

    def render_call(self, name, arguments) -> str:
        return format_call(self.syntax, name, arguments)


class FunctionGemmaFormat:
    name = "functiongemma"
    syntax = fg_syntax.SYNTAX
    symbol_ids = {ESC: T.ESCAPE_ID, END: T.END_CALL_ID}
    call_id, result_id = T.START_CALL_ID, T.START_RESP_ID

    def __init__(self, tokenizer, demonstrations=True):
        self.tok = tokenizer      # the template has no demonstrations
        self.answer_id = None          # a text answer is any token but a call's
        self.answer_stops = frozenset((T.EOS_ID, T.END_TURN_ID, T.START_RESP_ID))

    def prefix(self, system, tools) -> list:
        return _render([{"role": "developer", "content": system or DEFAULT_SYSTEM}],
                       tools, add_generation_prompt=False)

    def preamble(self, system) -> list:
        return []

    def turn(self, messages, names_by_id) -> list:
        msgs = []
        for m in messages:
            if m.get("role") == "tool" and not m.get("name"):
                m = dict(m, name=names_by_id.get(m.get("tool_call_id"), "unknown"))
            msgs.append(m)
        return _render(msgs, None)

    def open_call(self) -> list:
        return [T.START_CALL_ID]

    def close_call(self) -> list:
        return []

    def open_answer(self) -> list:
        return []

    def results(self, records) -> list:
        return _split("".join(render_response(_protect(r["name"] or "unknown"),
                                                        _protect(r["result"]))
                              for r in records))

    def parse(self, text: str) -> dict:
        return parse_call(self.syntax, text, T.ESCAPE, T.END_CALL)

    def decode(self, ids) -> str:
        return T.decode(self.tok, ids)

    def render_call(self, name, arguments) -> str:
        return render_call(name, arguments)

    def call_segments(self, name, arguments) -> list:
        """A call as the model writes it after open_call(): its body and the end marker."""
        return _split(render_call(_protect(name), _protect(arguments)))[1:]


# Text is data: every string a user, a tool or a schema supplies is rendered with its "<"
# replaced by a private-use mark, so the only control names left in the template's text are the
# template's own; text segments get their "<" back after the split.
_MARK, _LT, _SELF = "\ue000", "\ue000\ue002", "\ue000\ue001"


def _protect(v):
    if isinstance(v, str):
        return v.replace(_MARK, _SELF).replace("<", _LT)
    if isinstance(v, dict):
        return {_protect(k): _protect(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_protect(x) for x in v]
    return v


def _render(messages, tools, add_generation_prompt=True) -> list:
    return _split(render(_protect(messages), _protect(tools),
                                   add_generation_prompt=add_generation_prompt))


def _split(text: str) -> list:
    """Protected FunctionGemma template text -> segments (its control names -> ids)."""
    out = []
    for part in T.SPLIT.split(text):
        if part in T.FUNCTION_TOKENS:
            out.append(T.FUNCTION_TOKENS[part])
        elif part in T.TURN_TOKENS:
            out.append(T.TURN_TOKENS[part])
        elif part:
            out.append(part.replace(_LT, "<").replace(_SELF, _MARK))
    return out


def _tool_result(m):
    c = m.get("content")
    if isinstance(c, str):
        try:
            return json.loads(c)
        except ValueError:
            return c
    return c


# A model with an adapter merged in names the call format the adapter taught (convert.py).
CALL_FORMAT_KEY = "edge_runtime.call_format"


def is_functiongemma(model) -> bool:
    """FunctionGemma GGUFs say so in their name or chat template; a model taught by one of our
    adapters says so in CALL_FORMAT_KEY."""
    g = getattr(model, "gguf", None)
    meta = getattr(g, "metadata", None) or {}
    try:
        if CALL_FORMAT_KEY in meta:
            return str(meta[CALL_FORMAT_KEY]) == "functiongemma"
        name = str(meta.get("general.name", "")) + str(meta.get("general.basename", ""))
        template = str(meta.get("tokenizer.chat_template", ""))
    except Exception:   # noqa: BLE001 - a fake or odd model: no evidence
        return False
    return "functiongemma" in name.lower() or "start_function_call" in template


def get_format(name, model, demonstrations=True):
    """The format object for name (None: chosen for the model)."""
    if name is None:
        name = "functiongemma" if is_functiongemma(model) else "python"
    if name == "python":
        return PythonFormat(model.tokenizer, demonstrations)
    if name == "functiongemma":
        return FunctionGemmaFormat(model.tokenizer, demonstrations)
    raise ValueError(f"unknown call format {name!r} (use one of {', '.join(FORMATS)})")
