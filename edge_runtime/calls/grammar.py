"""Schema-constrained decoding of one call, at the token level, for any call format.

Only `NAME ARGS_OPEN arguments valid for that tool ARGS_CLOSE [END]` of a declared tool can be
produced, in the surface syntax of the format (calls/syntax.py). Two layers:

1. A symbol automaton (bytes 0-255, ESC, END). Its state is an immutable tuple of frames (a
   small stack: one frame per open object / array / value), so stepping never copies and any
   state can be branched from freely.
2. Token sets. Inside string content (nearly every token allowed) a vectorised per-token table
   (Vocab.content_ids over the format's string automaton) gives the allowed ids with a few
   numpy operations; everywhere else (names, keys, numbers, punctuation: few bytes allowed) a
   depth-first walk of the vocabulary's sorted token strings (a trie held as one sorted list:
   a node is a range, a child a bisected sub-range) visits only prefixes the automaton
   accepts. A token is either entirely string content or starts outside it, so a token that
   ends a string's content and closes it in one piece (`Paris"`) is never offered: the model
   writes the content, then a token that starts with the closing quote. Nor is a token that
   opens a string and closes it again (`""`, `","`): a small model takes those common tokens
   where a value starts (`function=","` for a formula the request spells), so a value is
   always written after its opening quote. Neither rule narrows the calls that can be
   written, only the tokens they are written in.

Every string, number, array and free-form value has a length cap, so a call always finishes
in a bounded number of tokens.
"""
from __future__ import annotations

from bisect import bisect_left
from typing import NamedTuple

import numpy as np

from . import regex
from .numbers import NumberSyntax
from .schema import (DEFAULT_MAX_ITEMS, DEFAULT_MAX_LENGTH, FREE_DEPTH, KEY_RE, MAX_KEY_LENGTH,
                     normalize_tool)
from .syntax import Syntax, bare_key_ok, number_text

ANY = None                     # "next_symbols": any byte (string content)
# TokenConstraint keeps the small allowed sets it computed, keyed by grammar state, up to this
# many ids in all (and ALLOWED_CACHE_SETS sets): see TokenConstraint.allowed.
ALLOWED_CACHE_IDS = 1 << 16
ALLOWED_CACHE_SETS = 256
_UNESCAPED = {ord("n"): 10, ord("r"): 13, ord("t"): 9}

# object phases
OPEN, FIRST, KEY, NEXT, AFTER = range(5)


# ---- frames: a grammar state is a tuple of these, outermost first ----------------------------
# Each ends in its kind, so frames of different kinds never compare equal as state keys.

class EndFrame(NamedTuple):
    """Below the call: what may follow it (the syntax's end symbol, if any)."""
    kind: str = "end"


class DoneFrame(NamedTuple):
    kind: str = "done"


class NameFrame(NamedTuple):
    prefix: tuple                    # the tool name's symbols so far
    kind: str = "name"


class LitFrame(NamedTuple):
    word: tuple                      # a literal to read, from index i
    i: int
    kind: str = "lit"


class StrFrame(NamedTuple):
    node: object
    opened: bool                     # its opening quote has been read
    count: int                       # characters so far
    state: int                       # of the syntax's string-content automaton
    text: bytes                      # the content's bytes so far, as written
    q: int                           # of the pattern's DFA (0 without one)
    kind: str = "str"


class NumFrame(NamedTuple):
    node: object
    text: bytes
    kind: str = "num"


class WordsFrame(NamedTuple):
    node: object
    prefix: tuple                    # the enum word's symbols so far
    kind: str = "words"


class ArrFrame(NamedTuple):
    node: object
    count: int
    phase: int
    kind: str = "arr"


class AltFrame(NamedTuple):
    node: object
    kind: str = "alt"


class ObjFrame(NamedTuple):
    node: object
    used: frozenset                  # the keys written
    phase: int
    prefix: tuple                    # the key's symbols so far (phase KEY)
    kind: str = "obj"


class KeyFrame(NamedTuple):
    text: bytes                      # a free-form object's bare key so far
    kind: str = "key"


class _Prefixes:
    """The words (symbol tuples) by prefix: `p in prefixes` (some word starts with p; the
    empty prefix always), `prefixes[p]` (the set of those words). One sorted list, bisected:
    a table of every prefix would grow with the words' lengths times their number (1024 enum
    values of 900 characters: gigabytes) before any budget check."""

    def __init__(self, words):
        self.words = sorted(set(words))

    def _range(self, p):
        lo = bisect_left(self.words, p)
        return lo, bisect_left(self.words, p + (1 << 30,), lo)

    def __contains__(self, p):
        lo, hi = self._range(p)
        return lo < hi or p == ()

    def __getitem__(self, p):
        lo, hi = self._range(p)
        return frozenset(self.words[lo:hi])


class _Str:
    """A string of minLength..maxLength characters, matching an optional pattern (a DFA over
    the value's UTF-8 bytes, run beside the format's string-content automaton)."""

    def __init__(self, s):
        self.min = s.get("minLength", 0)
        self.max = s.get("maxLength", DEFAULT_MAX_LENGTH)
        self.dfa = regex.compile(s["pattern"]) if "pattern" in s else None
        # DFA states from which every continuation matches: no constraint left
        self.free = set()
        if self.dfa is not None:
            t, acc = self.dfa.table, self.dfa.accept
            self.free = {q for q in range(len(t)) if acc[q] and (t[q] == q).all()}
            # states where a backslash may start an escape: some escape's byte can follow
            self.escape_ok = (t[:, [_UNESCAPED.get(e, e) for e in b'"\\/nrt']] >= 0).any(1)
            self.need = fewest_bytes(t, acc)


def fewest_bytes(table, goal) -> np.ndarray:
    """Per state of an automaton over bytes, the fewest bytes to a goal state (a large number
    where none leads there). With a pattern's DFA and its accepting states: a value that could
    no longer match within maxLength is cut off early instead of leaving the call with nothing
    allowed."""
    far = np.int64(1 << 30)
    need = np.where(goal, 0, far)
    while True:
        via = np.where(table >= 0, need[np.maximum(table, 0)], far).min(axis=1) + 1
        new = np.minimum(need, via)
        if (new == need).all():
            return need
        need = new


class _Words:
    """A value that is one of a fixed set of symbol sequences (enum, const, booleans)."""

    def __init__(self, words):
        self.values = frozenset(words)
        self.prefixes = _Prefixes(words)


class _Num:
    def __init__(self, s):
        self.syntax = NumberSyntax(s["type"] == "integer", **{
            k: s[k] for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
            if k in s})


class _Arr:
    def __init__(self, item, s):
        self.item = item
        self.min = s.get("minItems", 0)
        self.max = s.get("maxItems", DEFAULT_MAX_ITEMS)


class _Obj:
    """Declared properties (keys written as fixed words ending in the key/value separator),
    or free-form (free=True: identifier keys, untyped values)."""

    def __init__(self, props, required=(), free=False, value=None):
        self.props = props                      # {key word (symbol tuple): node}
        self.keys = frozenset(props)
        self.required = frozenset(required)
        self.prefixes = _Prefixes(props)
        self.free, self.value = free, value


class _Alt:
    """One of several nodes, told apart by their first symbol (untyped values)."""

    def __init__(self, options):
        self.options = options


class _Builder:
    """Schema -> automaton nodes in one syntax."""

    def __init__(self, sx: Syntax):
        self.sx = sx
        self.bool = _Words([tuple(sx.true), tuple(sx.false)])
        self.null = _Words([tuple(sx.null)])
        # untyped values: scalars, and containers of untyped values FREE_DEPTH deep
        self.any = _Alt([_Str({}), _Num({"type": "number"}), self.bool, self.null])
        for _ in range(FREE_DEPTH):
            self.free_obj = _Obj({}, free=True, value=self.any)
            self.any = _Alt(self.any.options[:4] + [_Arr(self.any, {}), self.free_obj])
        self.free_key = _Str({"maxLength": MAX_KEY_LENGTH, "minLength": 1,
                              "pattern": "^" + KEY_RE.pattern[:-2] + "$"})

    def literal(self, v) -> tuple:
        if isinstance(v, str):
            return self.sx.string_symbols(v)
        if v is True:
            return tuple(self.sx.true)
        if v is False:
            return tuple(self.sx.false)
        if v is None:
            return tuple(self.sx.null)
        return tuple(number_text(v).encode())

    def node(self, s):
        if "enum" in s or "const" in s:
            values = s["enum"] if "enum" in s else [s["const"]]
            return _Words([self.literal(v) for v in values])
        t = s.get("type")
        if t == "string":
            return _Str(s)
        if t in ("integer", "number"):
            return _Num(s)
        if t == "boolean":
            return self.bool
        if t == "null":
            return self.null
        if t == "array":
            return _Arr(self.node(s["items"]), s)
        if t == "object":
            return self.obj(s, top=False) if "properties" in s else self.free_obj
        return self.any

    def key_word(self, name: str, top: bool) -> tuple:
        sx = self.sx
        if (top or not sx.key_quoted) and not bare_key_ok(name):
            raise ValueError(f"property name {name!r} cannot be written in the {sx.name} "
                             "call format (its keys are bare words)")
        if top:
            return tuple(name.encode() + sx.arg_kv)
        k = sx.string_symbols(name) if sx.key_quoted else tuple(name.encode())
        return k + tuple(sx.dict_kv)

    def obj(self, s, top: bool) -> _Obj:
        props = s.get("properties") or {}
        words = {self.key_word(k, top): self.node(v) for k, v in props.items()}
        return _Obj(words, [self.key_word(k, top) for k in s.get("required", [])])


class CallGrammar:
    """The automaton for calls of a fixed set of tools (OpenAI-style schemas) in a syntax; or,
    given `value` (a canonical schema: schema.check_schema) and no tools, for one value of that
    schema (a reply in JSON mode: calls/json_reply.py)."""

    def __init__(self, tools, syntax: Syntax, value=None):
        tools = [normalize_tool(t) for t in tools]
        if not tools and value is None:
            raise ValueError("a call grammar needs at least one tool")
        self.sx = syntax
        b = _Builder(syntax)
        self.tools = {}
        for t in tools:
            try:
                self.tools[tuple(t["name"].encode() + syntax.args_open)] = \
                    b.obj(t["parameters"], True)
            except ValueError as e:
                raise ValueError(f"tool {t['name']}: {e}") from None
        self.name_prefixes = _Prefixes(self.tools)
        self.value = None if value is None else b.node(value)
        self.free_key = b.free_key
        self._str_table, self._str_boundary = syntax.string_automaton[1:]
        F = max(1, len(syntax.forbidden))     # see Syntax.string_automaton's state numbering
        self._str_escaping = (np.arange(len(self._str_boundary)) // F) % 2 == 1
        # bytes still to come in the character being written (its count is already taken)
        self.str_to_char_end = fewest_bytes(self._str_table, self._str_boundary)

    def start(self):
        """The state where the call's (or the value's) text begins."""
        if self.value is not None:
            return (EndFrame(), self._fresh(self.value))
        st = (EndFrame(), NameFrame(()))
        if self.sx.call_open:
            st += (LitFrame(tuple(self.sx.call_open), 0),)
        return st

    @staticmethod
    def done(st) -> bool:
        return st[-1].kind == "done"

    @staticmethod
    def in_content(st) -> bool:
        """Inside a string value's content (its opening quote read)."""
        return st[-1].kind == "str" and st[-1].opened

    # ---- frames --------------------------------------------------------------------------

    @staticmethod
    def _fresh(node):
        """The frame that reads one value of node."""
        if isinstance(node, _Str):
            return StrFrame(node, False, 0, 0, b"", node.dfa.start if node.dfa else 0)
        if isinstance(node, _Words):
            return WordsFrame(node, ())
        if isinstance(node, _Num):
            return NumFrame(node, b"")
        if isinstance(node, _Arr):
            return ArrFrame(node, 0, OPEN)
        if isinstance(node, _Alt):
            return AltFrame(node)
        return ObjFrame(node, frozenset(), OPEN, ())

    def _finish(self, st):
        """st with its top value frame removed and the parent moved past that value."""
        st = st[:-1]
        f = st[-1]
        if f.kind == "obj":
            return st[:-1] + (f._replace(phase=AFTER, prefix=()),)
        if f.kind == "arr":
            return st[:-1] + (f._replace(count=f.count + 1, phase=AFTER),)
        if f.kind == "end" and self.sx.end is None:
            return (DoneFrame(),)
        return st

    @staticmethod
    def _lit(st, word, i=0):
        """st with the rest of literal word (from index i) to be read first."""
        return st + (LitFrame(word, i),) if i < len(word) else st

    # ---- stepping ------------------------------------------------------------------------

    def step(self, st, c):
        """The state after symbol c, or None if c cannot come next."""
        f = st[-1]
        k = f.kind
        sx = self.sx
        if k == "str":
            node, opened, count, state, text, q, _ = f
            if not opened:
                return st[:-1] + (f._replace(opened=True),) if c == sx.str_open else None
            if c == sx.str_close and self._str_boundary[state]:
                ok = count >= node.min and (node.dfa is None or node.dfa.accept[q])
                return self._finish(st) if ok else None
            if c > 255:
                return None
            nxt = int(self._str_table[state, c])
            if nxt < 0:
                return None
            if node.dfa is not None:      # the pattern sees the value's bytes, unescaped
                if self._str_escaping[state]:
                    q = int(node.dfa.table[q, _UNESCAPED.get(c, c)])
                elif not self._str_escaping[nxt]:
                    q = int(node.dfa.table[q, c])
                elif not node.escape_ok[q]:
                    return None     # a backslash would start an escape the pattern refuses
                if q < 0:
                    return None
            count += bool(self._str_boundary[state])   # a character counts where it starts
            if count > node.max or (node.dfa is not None and count + max(
                    0, node.need[q] - self.str_to_char_end[nxt]) > node.max):
                return None     # (the pattern could no longer match in the characters left)
            return st[:-1] + (StrFrame(node, True, count, nxt, text + bytes((c,)), q),)
        if k == "num":
            node, text, _ = f
            if c < 256 and chr(c) in node.syntax.allowed_next(text.decode()):
                return st[:-1] + (NumFrame(node, text + bytes((c,))),)
            if node.syntax.can_end(text.decode()):
                return self.step(self._finish(st), c)
            return None
        if k == "words":
            node, p, _ = f
            p2 = p + (c,)
            if p2 in node.prefixes:
                return st[:-1] + (WordsFrame(node, p2),)
            if p in node.values:
                return self.step(self._finish(st), c)
            return None
        if k == "alt":
            for opt in f.node.options:
                nst = self.step(st[:-1] + (self._fresh(opt),), c)
                if nst is not None:
                    return nst
            return None
        if k == "obj":
            return self._step_obj(st, f, c)
        if k == "arr":
            node, count, phase, _ = f
            if phase == OPEN:
                return st[:-1] + (ArrFrame(node, 0, FIRST),) if c == 91 else None
            if phase == AFTER:
                if c == sx.sep[0] and count < node.max:
                    return self._lit(st[:-1] + (ArrFrame(node, count, NEXT),), sx.sep, 1)
                return self._finish(st) if c == 93 and count >= node.min else None
            if phase == FIRST and c == 93:
                return self._finish(st) if node.min == 0 else None
            return self.step(st + (self._fresh(node.item),), c)
        if k == "key":      # a bare identifier key of a free-form object
            p = f.text + bytes((c,)) if c < 256 else None
            if p is not None and len(p) <= MAX_KEY_LENGTH and KEY_RE.match(p.decode("latin-1")):
                return st[:-1] + (KeyFrame(p),)
            return self.step(st[:-1], c) if f.text else None
        if k == "lit":
            lit, i, _ = f
            if c != lit[i]:
                return None
            return st[:-1] if i + 1 == len(lit) else st[:-1] + (LitFrame(lit, i + 1),)
        if k == "name":
            p = f.prefix + (c,)
            if p in self.tools:
                return st[:-1] + (ObjFrame(self.tools[p], frozenset(), FIRST, ()),)
            return st[:-1] + (NameFrame(p),) if p in self.name_prefixes else None
        if k == "end":
            return (DoneFrame(),) if c == sx.end else None
        return None

    def _step_obj(self, st, f, c):
        node, used, phase, p, _ = f
        sx = self.sx
        top = st[-2].kind == "end"
        close = sx.args_close if top else b"}"
        if phase == OPEN:
            return st[:-1] + (ObjFrame(node, used, FIRST, ()),) if c == 123 else None
        if phase == AFTER:
            more = len(used) < DEFAULT_MAX_ITEMS if node.free else bool(node.keys - used)
            if c == sx.sep[0] and more:
                return self._lit(st[:-1] + (ObjFrame(node, used, NEXT, ()),), sx.sep, 1)
            if c == close[0] and node.required <= used:
                return self._lit(self._finish(st), close, 1) if len(close) > 1 else \
                    self._finish(st)
            return None
        if phase == FIRST and c == close[0]:
            return self._finish(st) if not node.required else None
        if node.free:        # "key": value with an identifier key
            base = st[:-1] + (ObjFrame(node, used | {len(used)}, AFTER, ()),
                              self._fresh(node.value), LitFrame(tuple(sx.dict_kv), 0))
            if sx.key_quoted:
                return self.step(base + (self._fresh(self.free_key),), c)
            return self.step(base + (KeyFrame(b""),), c)
        p2 = p + (c,)
        if p2 in node.prefixes and node.prefixes[p2] - used:
            if p2 in node.props and p2 not in used:   # key words end in their separator
                return st[:-1] + (ObjFrame(node, used | {p2}, AFTER, ()),
                                  self._fresh(node.props[p2]))
            return st[:-1] + (ObjFrame(node, used, KEY, p2),)
        return None

    def next_symbols(self, st):
        """Symbols that may come next: a set, or ANY inside free string content."""
        f = st[-1]
        k = f.kind
        sx = self.sx
        if k == "str":
            if not f.opened:
                return {sx.str_open}
            node, q = f.node, f.q
            if node.dfa is None or q in node.free:
                return ANY
            return {c for c in range(256) if self.step(st, c) is not None} | \
                ({sx.str_close} if self.step(st, sx.str_close) is not None else set())
        if k == "num":
            node, text, _ = f
            own = {ord(ch) for ch in node.syntax.allowed_next(text.decode())}
            if node.syntax.can_end(text.decode()):
                own |= self.next_symbols(self._finish(st))
            return own
        if k == "key":
            out = {c for c in range(256) if self.step(st, c) is not None}
            return out
        if k == "words":
            node, p, _ = f
            out = {w[len(p)] for w in node.prefixes[p] if len(w) > len(p)}
            return out | self.next_symbols(self._finish(st)) if p in node.values else out
        if k == "alt":
            out = set()
            for opt in f.node.options:
                syms = self.next_symbols(st[:-1] + (self._fresh(opt),))
                out |= set(range(256)) if syms is ANY else syms
            return out
        if k == "obj":
            node, used, phase, p, _ = f
            top = st[-2].kind == "end"
            close = (sx.args_close if top else b"}")[0]
            if phase == OPEN:
                return {123}
            if phase == AFTER:
                more = len(used) < DEFAULT_MAX_ITEMS if node.free else bool(node.keys - used)
                return ({sx.sep[0]} if more else set()) | \
                    ({close} if node.required <= used else set())
            if node.free:
                out = self.next_symbols(st + (self._fresh(self.free_key),)) if sx.key_quoted \
                    else {c for c in range(256) if self.step(st, c) is not None}
            else:
                out = {w[len(p)] for w in node.prefixes[p] - used if len(w) > len(p)}
            if phase == FIRST and not node.required:
                out.add(close)
            return out
        if k == "arr":
            node, count, phase, _ = f
            if phase == OPEN:
                return {91}
            if phase == AFTER:
                return ({sx.sep[0]} if count < node.max else set()) | \
                    ({93} if count >= node.min else set())
            first = self.next_symbols(st + (self._fresh(node.item),))
            return first | {93} if phase == FIRST and node.min == 0 else first
        if k == "lit":
            return {f.word[f.i]}
        if k == "name":
            p = f.prefix
            return {w[len(p)] for w in self.name_prefixes[p] if len(w) > len(p)}
        if k == "end":
            return {sx.end}
        return set()

    def feed(self, st, symbols):
        """State after a sequence of symbols, or None."""
        for c in symbols:
            st = self.step(st, c)
            if st is None:
                return None
        return st


class TokenConstraint:
    """Which token ids may come next while a call is being written. `symbol_ids` maps the
    format's non-byte symbols (ESC, END) to their special token ids."""

    def __init__(self, grammar: CallGrammar, vocab, symbol_ids=None):
        self.g, self.v = grammar, vocab
        self.symbol_ids = dict(symbol_ids or {})
        self.id_symbols = {i: s for s, i in self.symbol_ids.items()}
        self._known, self._known_ids = {}, 0

    def start(self):
        return self.g.start()

    def allowed(self, st) -> np.ndarray:
        """Sorted int32 ids allowed after state st (never empty before the call is done);
        read-only. The calls of one toolset pass through the same states request after request
        (a tool's name, its keys, the punctuation) and a walk of the vocabulary costs ~2 ms,
        so the small sets are kept, within ALLOWED_CACHE_IDS ids; a string's large content
        sets are not (their masks have their own cache)."""
        got = self._known.get(st)
        if got is None:
            got = self._allowed(st)
            got.flags.writeable = False
            if len(got) <= ALLOWED_CACHE_IDS // 64:
                if (self._known_ids + len(got) > ALLOWED_CACHE_IDS
                        or len(self._known) >= ALLOWED_CACHE_SETS):
                    self._known, self._known_ids = {}, 0
                self._known[st] = got
                self._known_ids += len(got)
        return got

    def _allowed(self, st) -> np.ndarray:
        syms = self.g.next_symbols(st)
        in_content = self.g.in_content(st)
        if in_content:      # string content: vectorised over the vocabulary; the walk below
            close = self.g.sx.str_close    # only finds the tokens that close the string
            syms = {close} if syms is ANY or close in syms else set()
        found = []
        self._walk(st, syms, 0, len(self.v.keys), b"", found, False)
        found += [i for s, i in self.symbol_ids.items()
                  if s in syms and self.g.step(st, s) is not None]
        if not in_content:
            return np.unique(np.asarray(found, np.int32))
        node, _, count, state, _, q, _ = st[-1]
        auto, room = self.g.sx.string_automaton, node.max - count
        if node.dfa is None or q in node.free:
            return self.v.content_ids(auto, state, room, also=found)
        return self.v.pattern_ids(auto, self.g._str_escaping, state,
                                  (node.dfa.table, node.escape_ok,
                                   node.need, self.g.str_to_char_end), q, room, also=found)

    def _walk(self, st, syms, lo, hi, prefix, out, opened):
        """Ids of the tokens in keys[lo:hi] (all starting with prefix) that may come after
        st; opened: the token's bytes so far opened a string value."""
        keys, ids = self.v.keys, self.v.ids
        in_str = self.g.in_content(st)
        for c in sorted(s for s in (range(256) if syms is ANY else syms) if s < 256):
            nst = self.g.step(st, c)
            if nst is None or (opened and in_str and nst[-1].kind != "str"):
                continue    # it would close the string it opened: see the module docstring
            p2 = prefix + bytes((c,))
            a = bisect_left(keys, p2, lo, hi)
            if a >= hi or not keys[a].startswith(p2):
                continue
            b = bisect_left(keys, prefix + bytes((c + 1,)), a, hi) if c < 255 else hi
            if keys[a] == p2:
                out.extend(ids[a])
                a += 1
            if a < b and not self.g.done(nst):
                self._walk(nst, self.g.next_symbols(nst), a, b, p2, out,
                           opened or (not in_str and self.g.in_content(nst)))

    def advance(self, st, token_id: int):
        """State after token_id; ValueError if the grammar does not allow it."""
        if token_id in self.id_symbols:
            syms = (self.id_symbols[token_id],)
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
