"""The surface syntax of a call format: one definition from which the call renderer
(`format_call`, `format_value`), the constrained-decoding grammar (calls/grammar.py) and the
parser (`parse_call`) are all derived, so the three cannot disagree.

A call is   NAME ARGS_OPEN key ARG_KV value (SEP key ARG_KV value)* ARGS_CLOSE [END]
with values: strings (STR_OPEN content STR_CLOSE), numbers (JSON number text), the format's
true/false/null words, lists `[v, v]` and nested objects `{key DICT_KV v, ...}` whose keys are
bare (`key_quoted=False`) or strings.

Symbols are bytes 0-255 plus two that are special tokens in FunctionGemma's vocabulary and
never text: ESC (<escape>, which opens and closes its strings) and END (<end_function_call>).
"""
from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

ESC, END = 256, 257


@dataclass(frozen=True)
class Syntax:
    name: str
    call_open: bytes            # literal between the call's start and the function name
    args_open: bytes
    args_close: bytes
    arg_kv: bytes               # between an argument's name and its value
    sep: bytes                  # between arguments, list items and object entries
    dict_kv: bytes              # between a nested object's key and its value
    key_quoted: bool            # nested object keys are strings (else bare words)
    true: bytes
    false: bytes
    null: bytes
    str_open: int               # symbol
    str_close: int              # symbol
    escapes: bool               # backslash escapes inside strings (JSON's \" \\ \n \r \t \/)
    forbidden: bytes            # a text that may not occur inside string content
    end: int | None = None      # symbol after ARGS_CLOSE, if any
    sort_keys: bool = False     # objects are rendered with keys sorted case-insensitively

    # ---- strings ------------------------------------------------------------------------

    def quote(self, s: str) -> bytes:
        """The symbols of string s, delimiters included (as bytes; ESC is spelled by the
        format's own renderer)."""
        body = s.encode()
        if self.escapes:
            body = (body.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
                    .replace(b"\n", b"\\n").replace(b"\r", b"\\r").replace(b"\t", b"\\t"))
        return body

    def string_symbols(self, s: str) -> tuple:
        return (self.str_open,) + tuple(self.quote(s)) + (self.str_close,)

    @functools.cached_property
    def string_automaton(self):
        """String content as a table for the grammar and Vocab.content_ids:
        (name, table[state, byte] -> next state or -1, boundary[state]). A state is
        (UTF-8 continuation owed: an index into _OWED, inside a backslash escape, chars of
        `forbidden` just matched); boundary states are those where a character is complete,
        i.e. where the string may close."""
        F = max(1, len(self.forbidden))
        n = len(_OWED) * 2 * F
        table = np.full((n, 256), -1, np.int32)
        boundary = np.zeros(n, bool)
        for pend in range(len(_OWED)):
            for esc in range(2):
                for k in range(F):
                    s = (pend * 2 + esc) * F + k
                    boundary[s] = pend == 0 and esc == 0
                    for c in range(256):
                        nxt = self._content_step(pend, esc, k, c)
                        if nxt is not None:
                            table[s, c] = (nxt[0] * 2 + nxt[1]) * F + nxt[2]
        return (f"{self.name}-string", table, boundary)

    def _content_step(self, pend, esc, k, c):
        if esc:
            return (0, 0, 0) if c in b'"\\/nrt' else None
        if pend:
            owed, lo, hi = _OWED[pend]
            if not lo <= c <= hi:
                return None
            pend = owed - 1
        elif c == 0 or (self.escapes and c < 0x20) or 0x80 <= c <= 0xC1 or c > 0xF4:
            return None     # raw control characters are written as escapes where there are some
        elif self.escapes and c == 0x5C:
            return (0, 1, 0)
        elif self.escapes and c == 0x22:
            return None
        elif c >= 0xC2:
            pend = _LEAD.get(c, 1 if c < 0xE0 else 2 if c < 0xF0 else 3)
        pat = self.forbidden
        if pat:
            k = k + 1 if c == pat[k] else 1 if c == pat[0] else 0
            if k == len(pat):
                return None
        return (pend, 0, k)


# Well-formed UTF-8 (RFC 3629): what a lead byte leaves owed, as (bytes owed, range of the
# next byte). The four leads whose second byte is narrower exclude overlong forms, UTF-16
# surrogates (ED A0..BF) and code points past U+10FFFF.
_OWED = ((0, 0, 0), (1, 0x80, 0xBF), (2, 0x80, 0xBF), (3, 0x80, 0xBF),
         (2, 0xA0, 0xBF), (2, 0x80, 0x9F), (3, 0x90, 0xBF), (3, 0x80, 0x8F))
_LEAD = {0xE0: 4, 0xED: 5, 0xF0: 6, 0xF4: 7}


def number_text(v) -> str:
    """A JSON number for v without exponent (the grammar's number language): ints exactly,
    floats from their shortest round-trip digits, keeping a '.' so the type survives."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"not a number: {v!r}")
    if isinstance(v, int):
        return str(v)
    if not math.isfinite(v):
        raise ValueError("non-finite numbers cannot be written")
    text = format(Decimal(repr(abs(v) if v == 0 else v)), "f")   # no negative zero
    return text if "." in text else text + ".0"


def format_value(syntax: Syntax, v, esc: str = "") -> str:
    """v in the format's notation. `esc` is how the renderer spells the ESC symbol when the
    format's strings use it (FunctionGemma: the text "<escape>")."""
    if isinstance(v, str):
        body = syntax.quote(v).decode()
        o = esc if syntax.str_open == ESC else chr(syntax.str_open)
        c = esc if syntax.str_close == ESC else chr(syntax.str_close)
        return o + body + c
    if v is True:
        return syntax.true.decode()
    if v is False:
        return syntax.false.decode()
    if v is None:
        return syntax.null.decode()
    if isinstance(v, (int, float)):
        return number_text(v)
    sep = syntax.sep.decode()
    if isinstance(v, dict):
        kv = syntax.dict_kv.decode()
        items = []
        for k, x in dictsort(v) if syntax.sort_keys else v.items():
            key = format_value(syntax, str(k), esc) if syntax.key_quoted else str(k)
            items.append(key + kv + format_value(syntax, x, esc))
        return "{" + sep.join(items) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + sep.join(format_value(syntax, x, esc) for x in v) + "]"
    raise TypeError(f"{type(v).__name__} has no notation in call format {syntax.name}")


def dictsort(d: dict) -> list:
    """d's items in Jinja's dictsort order (keys compared case-insensitively), as FunctionGemma's
    chat template writes every mapping."""
    return sorted(d.items(), key=lambda kv: str(kv[0]).lower())


def format_call(syntax: Syntax, name: str, arguments: dict, esc: str = "") -> str:
    """NAME ARGS_OPEN k=v, ... ARGS_CLOSE (without the format's END symbol). A name or key
    that the parser would not read back (a newline in it, say) is refused: written raw, it
    could end the call and forge lines of the conversation."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"tool call name {name!r} cannot be written in the {syntax.name} "
                         "call format")
    bad = next((k for k in arguments if not isinstance(k, str) or not bare_key_ok(k)), None)
    if bad is not None:
        raise ValueError(f"tool call {name}: argument name {bad!r} cannot be written in the "
                         f"{syntax.name} call format (its keys are bare words)")
    kv, sep = syntax.arg_kv.decode(), syntax.sep.decode()
    pairs = dictsort(arguments) if syntax.sort_keys else arguments.items()
    args = sep.join(f"{k}{kv}{format_value(syntax, v, esc)}" for k, v in pairs)
    return (syntax.call_open.decode() + name + syntax.args_open.decode() + args
            + syntax.args_close.decode())


# ---- parsing ------------------------------------------------------------------------------

class ParseFailure(Exception):
    def __init__(self, message, pos):
        super().__init__(message)
        self.pos = pos


_NUM = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_BARE_KEY = re.compile(r"[^:=,{}()\[\]<>\"\s]+")
_UNESCAPE = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\", "/": "/"}


def bare_key_ok(name: str) -> bool:
    """Whether the parser reads name back as a bare (unquoted) key."""
    return bool(_BARE_KEY.fullmatch(name))


class CallReader:
    """Reads one call in `syntax` from text where ESC/END are spelled `esc`/`end`."""

    MAX_DEPTH = 32

    def __init__(self, syntax: Syntax, text: str, pos: int = 0, esc: str = "", end: str = ""):
        self.sx, self.s, self.pos, self.esc_text, self.end_text = syntax, text, pos, esc, end
        self.depth = 0

    def _sym(self, sym) -> str:
        return self.esc_text if sym == ESC else self.end_text if sym == END else chr(sym)

    def skip_ws(self):
        while self.pos < len(self.s) and self.s[self.pos] in " \t\r\n":
            self.pos += 1

    def eat(self, lit: str) -> bool:
        if lit and self.s.startswith(lit, self.pos):
            self.pos += len(lit)
            return True
        return False

    def expect(self, lit: str):
        self.skip_ws()
        if not self.eat(lit.strip() if lit.strip() else lit):
            raise ParseFailure(f"expected {lit.strip() or lit!r}", self.pos)

    def regex(self, rx, what):
        m = rx.match(self.s, self.pos)
        if not m:
            raise ParseFailure(f"expected {what}", self.pos)
        self.pos = m.end()
        return m.group()

    def string(self) -> str:
        close = self._sym(self.sx.str_close)
        if not self.sx.escapes:
            end = self.s.find(close, self.pos)
            if end < 0:
                raise ParseFailure(f"string never closed with {close}", self.pos)
            v, self.pos = self.s[self.pos:end], end + len(close)
            return v
        out = []
        while self.pos < len(self.s):
            ch = self.s[self.pos]
            if ch == close:
                self.pos += 1
                return "".join(out)
            if ch == "\\":
                nxt = self.s[self.pos + 1:self.pos + 2]
                if nxt not in _UNESCAPE:
                    raise ParseFailure(f"bad escape \\{nxt}", self.pos)
                out.append(_UNESCAPE[nxt])
                self.pos += 2
                continue
            out.append(ch)
            self.pos += 1
        raise ParseFailure("string never closed", self.pos)

    def value(self):
        self.skip_ws()
        if self.eat(self._sym(self.sx.str_open)):
            return self.string()
        if self.eat("{"):
            return self._nested(self.mapping, "}")
        if self.eat("["):
            return self._nested(self.items, "]")
        for word, v in ((self.sx.true, True), (self.sx.false, False), (self.sx.null, None)):
            if self.eat(word.decode()):
                return v
        t = self.regex(_NUM, "a value")
        m = _NUM.fullmatch(t)
        return float(t) if (m.group(1) or m.group(2)) else int(t)

    def _nested(self, read, close):
        self.depth += 1
        if self.depth > self.MAX_DEPTH:
            raise ParseFailure("nesting too deep", self.pos)
        try:
            return read(close)
        finally:
            self.depth -= 1

    def items(self, close="]") -> list:
        out = []
        self.skip_ws()
        if self.eat(close):
            return out
        while True:
            out.append(self.value())
            self.skip_ws()
            if self.eat(close):
                return out
            self.expect(self.sx.sep.decode())

    def key(self, quoted: bool) -> str:
        self.skip_ws()
        if self.eat(self._sym(self.sx.str_open)):
            return self.string()
        if quoted:
            raise ParseFailure("expected a quoted key", self.pos)
        return self.regex(_BARE_KEY, "a key")

    def mapping(self, close="}", kv=None, quoted=None) -> dict:
        kv = (kv or self.sx.dict_kv).decode()
        quoted = self.sx.key_quoted if quoted is None else quoted
        out = {}
        self.skip_ws()
        if self.eat(close):
            return out
        while True:
            k = self.key(quoted)
            if k in out:
                raise ParseFailure(f"duplicate key {k!r}", self.pos)
            self.expect(kv)
            out[k] = self.value()
            self.skip_ws()
            if self.eat(close):
                return out
            self.expect(self.sx.sep.decode())

    def call(self) -> dict:
        self.skip_ws()
        if self.sx.call_open:
            self.expect(self.sx.call_open.decode())
        name = self.regex(_NAME, "a function name")
        self.expect(self.sx.args_open.decode())
        args = self.mapping(self.sx.args_close.decode(), kv=self.sx.arg_kv, quoted=False)
        if self.sx.end is not None:
            self.expect(self._sym(self.sx.end))
        return {"name": name, "arguments": args}


def parse_call(syntax: Syntax, text: str, esc: str = "", end: str = "") -> dict:
    """{"name", "arguments"} of the one call that `text` holds; ParseFailure otherwise."""
    r = CallReader(syntax, text, 0, esc, end)
    try:
        call = r.call()
    except RecursionError:
        raise ParseFailure("nesting too deep", r.pos) from None
    r.skip_ws()
    if r.pos != len(text):
        raise ParseFailure("text after the call", r.pos)
    return call
