"""Number text for constrained decoding, aware of the schema's range.

The language of NumberSyntax(integer, minimum=..., ...):

    integer:  -?(0|[1-9][0-9]*)
    number:   -?(0|[1-9][0-9]*)(\\.[0-9]+)?       (no exponent; trailing zeros allowed)

with at most `digits` digit characters in all ("-0.05" has 3), no negative zero ("-0",
"-0.00"), and a value inside the bounds. Bounds are compared in decimal, as the schema wrote
them (a float bound is read through its shortest repr: maximum 0.3 admits "0.3"). With
digits <= 15 every text round-trips through a double, so the validator's float comparison and
this decimal one agree on every text the language holds.

allowed_next(prefix) gives the characters that keep prefix extendable to a text of the
language, can_end(prefix) whether prefix is one: a decoder that follows them produces exactly
the language, and never gets stuck (every extendable prefix has a completion).
"""
from __future__ import annotations

import functools
import re
from decimal import Decimal
from fractions import Fraction

MAX_DIGITS = 15     # digit characters of a number: every such decimal is exact as a double

_SHAPE = re.compile(r"(-?)(\d*)(\.?)(\d*)\Z")
_CHARS = "-.0123456789"


def _exact(v) -> Fraction:
    return Fraction(v) if isinstance(v, int) else Fraction(Decimal(repr(float(v))))


class NumberSyntax:
    """The number texts a schema node allows; ValueError if there is none."""

    def __init__(self, integer: bool, minimum=None, maximum=None, exclusiveMinimum=None,
                 exclusiveMaximum=None, digits: int = MAX_DIGITS):
        if not 1 <= digits <= MAX_DIGITS:
            raise ValueError(f"digits must be 1..{MAX_DIGITS}")
        self.integer, self.digits = integer, digits
        lows = [(_exact(v), excl) for v, excl in ((minimum, False), (exclusiveMinimum, True))
                if v is not None]
        highs = [(_exact(v), excl) for v, excl in ((maximum, False), (exclusiveMaximum, True))
                 if v is not None]
        # the tighter bound wins; at a tie the exclusive one is tighter
        self.lo = max(lows, key=lambda b: (b[0], b[1])) if lows else None
        self.hi = min(highs, key=lambda b: (b[0], not b[1])) if highs else None
        self.allowed_next = functools.lru_cache(maxsize=4096)(self._allowed_next)
        if not self.allowed_next(""):
            kind = "integer" if integer else "number"
            raise ValueError(f"no {kind} of at most {digits} digits lies in the range "
                             f"({self._describe()})")

    def _describe(self):
        parts = []
        if self.lo:
            parts.append(f"{'>' if self.lo[1] else '>='} {float(self.lo[0]):g}")
        if self.hi:
            parts.append(f"{'<' if self.hi[1] else '<='} {float(self.hi[0]):g}")
        return ", ".join(parts) or "unbounded"

    # -- the language

    def _parts(self, p):
        """(negative, int digits, has dot, fraction digits) if p is a syntactic prefix."""
        m = _SHAPE.match(p)
        if not m:
            return None
        sign, whole, dot, frac = m.groups()
        if (len(whole) > 1 and whole[0] == "0") or (dot and (self.integer or not whole)) \
                or (frac and not dot) or len(whole) + len(frac) > self.digits:
            return None
        return bool(sign), whole, bool(dot), frac

    def _side(self, negative):
        """(lo, hi) bounds on the magnitude x = |value| for one sign; x > 0 when negative."""
        if not negative:
            return self.lo, self.hi
        lo = (-self.hi[0], self.hi[1]) if self.hi else None
        if lo is None or lo[0] < 0 or (lo[0] == 0 and not lo[1]):
            lo = (Fraction(0), True)
        hi = (-self.lo[0], self.lo[1]) if self.lo else None
        return lo, hi

    def _hit(self, start, width, step, lo, hi) -> bool:
        """Is some x = start + n*step (n >= 0, n*step < width) within (lo, hi)?"""
        n = 0
        if lo is not None and start <= lo[0]:
            n = -((start - lo[0]) // step)                # ceil((lo - start) / step)
            if lo[1] and start + n * step == lo[0]:
                n += 1
        if n * step >= width:
            return False
        x = start + n * step
        return hi is None or x < hi[0] or (x == hi[0] and not hi[1])

    def _viable(self, p) -> bool:
        parts = self._parts(p)
        if parts is None:
            return False
        negative, whole, dot, frac = parts
        if not whole:
            return any(self._viable(p + d) for d in "0123456789")
        lo, hi = self._side(negative)
        left = self.digits - len(whole) - len(frac)
        if not dot:
            start = Fraction(int(whole))
            grow = range(left + 1) if whole[0] != "0" else range(1)
            for m in grow:                               # m more integer digits
                fraction = 0 if self.integer else left - m
                if self._hit(start * 10 ** m, Fraction(10 ** m), Fraction(1, 10 ** fraction),
                             lo, hi):
                    return True
            return False
        unit = Fraction(1, 10 ** len(frac))
        start = int(whole) + int(frac or 0) * unit
        if left == 0:
            return bool(frac) and self._hit(start, unit, unit, lo, hi)
        return self._hit(start, unit, unit / 10 ** left, lo, hi)

    def _allowed_next(self, prefix: str) -> frozenset:
        return frozenset(c for c in _CHARS if self._viable(prefix + c))

    def can_end(self, prefix: str) -> bool:
        parts = self._parts(prefix)
        if parts is None:
            return False
        negative, whole, dot, frac = parts
        if not whole or (dot and not frac):
            return False
        x = Fraction(int(whole)) + (Fraction(int(frac), 10 ** len(frac)) if frac else 0)
        lo, hi = self._side(negative)
        return self._hit(x, Fraction(1), Fraction(1), lo, hi)

    def accepts(self, text: str) -> bool:
        """Whether text is in the language, walking it as a decoder would."""
        return all(text[i] in self.allowed_next(text[:i]) for i in range(len(text))) \
            and self.can_end(text)
