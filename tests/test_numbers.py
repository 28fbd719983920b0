"""Range-aware number syntax (edge_runtime.calls.numbers) against independent references:
an exhaustive enumeration with exact fractions for small digit caps, and the schema validator
(float comparisons) for hypothesis-chosen ranges, both ways."""
from __future__ import annotations

import itertools
import math
import json
import random
import re
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import assume, given, settings, strategies as st

from edge_runtime.calls.numbers import NumberSyntax
from edge_runtime.calls.schema import check_schema, validate

BOUND_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def language(ns: NumberSyntax, limit=200000):
    """Every text a decoder can produce by following allowed_next / can_end."""
    out, todo = [], [""]
    while todo:
        p = todo.pop()
        if ns.can_end(p):
            out.append(p)
        todo += [p + c for c in ns.allowed_next(p)]
        assert len(out) < limit
    return out


def reference(integer, digits, bounds):
    """All texts of the documented language, by brute force over candidate strings."""
    shape = re.compile(r"-?(0|[1-9][0-9]*)" + ("" if integer else r"(\.[0-9]+)?") + r"\Z")
    out = set()
    for n in range(1, digits + 1):
        for ds in itertools.product("0123456789", repeat=n):
            ds = "".join(ds)
            cuts = [n] if integer else range(1, n + 1)
            for cut in cuts:
                body = ds[:cut] + ("." + ds[cut:] if cut < n else "")
                for text in (body, "-" + body):
                    if not shape.match(text):
                        continue
                    v = Fraction(text)
                    if text.startswith("-") and v == 0:
                        continue
                    if in_range(v, bounds):
                        out.add(text)
    return out


def in_range(v, b):
    F = lambda x: Fraction(repr(x)) if isinstance(x, float) else Fraction(x)  # noqa: E731
    return ((b.get("minimum") is None or v >= F(b["minimum"]))
            and (b.get("maximum") is None or v <= F(b["maximum"]))
            and (b.get("exclusiveMinimum") is None or v > F(b["exclusiveMinimum"]))
            and (b.get("exclusiveMaximum") is None or v < F(b["exclusiveMaximum"])))


@pytest.mark.parametrize("integer,bounds", [
    (True, {}), (False, {}),
    (True, {"minimum": -12, "maximum": 7}),
    (True, {"exclusiveMinimum": 0.5, "exclusiveMaximum": 99.5}),
    (False, {"minimum": -1.5, "exclusiveMaximum": 0.25}),
    (False, {"exclusiveMinimum": 0, "maximum": 0.3}),
    (False, {"minimum": 0.07, "maximum": 0.07}),
    (False, {"minimum": 5, "exclusiveMaximum": 5.01}),
    (True, {"minimum": -3, "exclusiveMinimum": -3, "maximum": 0}),
])
def test_exhaustive_small_cap(integer, bounds):
    ns = NumberSyntax(integer, digits=3, **bounds)
    got = language(ns)
    assert len(got) == len(set(got))
    assert set(got) == reference(integer, 3, bounds)


@pytest.mark.parametrize("integer,bounds", [
    (True, {"minimum": 5, "maximum": 4}),
    (True, {"exclusiveMinimum": 1, "exclusiveMaximum": 2}),
    (False, {"exclusiveMinimum": 0, "exclusiveMaximum": 1e-20}),
    (True, {"minimum": 1e16}),
    (False, {"maximum": -1e15}),
])
def test_empty_range_refused(integer, bounds):
    with pytest.raises(ValueError, match="no (integer|number)"):
        NumberSyntax(integer, **bounds)
    schema = {"type": "integer" if integer else "number", **bounds}
    with pytest.raises(ValueError, match="no (integer|number)"):
        check_schema(schema, "tool f: parameters.x")


def test_shape_rules():
    ns = NumberSyntax(False)
    for ok in ("0", "-1", "10.25", "0.000001", "-0.5", "123456789012345", "1.50"):
        assert ns.accepts(ok), ok
    for bad in ("", "-", "01", "-0", "-0.0", "1.", ".5", "1e5", "+1", "1234567890123456",
                "0.000000000000001", "--1", "1..2"):
        assert not ns.accepts(bad), bad
    assert not NumberSyntax(True).accepts("1.0")


bound = st.one_of(st.none(), st.integers(-10**6, 10**6),
                  st.floats(-1e6, 1e6, allow_nan=False).map(lambda x: float(repr(round(x, 3)))))


@st.composite
def ranges(draw):
    integer = draw(st.booleans())
    b = {k: v for k in BOUND_KEYS if (v := draw(bound)) is not None}
    try:
        NumberSyntax(integer, **b)
    except ValueError:
        b = {}
    return integer, b


def random_text(ns, rng):
    """A random walk through the syntax; stops at an accepting prefix with probability 1/3."""
    p = ""
    while True:
        nxt = sorted(ns.allowed_next(p))
        if ns.can_end(p) and (not nxt or rng.random() < 0.33):
            return p
        assert nxt, f"stuck at {p!r}"
        p += rng.choice(nxt)


@settings(max_examples=150, deadline=None)
@given(ranges(), st.integers(0, 2**32))
def test_every_produced_number_validates(r, seed):
    integer, b = r
    ns = NumberSyntax(integer, **b)
    schema = check_schema({"type": "integer" if integer else "number", **b})
    rng = random.Random(seed)
    for _ in range(5):
        text = random_text(ns, rng)
        value = json.loads(text)
        assert validate(value, schema) == [], (text, b)
        assert isinstance(value, int) == ("." not in text)


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=300, deadline=None)
@given(ranges(), st.one_of(st.integers(-10**16, 10**16), finite,
                           st.decimals(-10**6, 10**6, places=4).map(float)))
def test_every_valid_number_is_produced(r, value):
    integer, b = r
    ns = NumberSyntax(integer, **b)
    schema = check_schema({"type": "integer" if integer else "number", **b})
    if validate(value, schema):
        return
    # the shortest plain decimal text of the value
    if isinstance(value, int) or value.is_integer():
        text = str(int(value))
    else:
        text = format(Decimal(repr(value)), "f")
    assert ns.accepts(text), (text, b)
    assert json.loads(text) == value


@st.composite
def value_in_range(draw):
    integer, b = draw(ranges())
    lows = [b[k] for k in ("minimum", "exclusiveMinimum") if k in b]
    highs = [b[k] for k in ("maximum", "exclusiveMaximum") if k in b]
    lo, hi = max(lows, default=-10**7), min(highs, default=10**7)
    if integer:
        value = draw(st.integers(math.ceil(lo), math.floor(hi))) if lo <= hi else None
    else:
        places = draw(st.integers(3, 6))   # bounds have at most 3 places
        value = float(draw(st.decimals(Decimal(repr(lo)), Decimal(repr(hi)), places=places,
                                       allow_nan=False, allow_infinity=False)))
    return integer, b, value


@settings(max_examples=300, deadline=None)
@given(value_in_range())
def test_in_range_values_are_produced(r):
    integer, b, value = r
    schema = check_schema({"type": "integer" if integer else "number", **b})
    assume(value is not None and validate(value, schema) == [])
    text = str(int(value)) if isinstance(value, int) or value.is_integer() else \
        format(Decimal(repr(value)), "f")
    assert NumberSyntax(integer, **b).accepts(text), (text, b)
