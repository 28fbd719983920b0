"""JSON-Schema patterns compiled into byte DFAs (edge_runtime.calls.regex), checked against
Python's re as the reference: on the generated alphabet ECMA and Python (re.ASCII, $ read as
\\Z) agree, so Dfa.matches must equal re.search."""
from __future__ import annotations

import random
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from edge_runtime.calls.regex import MAX_STATES, compile

ALPHABET = "ab0_- é日😀.\nZ9"
LITERALS = ["a", "b", "0", "_", "-", "é", "日", "😀", "Z", "\\.", "\\-"]
CLASSES = ["\\d", "\\w", "\\s", "\\D", "\\W", "\\S", ".", "[ab]", "[^a0]", "[a-c]",
           "[\\d_]", "[^\\w]", "[é-😀]", "[-a]", "[.]"]


def atoms(inner):
    return st.one_of(st.sampled_from(LITERALS), st.sampled_from(CLASSES),
                     inner.map(lambda p: f"({p})"), inner.map(lambda p: f"(?:{p})"))


quantifiers = st.sampled_from(["", "", "", "?", "*", "+", "{2}", "{0,2}", "{1,}", "{1,3}"])


def sequences(inner):
    return st.lists(st.tuples(atoms(inner), quantifiers).map("".join), max_size=4).map("".join)


def alternations(inner):
    return st.lists(sequences(inner), min_size=1, max_size=3).map("|".join)


bodies = st.recursive(st.just(""), alternations, max_leaves=6)


@st.composite
def patterns(draw):
    """(ECMA pattern, Python equivalent): top-level alternatives, each maybe anchored."""
    ecma, py = [], []
    for _ in range(draw(st.integers(1, 2))):
        body = draw(sequences(bodies))
        start, end = draw(st.booleans()), draw(st.booleans())
        ecma.append(("^" if start else "") + body + ("$" if end else ""))
        py.append(("^" if start else "") + body + ("\\Z" if end else ""))
    return "|".join(ecma), "|".join(py)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(patterns(), st.lists(st.text(alphabet=ALPHABET, max_size=10), min_size=8,
                            max_size=8))
def test_matches_agree_with_python_re(pat, texts):
    ecma, py = pat
    try:
        dfa = compile(ecma)
    except ValueError as e:
        assume("DFA states" not in str(e))      # too big to compile: refused, not wrong
        raise
    ref = re.compile(py, re.ASCII)
    for s in texts:
        assert dfa.matches(s) == bool(ref.search(s)), (ecma, s)


@pytest.mark.parametrize("pattern,yes,no", [
    ("^/srv/public/", ["/srv/public/a.txt"], ["/etc/shadow", "x/srv/public/", "/srv/public"]),
    ("a.c", ["abc", "a日c"], ["a\nc", "a\rc", "a\u2028c"]),          # ECMA line terminators
    ("^ab$", ["ab"], ["ab\n", "xab", "abx"]),                       # $ is the very end
    ("\\s", ["\u00a0", "\ufeff", "\t"], ["x"]),                     # ECMA white space
    ("^\\w+$", ["a_9"], ["é", ""]),                                 # \w is ASCII
    ("^\\x41\\u00e9$", ["Aé"], ["A"]),
    ("^[\\]\\-]{2}$", ["]-"], ["]"]),
    ("", ["", "anything"], []),
    ("^(?:ab|cd){2,3}$", ["abcd", "cdcdab"], ["ab", "abababab"]),
    ("^[^\\]]$", ["a"], ["]"]),
])
def test_examples(pattern, yes, no):
    dfa = compile(pattern)
    assert all(dfa.matches(s) for s in yes)
    assert not any(dfa.matches(s) for s in no)


@pytest.mark.parametrize("pattern,why", [
    ("(a)\\1", "backreference"), ("(?=a)", "lookaround"), ("(?!a)", "lookaround"),
    ("(?<=a)b", "lookaround"), ("a*?", "lazy"), ("a+?", "lazy"), ("a{1,2}?", "lazy"),
    ("a**", "nothing to repeat"), ("*a", "nothing to repeat"), ("\\bword", "\\\\b"),
    ("\\p{L}", "\\\\p"), ("(?<n>a)", "named"), ("(?i)a", "flags"), ("a{2", "quantifier"),
    ("a}", "literal"), ("a$b", "only at the ends"), ("a^", "only at the start"),
    ("(a$)", "only at the end"), ("[b-a]", "out of order"), ("a{3,2}", "out of order"),
    ("a{100000}", "above"), ("(a", "missing \\)"), ("[a", "missing \\]"), ("\\", "ends"),
    ("\\ud800", "surrogate"), ("\\q", "not supported"), ("[]", "matches no string"),
])
def test_refused(pattern, why):
    with pytest.raises(ValueError, match=why):
        compile(pattern)


def test_state_count_bounded():
    with pytest.raises(ValueError, match=f"more than {MAX_STATES} DFA states"):
        compile("(a|b)*a(a|b){12}")
    dfa = compile("^[a-z]{0,64}$")
    assert dfa.table.dtype == np.int32 and dfa.table.shape[1] == 256
    assert len(dfa.table) <= 66


@pytest.mark.parametrize("pattern", ["^/srv/public/", "é.+😀", "^[^a]{1,3}$", "", "\\W\\d"])
def test_table_is_live_and_utf8_only(pattern):
    dfa = compile(pattern)
    n = len(dfa.table)
    assert dfa.accept.shape == (n,) and 0 <= dfa.start < n
    assert ((dfa.table >= -1) & (dfa.table < n)).all()
    # every state reaches an accepting state (a decoder following the table never sticks)
    live = dfa.accept.copy()
    for _ in range(n):
        live |= np.array([any(live[t] for t in row if t >= 0) for row in dfa.table])
    assert live.all()
    # distance to acceptance, for walks that must end
    dist = np.where(dfa.accept, 0, n)
    for _ in range(n):
        for i, row in enumerate(dfa.table):
            dist[i] = min(dist[i], 1 + min((dist[t] for t in row if t >= 0), default=n))
    # random walks over the live bytes (after 40 steps, straight to acceptance): whatever is
    # accepted is valid UTF-8 and matches
    rng = random.Random(0)
    for _ in range(200):
        data, s = bytearray(), dfa.start
        while True:
            live_bytes = np.flatnonzero(dfa.table[s] >= 0)
            if dfa.accept[s] and (rng.random() < 0.2 or len(data) >= 40 or not len(live_bytes)):
                break
            if len(data) >= 40:
                live_bytes = [b for b in live_bytes if dist[dfa.table[s, b]] < dist[s]]
            b = int(rng.choice(list(live_bytes)))
            s = int(dfa.table[s, b])
            data.append(b)
        assert dfa.matches(data.decode("utf-8"))
