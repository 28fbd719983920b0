"""Model output -> tool calls with typed arguments, plus the plain text around them.

Reads `<start_function_call>call:NAME{key:value,...}<end_function_call>` blocks. Values are
<escape>-wrapped strings, numbers (int when written without '.'/exponent), true/false/null,
[lists] and {objects}. Anything malformed becomes a ParseError in the result; parse() itself
never raises, whatever the input.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import tokens as T

_NUM = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_KEY = re.compile(r"[^:{}\[\],<>\s]+")
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


class _Fail(Exception):
    def __init__(self, message, pos):
        super().__init__(message)
        self.pos = pos


class _Reader:
    def __init__(self, s: str, pos: int):
        self.s, self.pos = s, pos

    def skip_ws(self):
        while self.pos < len(self.s) and self.s[self.pos] in " \t\r\n":
            self.pos += 1

    def eat(self, lit: str) -> bool:
        if self.s.startswith(lit, self.pos):
            self.pos += len(lit)
            return True
        return False

    def expect(self, lit: str):
        if not self.eat(lit):
            raise _Fail(f"expected {lit!r}", self.pos)

    def regex(self, rx, what):
        m = rx.match(self.s, self.pos)
        if not m:
            raise _Fail(f"expected {what}", self.pos)
        self.pos = m.end()
        return m

    def string(self) -> str:
        end = self.s.find(T.ESCAPE, self.pos)
        if end < 0:
            raise _Fail("string never closed with <escape>", self.pos)
        v, self.pos = self.s[self.pos:end], end + len(T.ESCAPE)
        return v

    def value(self):
        self.skip_ws()
        if self.eat(T.ESCAPE):
            return self.string()
        if self.eat("{"):
            return self.mapping()
        if self.eat("["):
            items = []
            self.skip_ws()
            if self.eat("]"):
                return items
            while True:
                items.append(self.value())
                self.skip_ws()
                if self.eat("]"):
                    return items
                self.expect(",")
        for word, v in (("true", True), ("false", False), ("null", None)):
            if self.eat(word):
                return v
        m = self.regex(_NUM, "a value (<escape>string<escape>, number, true, false, "
                             "null, [list] or {object})")
        return float(m.group()) if (m.group(1) or m.group(2)) else int(m.group())

    def key(self) -> str:
        self.skip_ws()
        if self.eat(T.ESCAPE):
            return self.string()
        return self.regex(_KEY, "a key").group()

    def mapping(self) -> dict:
        """The body of {...} after its '{'."""
        out = {}
        self.skip_ws()
        if self.eat("}"):
            return out
        while True:
            k = self.key()
            if k in out:
                raise _Fail(f"duplicate key {k!r}", self.pos)
            self.skip_ws()
            self.expect(":")
            out[k] = self.value()
            self.skip_ws()
            if self.eat("}"):
                return out
            self.expect(",")


def _call(r: _Reader) -> dict:
    r.skip_ws()
    r.expect("call:")
    name = r.regex(_NAME, "a function name").group()
    r.expect("{")
    args = r.mapping()
    r.skip_ws()
    r.expect(T.END_CALL)
    return {"name": name, "arguments": args}


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
        r = _Reader(text, start + len(T.START_CALL))
        try:
            result.calls.append(_call(r))
            pos = r.pos
        except (_Fail, RecursionError) as e:
            at = getattr(e, "pos", r.pos)
            msg = str(e) if isinstance(e, _Fail) else "nesting too deep"
            result.errors.append(ParseError(msg, at, text[max(start, at - 20):at + 20]))
            # resume after this block's end marker, or at the next call
            ends = [i for i in (text.find(T.END_CALL, at), text.find(T.START_CALL, at))
                    if i >= 0]
            nxt = min(ends) if ends else len(text)
            pos = nxt + len(T.END_CALL) if text.startswith(T.END_CALL, nxt) else nxt
    result.text = _MARKERS.sub("", "".join(plain)).strip()
    return result
