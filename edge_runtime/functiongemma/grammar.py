"""Schema-constrained decoding of one FunctionGemma call, at the token level.

After `<start_function_call>` only `call:` + a declared name + `{` + arguments valid for that
tool + `}` + `<end_function_call>` can be produced. Two layers:

1. A character automaton over symbols (bytes 0-255, ESC = the <escape> token, END = the
   <end_function_call> token). Its state is an immutable tuple of frames (a small stack: one
   frame per open object / array / value), so stepping never copies and any state can be
   branched from freely.
2. Token sets. A normal token is a byte string, so it can never open or close a string (that
   takes the ESC token). Hence a token lies entirely inside string content or entirely in
   structure:
   - inside string content (nearly everything allowed): a precomputed per-token table
     (character counts and, per entry state of the UTF-8/"<escape>" check, validity) gives
     the allowed ids with a few numpy operations;
   - in structure (names, keys, numbers, punctuation; few bytes allowed): a depth-first walk
     of the vocabulary's sorted token strings (a trie held as one sorted list: a node is a
     range, a child a bisected sub-range) visits only prefixes the automaton accepts.

Every string, number and array has a length cap, so a call always finishes in bounded tokens.
"""
from __future__ import annotations

import functools
import re
import weakref
from bisect import bisect_left

import numpy as np

from . import tokens as T
from .render import format_value
from ..calls.schema import normalize_tool
from ..calls.vocab import Vocab

ESC, END = 256, 257
ANY = None                     # "next_symbols": any byte (string content)
MAX_STRING = 64                # chars, unless the schema's maxLength says otherwise
MAX_ITEMS = 8
MAX_NUMBER = 16                # characters of a number (keeps integers exact as doubles)
_PAT = b"<escape>"             # plain text that would read back as the escape token
_CALL = b"call:"

# object phases
OPEN, FIRST, KEY, NEXT, AFTER = range(5)


def _prefixes(words):
    """{prefix: frozenset(words with that prefix)} for byte strings."""
    out = {b"": set()}
    for w in words:
        for i in range(len(w) + 1):
            out.setdefault(w[:i], set()).add(w)
    return {p: frozenset(s) for p, s in out.items()}


class _Str:
    def __init__(self, s):
        self.min = s.get("minLength", 0)
        self.max = max(self.min, s.get("maxLength", MAX_STRING))


class _Enum:
    def __init__(self, values):
        self.values = frozenset(values)
        self.prefixes = _prefixes(values)


class _Num:
    def __init__(self, integer):
        self.integer = integer


class _Bool:
    pass


class _Arr:
    def __init__(self, s):
        self.item = _node(s["items"])
        self.min = s.get("minItems", 0)
        self.max = max(self.min, s.get("maxItems", MAX_ITEMS))


class _Obj:
    def __init__(self, s):
        self.props = {k.encode(): _node(v) for k, v in s["properties"].items()}
        self.keys = frozenset(self.props)
        self.required = frozenset(k.encode() for k in s.get("required", []))
        self.prefixes = _prefixes(self.props)


def _node(s):
    t = s["type"]
    if "enum" in s:
        if t == "string":
            return _Enum([v.encode() for v in s["enum"]])
        return _Enum([format_value(v).encode() for v in s["enum"]])
    if t == "string":
        return _Str(s)
    if t in ("integer", "number"):
        return _Num(t == "integer")
    if t == "boolean":
        return _BOOL
    return _Arr(s) if t == "array" else _Obj(s)


_BOOL = _Bool()
_BOOL_WORDS = _prefixes([b"true", b"false"])
_DIGITS = frozenset(b"0123456789")
# number automaton: state -> {byte class: next state}; accepting states end a number
_NUM_ACCEPT = frozenset((2, 3, 5, 8, 9))


def _num_next(state, c, integer):
    d = c in _DIGITS
    if state == 0:
        return 1 if c == 45 else 2 if c == 48 else 3 if d else None
    if state == 1:
        return 2 if c == 48 else 3 if d else None
    if state == 3 and d:
        return 3
    if state in (2, 3, 5) and not integer:
        if c == 46 and state != 5:
            return 4
        if c in (101, 69):
            return 6
    if state in (4, 5) and d:
        return 5
    if state == 6 and c in (43, 45):
        return 7
    if state in (6, 7) and d:
        return 8
    if state == 8 and d:
        return 9           # at most two exponent digits: the value stays finite
    return None


def _num_bytes(state, integer):
    return {c for c in range(43, 102) if _num_next(state, c, integer) is not None}


def _fresh(node):
    """The frame that reads one value of node."""
    if isinstance(node, _Str):
        return ("str", node, False, 0, 0, 0)
    if isinstance(node, _Enum):
        return ("enum", node, False, b"")
    if isinstance(node, _Num):
        return ("num", node, 0, 0)
    if node is _BOOL:
        return ("bool", b"")
    if isinstance(node, _Arr):
        return ("arr", node, 0, OPEN)
    return ("obj", node, frozenset(), OPEN, b"")


def _finish(st):
    """st with its top value frame removed and the parent moved past that value."""
    st = st[:-1]
    f = st[-1]
    if f[0] == "obj":
        return st[:-1] + (("obj", f[1], f[2], AFTER, b""),)
    if f[0] == "arr":
        return st[:-1] + (("arr", f[1], f[2] + 1, AFTER),)
    return st


def _utf8_kmp(pend, kmp, c):
    """(pend, kmp) after byte c inside string content, or None if c is not allowed there.
    pend: UTF-8 continuation bytes still owed; kmp: chars of "<escape>" just matched."""
    if pend:
        if not 0x80 <= c <= 0xBF:
            return None
        pend -= 1
    elif c == 0 or 0x80 <= c <= 0xC1 or c > 0xF4:
        return None
    elif c >= 0xC2:
        pend = 1 if c < 0xE0 else 2 if c < 0xF0 else 3
    kmp = kmp + 1 if c == _PAT[kmp] else 1 if c == 60 else 0
    return None if kmp == len(_PAT) else (pend, kmp)


@functools.lru_cache(maxsize=1)
def _string_automaton():
    """_utf8_kmp as a table for Vocab.content_ids: [pend * len(_PAT) + kmp, byte] -> next
    state, or -1; a character is complete where pend == 0."""
    L = len(_PAT)
    table = np.full((4 * L, 256), -1, np.int32)
    for pend in range(4):
        for kmp in range(L):
            for c in range(256):
                nxt = _utf8_kmp(pend, kmp, c)
                if nxt is not None:
                    table[pend * L + kmp, c] = nxt[0] * L + nxt[1]
    return ("functiongemma-string", table, np.arange(4 * L) < L)


class CallGrammar:
    """The automaton for calls of a fixed set of tools (OpenAI-style schemas)."""

    def __init__(self, tools):
        tools = [normalize_tool(t) for t in tools]
        if not tools:
            raise ValueError("a call grammar needs at least one tool")
        self.tools = {t["name"].encode(): _Obj(t["parameters"]) for t in tools}
        self.name_prefixes = _prefixes(self.tools)

    def start(self):
        """The state right after <start_function_call>."""
        return (("end",), ("name", b""), ("lit", _CALL, 0))

    @staticmethod
    def done(st) -> bool:
        return st[-1][0] == "done"

    # ---- stepping ------------------------------------------------------------------------

    def step(self, st, c):
        """The state after symbol c, or None if c cannot come next."""
        f = st[-1]
        k = f[0]
        if k == "str":
            _, node, opened, count, pend, kmp = f
            if not opened:
                return st[:-1] + (("str", node, True, 0, 0, 0),) if c == ESC else None
            if c == ESC:
                return _finish(st) if pend == 0 and count >= node.min else None
            if c > 255:
                return None
            nk = _utf8_kmp(pend, kmp, c)
            if nk is None:
                return None
            count += pend == 0 and not 0x80 <= c <= 0xBF
            return None if count > node.max else st[:-1] + (("str", node, True, count) + nk,)
        if k == "num":
            _, node, state, n = f
            nxt = _num_next(state, c, node.integer) if c < 256 else None
            if nxt is not None and n < MAX_NUMBER:
                return st[:-1] + (("num", node, nxt, n + 1),)
            if state in _NUM_ACCEPT:
                parent = _finish(st)
                return self.step(parent, c)
            return None
        if k == "enum":
            _, node, opened, p = f
            if not opened:
                return st[:-1] + (("enum", node, True, b""),) if c == ESC else None
            if c == ESC:
                return _finish(st) if p in node.values else None
            if c < 256 and p + bytes((c,)) in node.prefixes:
                return st[:-1] + (("enum", node, True, p + bytes((c,))),)
            return None
        if k == "obj":
            return self._step_obj(st, f, c)
        if k == "arr":
            _, node, count, phase = f
            if phase == OPEN:
                return st[:-1] + (("arr", node, 0, FIRST),) if c == 91 else None
            if phase == AFTER:
                if c == 44 and count < node.max:
                    return st[:-1] + (("arr", node, count, NEXT),)
                return _finish(st) if c == 93 and count >= node.min else None
            if phase == FIRST and c == 93:
                return _finish(st) if node.min == 0 else None
            return self.step(st + (_fresh(node.item),), c)
        if k == "bool":
            p = f[1] + bytes((c,)) if c < 256 else None
            if p in (b"true", b"false"):
                return _finish(st)
            return st[:-1] + (("bool", p),) if p in _BOOL_WORDS else None
        if k == "lit":
            _, lit, i = f
            if c != lit[i]:
                return None
            return st[:-1] if i + 1 == len(lit) else st[:-1] + (("lit", lit, i + 1),)
        if k == "name":
            p = f[1]
            if c == 123 and p in self.tools:
                return st[:-1] + (("obj", self.tools[p], frozenset(), FIRST, b""),)
            p2 = p + bytes((c,)) if c < 256 else None
            return st[:-1] + (("name", p2),) if p2 in self.name_prefixes else None
        if k == "end":
            return (("done",),) if c == END else None
        return None

    @staticmethod
    def _step_obj(st, f, c):
        _, node, used, phase, p = f
        if phase == OPEN:
            return st[:-1] + (("obj", node, used, FIRST, b""),) if c == 123 else None
        if phase == AFTER:
            if c == 44 and node.keys - used:
                return st[:-1] + (("obj", node, used, NEXT, b""),)
            return _finish(st) if c == 125 and node.required <= used else None
        if phase == FIRST and c == 125:
            return _finish(st) if not node.required else None
        if phase == KEY and c == 58:
            if p in node.props and p not in used:
                return st[:-1] + (("obj", node, used | {p}, AFTER, b""), _fresh(node.props[p]))
            return None
        p2 = p + bytes((c,)) if c < 256 else None
        if p2 in node.prefixes and node.prefixes[p2] - used:
            return st[:-1] + (("obj", node, used, KEY, p2),)
        return None

    def next_symbols(self, st):
        """Symbols that may come next: a set, or ANY inside free string content."""
        f = st[-1]
        k = f[0]
        if k == "str":
            return ANY if f[2] else {ESC}
        if k == "num":
            _, node, state, n = f
            own = _num_bytes(state, node.integer) if n < MAX_NUMBER else set()
            if state in _NUM_ACCEPT:
                own |= self.next_symbols(_finish(st))
            return own
        if k == "enum":
            _, node, opened, p = f
            if not opened:
                return {ESC}
            out = {w[len(p)] for w in node.prefixes[p] if len(w) > len(p)}
            return out | {ESC} if p in node.values else out
        if k == "obj":
            _, node, used, phase, p = f
            if phase == OPEN:
                return {123}
            if phase == AFTER:
                return ({44} if node.keys - used else set()) | \
                    ({125} if node.required <= used else set())
            out = {w[len(p)] for w in node.prefixes[p] - used if len(w) > len(p)}
            if phase == FIRST and not node.required:
                out.add(125)
            if phase == KEY and p in node.props and p not in used:
                out.add(58)
            return out
        if k == "arr":
            _, node, count, phase = f
            if phase == OPEN:
                return {91}
            if phase == AFTER:
                return ({44} if count < node.max else set()) | \
                    ({93} if count >= node.min else set())
            first = self.next_symbols(st + (_fresh(node.item),))
            return first | {93} if phase == FIRST and node.min == 0 else first
        if k == "bool":
            p = f[1]
            return {w[len(p)] for w in _BOOL_WORDS[p] if len(w) > len(p)}
        if k == "lit":
            return {f[1][f[2]]}
        if k == "name":
            p = f[1]
            out = {w[len(p)] for w in self.name_prefixes[p] if len(w) > len(p)}
            return out | {123} if p in self.tools else out
        if k == "end":
            return {END}
        return set()

    def feed_text(self, st, text: str):
        """State after the text of a call (function tokens spelled out), or None."""
        for part in re.split("(<escape>|<end_function_call>)", text):
            syms = [ESC] if part == T.ESCAPE else [END] if part == T.END_CALL else part.encode()
            for c in syms:
                st = self.step(st, c)
                if st is None:
                    return None
        return st


class TokenConstraint:
    """Which token ids may come next while a call is being written."""

    def __init__(self, grammar: CallGrammar, vocab: Vocab):
        self.g, self.v = grammar, vocab

    def start(self):
        return self.g.start()

    def allowed(self, st) -> np.ndarray:
        """Sorted int32 ids allowed after state st (never empty before the call is done)."""
        syms = self.g.next_symbols(st)
        if syms is ANY:
            _, node, _, count, pend, kmp = st[-1]
            ids = self.v.content_ids(_string_automaton(), pend * len(_PAT) + kmp, node.max - count)
            if self.g.step(st, ESC) is not None:
                ids = np.insert(ids, np.searchsorted(ids, T.ESCAPE_ID), T.ESCAPE_ID)
            return ids
        found = []
        self._walk(st, syms, 0, len(self.v.keys), b"", found)
        extra = [i for s, i in ((ESC, T.ESCAPE_ID), (END, T.END_CALL_ID))
                 if s in syms and self.g.step(st, s) is not None]
        return np.unique(np.array(found + extra, np.int32))

    def _walk(self, st, syms, lo, hi, prefix, out):
        keys, ids = self.v.keys, self.v.ids
        for c in sorted(s for s in (range(256) if syms is ANY else syms) if s < 256):
            nst = self.g.step(st, c)
            if nst is None:
                continue
            p2 = prefix + bytes((c,))
            a = bisect_left(keys, p2, lo, hi)
            if a >= hi or not keys[a].startswith(p2):
                continue
            b = bisect_left(keys, prefix + bytes((c + 1,)), a, hi) if c < 255 else hi
            if keys[a] == p2:
                out.extend(ids[a])
                a += 1
            if a < b:
                self._walk(nst, self.g.next_symbols(nst), a, b, p2, out)

    def advance(self, st, token_id: int):
        """State after token_id; ValueError if the grammar does not allow it."""
        if token_id == T.ESCAPE_ID:
            syms = (ESC,)
        elif token_id == T.END_CALL_ID:
            syms = (END,)
        elif 0 <= token_id < self.v.n and self.v.normal[token_id]:
            syms = self.v.pieces[token_id]
        else:
            syms = None
        for c in syms or ():
            st = self.g.step(st, c)
            if st is None:
                break
        if not syms or st is None:
            raise ValueError(f"token {token_id} is not allowed here")
        return st
