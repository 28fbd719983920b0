"""FunctionGemma's format as the agent drives it: its own control tokens and chat template,
unchanged on the wire (FunctionGemma GGUFs, and the models our adapters taught)."""
from __future__ import annotations

from ...syntax import END, ESC, parse_call
from . import tokens as T
from .call_syntax import SYNTAX
from .render import DEFAULT_SYSTEM, render, render_call, render_response


class FunctionGemmaFormat:
    name = "functiongemma"
    syntax = SYNTAX
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
