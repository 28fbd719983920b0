"""Call formats as a layer: what the agent says to the model and how the model answers.

A format turns a conversation into segments (formats/segments.py): text, and control ids that
only the format itself places. It names the moments where the model decides (call or answer;
another call or the results), the text that opens a call and an answer, and its call syntax
(calls/syntax.py), from which the grammar and the parser derive. Each format supplies its own
control ids (`symbol_ids`, `call_id`, `answer_id`, `result_id`, `answer_stops`).

    functiongemma  FunctionGemma's own tokens and chat template (formats/functiongemma/)
    python         Python keyword calls in a plain-text log (formats/python.py)
"""
from __future__ import annotations

from typing import Protocol

from ..syntax import Syntax
from .functiongemma.format import FunctionGemmaFormat
from .python import PythonFormat
from .segments import encode_segments, prefix_ids

FORMATS = ("functiongemma", "python")


class CallFormat(Protocol):
    """What the agent, the server and training need of a format."""
    name: str
    syntax: Syntax
    symbol_ids: dict      # the syntax's symbols (string close, call end) that are control ids
    call_id: int          # the token that starts a call where the model decides
    answer_id: int | None   # the token that starts an answer (None: any token but a call's)
    result_id: int        # the token that says "no more calls, results next"
    answer_stops: frozenset

    def prefix(self, system, tools) -> list: ...
    def preamble(self, system) -> list: ...
    def turn(self, messages, names_by_id) -> list: ...
    def open_call(self) -> list: ...
    def close_call(self) -> list: ...
    def open_answer(self) -> list: ...
    def results(self, records) -> list: ...
    def parse(self, text: str) -> dict: ...
    def decode(self, ids) -> str: ...
    def render_call(self, name, arguments) -> str: ...


# A model with an adapter merged in names the call format the adapter taught, and the call bias
# the taught model decides with where its adapter records one (convert.py, agent.py).
CALL_FORMAT_KEY = "edge_runtime.call_format"
CALL_BIAS_KEY = "edge_runtime.call_bias"


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


def get_format(name, model, demonstrations=True) -> CallFormat:
    """The format object for name (None: chosen for the model)."""
    if name is None:
        name = "functiongemma" if is_functiongemma(model) else "python"
    if name == "python":
        return PythonFormat(model.tokenizer, demonstrations)
    if name == "functiongemma":
        return FunctionGemmaFormat(model.tokenizer, demonstrations)
    raise ValueError(f"unknown call format {name!r} (use one of {', '.join(FORMATS)})")


__all__ = ["CALL_BIAS_KEY", "CALL_FORMAT_KEY", "FORMATS", "CallFormat", "FunctionGemmaFormat", "PythonFormat",
           "encode_segments", "get_format", "is_functiongemma", "prefix_ids"]
