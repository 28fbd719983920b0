"""JSON-Schema `pattern` compiled into a byte-level DFA over UTF-8, for constrained decoding.

Semantics are ECMA-262's (what JSON Schema specifies), searched unanchored: "ab" matches any
string containing "ab"; ^ and $ anchor at the start and end of the whole string (no multiline;
"$" does not match before a final newline).

The subset:
  literals (any code point), escapes \\n \\r \\t \\f \\v \\0 \\xHH \\uHHHH and an escaped
  syntax character (\\. \\\\ \\/ \\- \\^ \\$ \\* \\+ \\? \\( \\) \\[ \\] \\{ \\} \\|),
  . (any code point but the line terminators \\n \\r U+2028 U+2029),
  classes [...] with ranges and [^...], and \\d \\w \\s \\D \\W \\S (ASCII digits and word
  characters, ECMA's white space) inside or outside classes,
  groups (...), (?:...), alternation |, quantifiers ? * + {m} {m,} {m,n} (m, n <= MAX_REPEAT),
  ^ only first and $ only last in a top-level alternative.
Refused with ValueError: backreferences, lookaround, lazy or possessive quantifiers, \\b \\B,
\\p{...}, named groups, flags, an unescaped { or } that is not a quantifier, anything else.

The DFA runs over bytes and accepts exactly the UTF-8 encodings of the matching strings (it
never accepts invalid UTF-8). Only live states are kept: from every state an accepting state
is reachable, so a decoder that follows the table can always finish. Its size is bounded by
MAX_STATES (a pattern that needs more is refused).
"""
from __future__ import annotations

import functools

import numpy as np

MAX_STATES = 2048      # DFA states
MAX_NFA = 20000        # NFA states while building
MAX_REPEAT = 256       # largest m or n in {m,n}
MAX_NESTING = 64       # nested groups

_MAX_CP = 0x10FFFF
_LINE_TERMINATORS = [(0x0A, 0x0A), (0x0D, 0x0D), (0x2028, 0x2029)]
_DIGIT = [(0x30, 0x39)]
_WORD = [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)]
_SPACE = [(0x09, 0x0D), (0x20, 0x20), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A),
          (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000),
          (0xFEFF, 0xFEFF)]
_SYNTAX = set("^$\\.*+?()[]{}|/-")
_CONTROL = {"n": 0x0A, "r": 0x0D, "t": 0x09, "f": 0x0C, "v": 0x0B, "0": 0x00}


# ---- code point sets: sorted disjoint [(lo, hi)] ----------------------------------------------

def _union(ranges):
    out = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _complement(ranges):
    out, nxt = [], 0
    for lo, hi in _union(ranges):
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= _MAX_CP:
        out.append((nxt, _MAX_CP))
    return out


_ANY = [(0, _MAX_CP)]
_DOT = _complement(_LINE_TERMINATORS)
_CLASS_ESCAPES = {"d": _DIGIT, "w": _WORD, "s": _SPACE, "D": _complement(_DIGIT),
                  "W": _complement(_WORD), "S": _complement(_SPACE)}


# ---- parsing into ("set", ranges) | ("cat", [..]) | ("alt", [..]) | ("rep", node, m, n|None)

class _Parser:
    def __init__(self, pattern):
        self.p, self.i, self.depth = pattern, 0, 0

    def fail(self, msg):
        raise ValueError(f"{msg} at position {self.i}")

    def peek(self):
        return self.p[self.i] if self.i < len(self.p) else None

    def take(self):
        c = self.peek()
        self.i += 1
        return c

    def top(self):
        """[(anchored_start, node, anchored_end)] per top-level alternative."""
        alts = []
        while True:
            start = self.peek() == "^"
            if start:
                self.i += 1
            items = self.sequence()
            end = self.peek() == "$"
            if end:
                self.i += 1
            alts.append((start, ("cat", items), end))
            if self.peek() is None:
                return alts
            if self.peek() != "|":
                self.fail(f"{self.peek()!r} is not supported here (^ and $ only at the ends)")
            self.i += 1

    def alternation(self):
        alts = [("cat", self.sequence())]
        while self.peek() == "|":
            self.i += 1
            alts.append(("cat", self.sequence()))
        return alts[0] if len(alts) == 1 else ("alt", alts)

    def sequence(self):
        items = []
        while self.peek() not in (None, "|", ")", "$"):
            atom = self.atom()
            items.append(self.quantified(atom))
        return items

    def atom(self):
        c = self.take()
        if c == "(":
            return self.group()
        if c == "[":
            return ("set", self.klass())
        if c == ".":
            return ("set", _DOT)
        if c == "\\":
            return ("set", self.escape(in_class=False))
        if c in "*+?":
            self.fail("nothing to repeat")
        if c in "{}":
            self.fail(f"write a literal {c} as \\{c}")
        if c == "^":
            self.fail("^ is supported only at the start")
        return ("set", [(ord(c), ord(c))])

    def group(self):
        if self.peek() == "?":
            if self.p[self.i:self.i + 2] != "?:":
                self.fail("lookaround, named groups and flags are not supported")
            self.i += 2
        self.depth += 1
        if self.depth > MAX_NESTING:
            self.fail(f"groups nest deeper than {MAX_NESTING}")
        node = self.alternation()
        self.depth -= 1
        if self.peek() == "$":
            self.fail("$ is supported only at the end")
        if self.take() != ")":
            self.fail("missing )")
        return node

    def quantified(self, atom):
        c = self.peek()
        if c is None or c not in "*+?{":
            return atom
        self.i += 1
        if c == "{":
            lo, hi = self.braces()
        else:
            lo, hi = {"*": (0, None), "+": (1, None), "?": (0, 1)}[c]
        if self.peek() == "?":
            self.fail("lazy quantifiers are not supported")
        if self.peek() is not None and self.peek() in "*+{":
            self.fail("nothing to repeat")
        return ("rep", atom, lo, hi)

    def braces(self):
        close = self.p.find("}", self.i)
        body = self.p[self.i:close] if close >= 0 else ""
        lo, comma, hi = body.partition(",")
        if not lo.isdigit() or not (hi.isdigit() or hi == "") or not lo.isascii() \
                or not hi.isascii():
            self.fail("a { must start a quantifier {m}, {m,} or {m,n} (escape a literal {)")
        self.i = close + 1
        lo = int(lo)
        hi = lo if not comma else (int(hi) if hi else None)
        if lo > MAX_REPEAT or (hi is not None and hi > MAX_REPEAT):
            self.fail(f"repetition counts above {MAX_REPEAT} are not supported")
        if hi is not None and hi < lo:
            self.fail("numbers out of order in {m,n}")
        return lo, hi

    def escape(self, in_class):
        c = self.take()
        if c is None:
            self.fail("pattern ends with \\")
        if c in _CLASS_ESCAPES:
            return _CLASS_ESCAPES[c]
        if c in _CONTROL and not (c == "0" and (self.peek() or "").isdigit()):
            return [(_CONTROL[c],) * 2]
        if c in "xu":
            n = 2 if c == "x" else 4
            digits = self.p[self.i:self.i + n]
            if len(digits) != n or any(d not in "0123456789abcdefABCDEF" for d in digits):
                self.fail(f"\\{c} needs {n} hex digits")
            self.i += n
            cp = int(digits, 16)
            if 0xD800 <= cp <= 0xDFFF:
                self.fail("surrogate code points are not supported")
            return [(cp, cp)]
        if c in _SYNTAX:
            return [(ord(c), ord(c))]
        if c.isdigit():
            self.fail("backreferences are not supported")
        self.fail(f"escape \\{c} is not supported")

    def klass(self):
        negate = self.peek() == "^"
        if negate:
            self.i += 1
        ranges = []
        while True:
            c = self.take()
            if c is None:
                self.fail("missing ]")
            if c == "]":
                break
            lo = self.class_atom(c)
            if self.peek() == "-" and self.p[self.i + 1:self.i + 2] not in ("]", ""):
                self.i += 1
                hi = self.class_atom(self.take())
                if len(lo) != 1 or len(hi) != 1 or lo[0][0] != lo[0][1] or \
                        hi[0][0] != hi[0][1]:
                    self.fail("a class escape cannot bound a range")
                if hi[0][0] < lo[0][0]:
                    self.fail("range out of order in class")
                lo = [(lo[0][0], hi[0][0])]
            ranges += lo
        return _complement(ranges) if negate else _union(ranges)

    def class_atom(self, c):
        if c == "\\":
            if self.peek() == "b":
                self.fail("\\b is not supported")
            return self.escape(in_class=True)
        if c == "[":
            self.fail("write a literal [ in a class as \\[")
        return [(ord(c), ord(c))]


# ---- UTF-8: a code point range as byte-range sequences ---------------------------------------

def _utf8_sequences(lo, hi):
    """[[(b_lo, b_hi), ...]] whose byte strings are exactly the UTF-8 of lo..hi (surrogates
    removed)."""
    out = []
    for s, e in ((0, 0x7F), (0x80, 0x7FF), (0x800, 0xD7FF), (0xE000, 0xFFFF),
                 (0x10000, _MAX_CP)):       # one UTF-8 length each, surrogates left out
        if max(lo, s) <= min(hi, e):
            out += _split(max(lo, s), min(hi, e))
    return out


def _split(a, b):
    n = len(chr(a).encode())
    for i in range(1, n):
        m = (1 << (6 * i)) - 1
        if a & ~m != b & ~m:
            if a & m:
                return _split(a, a | m) + _split((a | m) + 1, b)
            if b & m != m:
                return _split(a, (b & ~m) - 1) + _split(b & ~m, b)
    ea, eb = chr(a).encode(), chr(b).encode()
    return [list(zip(ea, eb))]


# ---- NFA (Thompson) and DFA (subset construction) -------------------------------------------

class _Nfa:
    def __init__(self):
        self.edges, self.eps = [], []

    def state(self):
        if len(self.edges) >= MAX_NFA:
            raise ValueError("pattern is too large")
        self.edges.append([])
        self.eps.append([])
        return len(self.edges) - 1

    def build(self, node, start):
        """Adds node after state start; returns its end state."""
        kind = node[0]
        if kind == "set":
            end = self.state()
            for lo, hi in node[1]:
                for seq in _utf8_sequences(lo, hi):
                    s = start
                    for j, (blo, bhi) in enumerate(seq):
                        t = end if j == len(seq) - 1 else self.state()
                        self.edges[s].append((blo, bhi, t))
                        s = t
            return end
        if kind == "cat":
            for item in node[1]:
                start = self.build(item, start)
            return start
        if kind == "alt":
            end = self.state()
            for item in node[1]:
                s = self.state()
                self.eps[start].append(s)
                self.eps[self.build(item, s)].append(end)
            return end
        _, body, lo, hi = node
        for _ in range(lo):
            start = self.build(body, start)
        if hi is None:                       # a loop: body then back, or leave
            loop = self.state()
            self.eps[start].append(loop)
            self.eps[self.build(body, loop)].append(loop)
            return loop
        end = self.state()
        for _ in range(hi - lo):
            self.eps[start].append(end)
            start = self.build(body, start)
        self.eps[start].append(end)
        return end

    def closure(self, states):
        seen, todo = set(states), list(states)
        while todo:
            for t in self.eps[todo.pop()]:
                if t not in seen:
                    seen.add(t)
                    todo.append(t)
        return frozenset(seen)


class Dfa:
    """table int32 [n_states, 256] (-1: dead), start, accept bool [n_states]."""

    def __init__(self, table, start, accept):
        self.table, self.start, self.accept = table, start, accept

    def run(self, data: bytes) -> int:
        s = self.start
        for b in data:
            if s < 0:
                break
            s = int(self.table[s, b])
        return s

    def matches(self, s: str) -> bool:
        try:
            data = s.encode("utf-8")
        except UnicodeEncodeError:      # lone surrogates: no UTF-8, no match
            return False
        state = self.run(data)
        return state >= 0 and bool(self.accept[state])


@functools.lru_cache(maxsize=256)
def compile(pattern: str) -> Dfa:
    """The DFA of an ECMA pattern in the subset (ValueError naming what is not supported)."""
    if not isinstance(pattern, str):
        raise ValueError("a pattern must be a string")
    alts = _Parser(pattern).top()
    nfa = _Nfa()
    begin, final = nfa.state(), nfa.state()
    for anchored_start, node, anchored_end in alts:
        s = nfa.state()
        nfa.eps[begin].append(s)
        if not anchored_start:
            s = nfa.build(("rep", ("set", _ANY), 0, None), s)
        s = nfa.build(node, s)
        if not anchored_end:
            s = nfa.build(("rep", ("set", _ANY), 0, None), s)
        nfa.eps[s].append(final)
    return _determinize(nfa, begin, final)


def _determinize(nfa, begin, final):
    # bytes no edge tells apart share a class: subsets are built per class, not per byte
    cuts = sorted({0, 256} | {b for edges in nfa.edges for lo, hi, _ in edges
                              for b in (lo, hi + 1)})
    class_of = np.zeros(257, np.int64)
    for i, (a, b) in enumerate(zip(cuts, cuts[1:])):
        class_of[a:b] = i
    spans = list(zip(cuts, cuts[1:]))
    first = nfa.closure([begin])
    index, sets, rows, closures = {first: 0}, [first], [], {}
    while len(rows) < len(sets):
        targets = [set() for _ in spans]
        for s in sets[len(rows)]:
            for lo, hi, t in nfa.edges[s]:
                for c in range(class_of[lo], class_of[hi] + 1):
                    targets[c].add(t)
        row = np.full(256, -1, np.int32)
        for (a, b), ts in zip(spans, targets):
            if not ts:
                continue
            ts = frozenset(ts)
            key = closures.get(ts) or closures.setdefault(ts, nfa.closure(ts))
            if key not in index:
                if len(sets) >= MAX_STATES:
                    raise ValueError(f"pattern needs more than {MAX_STATES} DFA states")
                index[key] = len(sets)
                sets.append(key)
            row[a:b] = index[key]
        rows.append(row)
    table = np.stack(rows)
    accept = np.array([final in s for s in sets], bool)
    return _live(table, 0, accept)


def _live(table, start, accept):
    """Drops states from which no accepting state is reachable (edges to them become -1) and
    renumbers; an empty language leaves a single dead start state."""
    n = len(table)
    live = accept.copy()
    changed = True
    while changed:
        reach = np.zeros(n, bool)
        valid = table >= 0
        reach = (valid & live[np.where(valid, table, 0)]).any(axis=1)
        grown = live | reach
        changed = bool((grown != live).any())
        live = grown
    if not live[start]:
        raise ValueError("pattern matches no string")
    order = np.flatnonzero(live)
    renum = np.full(n, -1, np.int32)
    renum[order] = np.arange(len(order), dtype=np.int32)
    sub = table[order]
    new = np.where(sub >= 0, renum[np.where(sub >= 0, sub, 0)], -1).astype(np.int32)
    return _minimal(new, int(renum[start]), accept[order])


def _numbered(rows):
    """Equal rows get equal numbers 0, 1, ... in order of first appearance."""
    seen = {}
    return np.array([seen.setdefault(r.tobytes(), len(seen)) for r in rows], np.int64)


def _minimal(table, start, accept):
    """Moore's partition refinement: states with the same future become one."""
    cls = _numbered(accept[:, None])
    while True:
        nxt = np.where(table >= 0, cls[np.where(table >= 0, table, 0)], -1)
        new = _numbered(np.column_stack([cls, nxt]))
        if new.max() == cls.max():     # no class split: the partition is stable
            break
        cls = new
    # first state of each class stands for it; keep the start at a stable id
    n = int(cls.max()) + 1
    rep = np.zeros(n, np.int64)
    rep[cls[::-1]] = np.arange(len(cls))[::-1]
    small = np.where(table[rep] >= 0, cls[np.where(table[rep] >= 0, table[rep], 0)], -1)
    return Dfa(small.astype(np.int32), int(cls[start]), accept[rep])
