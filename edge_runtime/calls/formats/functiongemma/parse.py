"""Model output -> tool calls with typed arguments, plus the plain text around them.

Reads `<start_function_call>call:NAME{key:value,...}<end_function_call>` blocks. Values are
<escape>-wrapped strings, numbers (int when written without '.'/exponent), true/false/null,
[lists] and {objects}. Anything malformed becomes a ParseError in the result; parse() itself
never raises, whatever the input.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ...syntax import CallReader, ParseFailure
from . import tokens as T
from .call_syntax import SYNTAX

_MARKERS = re.compile("|".join(re.escape(m) for m in
                               list(T.FUNCTION_TOKENS) + ["<end_of_turn>", "<eos>"]))


@dataclass
class ParseError:
    """Why a call block could not be read: a message and where (offset in the text)."""
    message: str
    offset: int
    snippet: str = ""


@dataclass
class ParseResult:
    calls: list = field(default_factory=list)    # [{"name": str, "arguments": dict}]
    text: str = ""                               # plain text outside the call blocks
    errors: list = field(default_factory=list)   # [ParseError]


def parse(output, tokenizer=None) -> ParseResult:
    """Calls and text in output: a string, or token ids (then tokenizer is needed)."""
    try:
        text = output if isinstance(output, str) else T.decode(tokenizer, output)
    except Exception as e:  # bad ids or no tokenizer: still an answer, not an exception
        return ParseResult(errors=[ParseError(f"cannot decode output: {e}", 0)])
    result, plain, pos = ParseResult(), [], 0
    while True:
        start = text.find(T.START_CALL, pos)
        plain.append(text[pos:] if start < 0 else text[pos:start])
        if start < 0:
            break
        r = CallReader(SYNTAX, text, start + len(T.START_CALL), T.ESCAPE, T.END_CALL)
        try:
            result.calls.append(r.call())
            pos = r.pos
        except (ParseFailure, RecursionError) as e:
            at = getattr(e, "pos", r.pos)
            msg = str(e) if isinstance(e, ParseFailure) else "nesting too deep"
            result.errors.append(ParseError(msg, at, text[max(start, at - 20):at + 20]))
            # resume after this block's end marker, or at the next call
            ends = [i for i in (text.find(T.END_CALL, at), text.find(T.START_CALL, at))
                    if i >= 0]
            nxt = min(ends) if ends else len(text)
            pos = nxt + len(T.END_CALL) if text.startswith(T.END_CALL, nxt) else nxt
    result.text = _MARKERS.sub("", "".join(plain)).strip()
    return result
