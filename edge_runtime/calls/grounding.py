"""Grounded arguments: while a call is decoded, values the request contains are made easy.

A small model copies badly: left alone it drifts into the declarations' wording or runs a
number to its digit cap. Grounding adds a logit bonus (never a hard restriction: a value the
request does not spell, like a unit's default, can still be written) to the allowed tokens that
  - continue the string value typed so far as a span of the request (spans start at word
    starts), or close it where such a span ends a phrase: the request's end, punctuation or a
    connective word next (at every word boundary, the taught model cut copied messages short:
    "remember to pot" for "saying: remember to pot on the basil"); for a date property (its
    description spells a format such as 'dd/mm/yyyy', or its name says date), continue or
    close one of the dates the request spells with a month name, in that format; for a time
    property (HH:MM in its description, or time in its name), one of the times of day the
    request spells with am/pm, a part of the day or "noon", as 24-hour HH:MM;
  - continue the number typed so far as one of the request's numbers (also those it spells:
    "three", "213 million", "1e-9"), or end it where one ends. Each mention of a number in
    the request is offered until the call has written it: a small model otherwise copies the
    first number into every numeric argument (`hours=6, minutes=6` for "at 6:30"). A
    percentage is offered as a fraction ("5%" as 0.05) to a number property that names a
    rate or asks for a decimal or fraction, unless it says it takes a percentage; a duration
    ("10 minutes") is offered in the unit a property names ("seconds": 600), where that is a
    whole number (or the property takes decimals), and its number as written ("10") gets a
    penalty there;
  - spell a tool's name, in a reply's first call, by the request words its name and
    descriptions share (a second call it led back to the first call's tool: call_index);
and a penalty to the tokens that lead only to keys of optional arguments the request does not
mention (a word of the property's own name, description or enum values, not one of the tool's
topic, is in the request: see _mentioned; never a boolean's, whose value a verb can say:
"unlock"), at every choice of a key: keys come in the format's order (FunctionGemma's is
sorted), so one may come before a required key. Left alone, a small model fills optional
arguments with a number or a word copied from elsewhere in the request. Whether a value ends the call or another argument follows is left to the model:
holding back either way there (also a separator where only unasked keys are left), and easing
the mentioned keys, cost the taught model right calls (docs/TOOL_CALLING.md).
"""
from __future__ import annotations

import datetime
import re
from bisect import bisect_left
from collections import Counter
from decimal import Decimal
from fractions import Fraction
from typing import NamedTuple, Optional

import numpy as np

from .grammar import AFTER

BONUS = 4.0                   # logits; chosen on BFCL simple_python (docs/TOOL_CALLING.md)
# per request word a tool's name and descriptions share: one word of difference at BONUS was
# often too little to turn the model from a tool it prefers (BFCL multiple, live_multiple)
NAME_BONUS = 2 * BONUS
HOLD = BONUS                  # logits an unasked optional argument's key is held back by
# the rules (module docstring), each of which can be left out alone (Agent(grounding=...)),
# so what each adds is measured on the taught model (tools/bench_dev.py --grounding-off)
RULES = ("spans", "dates", "numbers", "units", "words", "names", "args")
_MAX_PIECE = 24               # longest token piece looked up at a request position
_NUMBER = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_WRITTEN_NUMBER = re.compile(rb"(?<![\w.])" + _NUMBER.pattern)   # not the 1 of `coord1=`
# numbers the request spells: "three days", "213 million", "twice"
_NUMBER_WORDS = {w.encode(): str(i).encode() for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve".split())}
_NUMBER_WORDS[b"twice"] = b"2"
_SCALE = re.compile(rb"\s*(thousand|million|billion)\b")
_SCALES = {b"thousand": 10 ** 3, b"million": 10 ** 6, b"billion": 10 ** 9}
_PERCENT = re.compile(rb"\s*(%|percent\b)")
# a duration's unit after its number, and the units a property may name (stemmed), in seconds
_DURATION = re.compile(rb"\s*(sec|second|min|minute|hr|hour|day)s?\b")
_UNIT_SECONDS = {"sec": 1, "second": 1, "min": 60, "minut": 60, "hr": 3600, "hour": 3600,
                 "day": 86400}
_WORD = re.compile(rb"\w")
# a word after which a copied phrase may end ("log 'tea' and ping me")
_CONNECTIVE = re.compile(rb"(and|then|but|or|so|because|please|thanks)\b")


_STOP = frozenset("a an and are at be by can do for from get give how i in include including "
                  "is it me my of on or please set show tell that the this to turn what whats "
                  "when where which who will with you your".split())


_SUFFIXES = ("ation", "ing", "ed", "es", "ly", "s")
# "a timer called tea": these words say that a name, label or title follows
_NAMING = frozenset("called named labelled labeled titled".split())


def _stem(w: str) -> str:
    """Crude: one common suffix off, then a doubled final consonant and a final 'e'
    ("labelled" and "label", "exploring" and "exploration", "named" and "name" meet)."""
    for suffix in _SUFFIXES:
        if w.endswith(suffix) and len(w) > len(suffix) + 2:
            w = w[:-len(suffix)]
            if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "aeiou":
                w = w[:-1]
            break
    return w[:-1] if len(w) > 3 and w.endswith("e") else w


def _words(text: str) -> set:
    """Content words, stemmed (camelCase and snake_case split, lower case)."""
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text).lower().replace("_", " ")
    out = set()
    for w in re.findall(r"[a-z0-9]+", text):
        if w not in _STOP and len(w) > 1:
            out.add(_stem(w))
        if w in _NAMING:
            out |= {"nam", "label", "titl"}
    return out


class _Mention(NamedTuple):
    """One number the request writes or spells."""
    spellings: frozenset            # how a call writes it: "-5" and "5"; "8.5" and "8500000"
    fraction: Optional[bytes]       # a percentage as a fraction: b"0.05" for "5%"
    seconds: Optional[Fraction] = None    # a duration ("10 minutes": 600)

    def in_unit(self, unit: int, integer: bool) -> Optional[bytes]:
        """The duration in a unit of `unit` seconds, as a call writes it; None if it is not a
        duration, or not a whole number where one is needed."""
        if self.seconds is None:
            return None
        v = self.seconds / unit
        if v.denominator == 1:
            return str(v.numerator).encode()
        return None if integer else _digits(float(v))

    def written_as(self) -> frozenset:
        """Every way a call may have written it (to count it as written)."""
        ways = self.spellings | {self.fraction}
        if self.seconds is not None:
            ways |= {self.in_unit(u, False) for u in set(_UNIT_SECONDS.values())}
        return ways - {None}


def _number_mentions(plain: bytes) -> list:
    """The request's numbers in order (plain: lower case, thousands separators removed)."""
    found = [(m.start(), m.end(), m.group()) for m in _NUMBER.finditer(plain)]
    found += [(m.start(), m.end(), _NUMBER_WORDS[m.group()])
              for m in re.finditer(rb"[a-z]+", plain) if m.group() in _NUMBER_WORDS]
    out = []
    for _, end, n in sorted(found):
        ways = {n, n.lstrip(b"-")}
        scale = _SCALE.match(plain, end)
        if scale:
            ways.add(_digits(float(n) * _SCALES[scale.group(1)]))
        fraction = _PERCENT.match(plain, end) and \
            format(Decimal(n.decode()) / 100, "f").encode()
        unit = _DURATION.match(plain, end)
        seconds = Fraction(n.decode()) * _UNIT_SECONDS[_stem(unit.group(1).decode())] \
            if unit else None
        out.append(_Mention(frozenset(ways), fraction or None, seconds))
    return out


_FRACTION_WORDS = frozenset(_stem(w) for w in "decimal fraction rate ratio yield return".split())
_PERCENT_WORDS = frozenset(_stem(w) for w in "percent percentage".split())


def _unit_of(key: str, schema) -> Optional[int]:
    """The time unit (in seconds) a number property names ("seconds", "duration_minutes",
    "How long, in hours"), if it names exactly one."""
    if not schema or schema.get("type") not in ("integer", "number"):
        return None
    units = {_UNIT_SECONDS[w] for w in _words(_property_text(key, schema)) if w in _UNIT_SECONDS}
    return units.pop() if len(units) == 1 else None


def _takes_fraction(key: str, schema) -> bool:
    """Whether a number property takes a percentage as a fraction: it names a rate (or a
    yield, a return, a ratio), asks for a decimal or a fraction, or is at most 1; and does
    not say it takes a percentage."""
    if not schema or schema.get("type") != "number":
        return False
    said = _words(_property_text(key, schema))
    if said & _PERCENT_WORDS:
        return False
    return bool(said & _FRACTION_WORDS) or schema.get("maximum", 2) <= 1


_MONTHS = {m: i for i, m in enumerate("january february march april may june july august "
                                      "september october november december".split(), 1)}
_MONTHS |= {m[:3]: i for m, i in _MONTHS.items()} | {"sept": 9}
_MON = r"(?P<mon>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DAY, _YEAR = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?", r"(?P<year>\d{4})"
_DATE_FORMS = [re.compile(p, re.I) for p in (       # "10th of December 2022", "March 17,
    rf"\b{_DAY}\s+(?:of\s+)?{_MON},?\s+{_YEAR}\b",   # 1915", "2023 April 4th"
    rf"\b{_MON}\s+{_DAY},?\s+{_YEAR}\b", rf"\b{_YEAR}\s+{_MON}\s+{_DAY}\b")]
# a format a description spells: "in the format of 'dd/mm/yyyy'"; one with a time is left alone
_DATE_HINT = re.compile(r"(y{2,4}|mm|dd)([-/.])(y{2,4}|mm|dd)\2(y{2,4}|mm|dd)(t|\s*hh)?", re.I)
_STRFTIME = {"yyyy": "%Y", "yyy": "%Y", "yy": "%y", "mm": "%m", "dd": "%d"}


def _request_dates(request: str) -> list:
    """The calendar dates the request spells with a month name, in order."""
    found = []
    for form in _DATE_FORMS:
        for m in form.finditer(request):
            try:
                d = datetime.date(int(m["year"]), _MONTHS[m["mon"].lower()], int(m["day"]))
            except ValueError:
                continue
            found.append((m.start(), d))
    return [d for _, d in sorted(found)]


_HOUR = r"(?P<h>\d{1,2}|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"
_PART = (r"(?:\s*(?P<ap>[ap])\.?m\b\.?|\s+o'?clock)?"
         r"(?:\s+(?:in the (?P<part>morning|afternoon|evening)|at (?P<night>night)))?")
_TIME_FORMS = re.compile(
    r"\b(?:(?P<rel>quarter past|half past|quarter to)\s+)?" + _HOUR + r"(?::(?P<m>[0-5]\d))?"
    + _PART + r"|\b(?P<word>noon|midday|midnight)\b", re.I)
_REL_MINUTES = {"quarter past": 15, "half past": 30, "quarter to": -15}


def _request_times(request: str) -> list:
    """The times of day the request spells unambiguously ("3pm", "7:45 a.m.", "quarter to 7
    in the morning", "8 o'clock in the evening", "noon"), in order, as (hour, minute)."""
    out = []
    for m in _TIME_FORMS.finditer(request):
        if m["word"]:
            out.append((0 if m["word"].lower() == "midnight" else 12, 0))
            continue
        if not (m["ap"] or m["part"] or m["night"]):
            continue       # "at 7", "quarter to 7": morning or evening, the request does not say
        h = m["h"].lower()
        h = int(h) if h.isdigit() else int(_NUMBER_WORDS[h.encode()])
        if not 1 <= h <= 12 or (m["rel"] and m["m"]):
            continue
        pm = (m["ap"] or "").lower() == "p" or bool(m["night"]) or \
            (m["part"] or "").lower() in ("afternoon", "evening")
        minutes = (h % 12 + 12 * pm) * 60 + int(m["m"] or 0) + _REL_MINUTES.get(
            (m["rel"] or "").lower(), 0)
        out.append(divmod(minutes % (24 * 60), 60))
    return out


def _takes_time(key, schema) -> bool:
    """A string property that takes a 24-hour time: its description says HH:MM (and no
    date), or its name says time (and not date)."""
    if not schema or schema.get("type") != "string" or "enum" in schema:
        return False
    desc = schema.get("description", "").lower()
    if "hh:mm" in desc:
        return not _DATE_HINT.search(desc)
    named = re.sub(r"([a-z])([A-Z])", r"\1 \2", key).lower().replace("_", " ").split()
    return "time" in named and "date" not in named


def _date_format(key, schema) -> Optional[str]:
    """The strftime format a string property takes a date in: the one its description spells,
    else ISO 8601 where its name says date (and not time); None for other properties."""
    if not schema or schema.get("type") != "string" or "enum" in schema:
        return None
    hint = _DATE_HINT.search(schema.get("description", ""))
    if hint:
        parts = [hint[1].lower(), hint[3].lower(), hint[4].lower()]
        if hint[5] or sorted(p[0] for p in parts) != ["d", "m", "y"]:
            return None
        return hint[2].join(_STRFTIME[p] for p in parts)
    named = re.sub(r"([a-z])([A-Z])", r"\1 \2", key).lower().replace("_", " ").split()
    return "%Y-%m-%d" if "date" in named and "time" not in named else None


def _props(tool: dict) -> dict:
    return (tool.get("parameters") or {}).get("properties") or {}


def _property_text(key: str, schema: dict) -> str:
    return f"{key} {schema.get('description', '')} " + " ".join(map(str, schema.get("enum", ())))


def _mentioned(asked: set, tool: dict) -> set:
    """The tool's properties the request mentions: a word of the property's name that is not
    in the tool's name, or of its description or enum values that is not in the tool's name
    nor its description. Those name the tool's topic: "derivative" in the description of a
    derivative tool's optional x value says nothing about that value, nor "movie" in
    `movie_date` of `get_movies`; "level" in `starting_level` of a tool that creates a
    profile "with a starting level" does."""
    name = _words(tool["name"])
    topic = name | _words(tool.get("description", ""))
    return {k for k, v in _props(tool).items()
            if asked & ((_words(k) - name) | (_words(_property_text(k, v)) - topic))}


def _tool_text(tool: dict) -> str:
    return " ".join([tool["name"], str(tool.get("description", ""))]
                    + [_property_text(k, v) for k, v in _props(tool).items()])


# Booleans: the request's polarity words.
_NEGATIVE = frozenset("off stop disable disabled no not false close deactivate".split())
_POSITIVE = frozenset("on start enable enabled yes true open activate".split())


def rules_of(grounding) -> frozenset:
    """The rules an Agent's grounding= names: True (all of RULES), False or None (none), or
    an iterable of rule names."""
    if grounding is True:
        return frozenset(RULES)
    if grounding is False or grounding is None:
        return frozenset()
    if isinstance(grounding, str):
        grounding = (grounding,)
    rules = frozenset(grounding)
    if rules - set(RULES):
        raise ValueError(f"unknown grounding rules {sorted(rules - set(RULES))}; "
                         f"the rules are {', '.join(RULES)}")
    return rules


def rules_named(text: str) -> frozenset:
    """The rules a command line names: "all", "none", or rule names separated by commas."""
    special = {"all": True, "none": False}
    return rules_of(special[text] if text in special else [x for x in text.split(",") if x])


class Grounding:
    def __init__(self, request: str, vocab, bonus: float = BONUS, tools=(), rules=RULES):
        self.rules = rules_of(rules)
        self.r = request.encode()
        self.v, self.bonus_value = vocab, bonus
        r = self.r
        self.word_starts = [i for i in range(len(r))
                            if not r[i:i + 1].isspace() and (i == 0 or not _is_word(r[i - 1])
                                                             or not _is_word(r[i]))]
        self.mentions = _number_mentions(r.replace(b",", b"").lower())
        self.dates = _request_dates(request)
        self.times = _request_times(request)
        self._starts = frozenset(self.word_starts)
        # tool relevance: request words found in each tool's name and descriptions
        asked = _words(request)
        said = set(re.findall(r"[a-z]+", request.lower()))
        self.polarity = (bool(said & _POSITIVE), bool(said & _NEGATIVE))
        self.relevance = {t["name"].encode(): len(asked & _words(_tool_text(t))) for t in tools}
        self.mentioned = {t["name"]: _mentioned(asked, t) for t in tools}
        self.props = {t["name"]: _props(t) for t in tools}
        self._piece_cache, self._key_words = {}, {}
        # which call of the reply is written (the agent sets it): the names rule leads only the
        # first to the tool the request is most about; a second call it led back to that tool
        self.call_index = 0

    # ---- lookups -----------------------------------------------------------------------

    def _ids_at(self, p: int) -> list:
        """Ids of tokens whose piece is a prefix of the request at byte p."""
        hit = self._piece_cache.get(p)
        if hit is None:
            hit = self._piece_cache[p] = self._prefix_ids(self.r[p:p + _MAX_PIECE])
        return hit

    def _prefix_ids(self, text: bytes) -> list:
        """Ids of tokens whose piece is a prefix of text."""
        keys, ids, hit = self.v.keys, self.v.ids, []
        for k in range(1, len(text) + 1):
            piece = text[:k]
            a = bisect_left(keys, piece)
            if a < len(keys) and keys[a] == piece:
                hit.extend(ids[a])
        return hit

    def _span_ends(self, typed: bytes) -> list:
        """Request positions right after an occurrence of typed that starts a word."""
        if not typed:
            return list(self.word_starts)
        out, i = [], self.r.find(typed)
        while i >= 0:
            if i in self._starts:
                out.append(i + len(typed))
            i = self.r.find(typed, i + 1)
        return out

    def _boundary(self, p: int) -> bool:
        return p >= len(self.r) or not _is_word(self.r[p]) or not _is_word(self.r[p - 1])

    def _phrase_end(self, p: int) -> bool:
        if not self._boundary(p):
            return False
        rest = self.r[p:].lstrip()
        return not rest or not _is_word(rest[0]) or _CONNECTIVE.match(rest.lower()) is not None

    # ---- the bonus -----------------------------------------------------------------------

    def bonus(self, constraint, st, allowed: np.ndarray, written: bytes = b""):
        """Logit bonus per allowed id in state st of constraint (None when nothing
        applies); written: the bytes of the call's tokens so far."""
        value = self._value_bonus(constraint, st, allowed, written)
        args = self._args_bonus(constraint, st, allowed) if "args" in self.rules else None
        if value is None or args is None:
            return args if value is None else value
        return value + args

    def _value_bonus(self, constraint, st, allowed, written):
        f = st[-1]
        good, closing = [], False
        if constraint.g.in_content(st):
            dates = self._dates_for(constraint, st, written) if "dates" in self.rules else []
            if dates:          # the request's dates, in the property's format
                for d in dates:
                    if d.startswith(f.text):
                        good += self._prefix_ids(d[len(f.text):len(f.text) + _MAX_PIECE])
                        closing = closing or d == f.text
            elif "spans" in self.rules:
                ends = self._span_ends(f.text)
                for p in ends:
                    good += self._ids_at(p)
                closing = bool(f.text) and any(self._phrase_end(p) for p in ends)
        elif f.kind == "num" and "numbers" in self.rules:
            offered, stale = self._offered(constraint, st, written)
            good = self._number_ids(f.text, allowed, offered)
            bad = set(self._number_ids(f.text, allowed, stale)) - set(good)
        elif f.kind == "words" and "words" in self.rules:
            # symbols (codes >= 256, e.g. FunctionGemma's <escape>) are tokens of their own
            return self._words_bonus(constraint, f.node, bytes(c for c in f.prefix if c < 256),
                                     allowed)
        elif f.kind == "name" and "names" in self.rules and self.call_index == 0 \
                and len(set(self.relevance.values())) > 1:
            return self._name_bonus(constraint, f.prefix, allowed)
        else:
            return None
        out = np.zeros(len(allowed), np.float32)
        if good:
            out[np.isin(allowed, np.asarray(good, np.int32))] = self.bonus_value
        if f.kind == "num" and bad:
            out[np.isin(allowed, np.asarray(sorted(bad), np.int32))] = -self.bonus_value
        if closing:
            out[np.isin(allowed, self._closer_ids(constraint))] = self.bonus_value
        return out if out.any() else None

    def _args_bonus(self, constraint, st, allowed):
        """At each choice of a key, the tokens that lead only to keys of optional properties
        the request does not mention are held back (module docstring)."""
        if len(st) < 2 or st[0].kind != "end" or st[1].kind != "obj":
            return None
        g, (node, used, phase, _, _) = constraint.g, st[1]
        if node.free or phase == AFTER:
            return None
        unasked = node.keys - used - node.required - self._wanted_keys(g, node)
        if not unasked:
            return None
        held = []
        for t in allowed.tolist():
            after = g.feed(st, self.v.pieces[t])
            if after is None or len(after) < 2 or after[1].kind != "obj":
                continue
            _, used2, _, p, _ = after[1]
            keys = used2 - used if used2 != used else node.prefixes[p] - used if p else None
            if keys and keys <= unasked:
                held.append(t)
        if not held:
            return None
        out = np.zeros(len(allowed), np.float32)
        out[np.isin(allowed, np.asarray(held, np.int32))] = -HOLD
        return out

    def _wanted_keys(self, g, node):
        """The key words (as the grammar spells them) of node's properties that are never held
        back: those the request mentions, and booleans, whose value a verb may say ("unlock",
        "close") without a word of the property's."""
        got = self._key_words.get(id(node))
        if got is None:
            name = _tool_name(g, node)
            free = self.mentioned.get(name, set()) | {
                k for k, v in self.props.get(name, {}).items() if v.get("type") == "boolean"}
            got = frozenset(tuple(k.encode() + g.sx.arg_kv) for k in free)
            self._key_words[id(node)] = got
        return got

    def _property(self, constraint, st, head: bytes):
        """(key, schema) of the top-level argument whose value st is writing, or (None,
        None); head: the call's bytes before the value's own."""
        if len(st) != 3 or st[1].kind != "obj":
            return None, None
        g, c = constraint.g, constraint.g.sx.str_open
        opening = bytes((c,)) if c < 256 else self.v.pieces[constraint.symbol_ids[c]]
        key = re.search(rb"([A-Za-z_]\w*)" + re.escape(g.sx.arg_kv) + rb"\s*(?:"
                        + re.escape(opening) + rb")?$", head)
        if key is None:
            return None, None
        name = key.group(1).decode()
        return name, self.props.get(_tool_name(g, st[1].node), {}).get(name)

    def _dates_for(self, constraint, st, written: bytes) -> list:
        """The request's dates (or times of day) not yet in the call, as the string being
        written (a date property's, or a time property's: HH:MM) would spell them; [] for
        other properties."""
        if not self.dates and not self.times:
            return []
        head = written[:len(written) - len(st[-1].text)]
        key, schema = self._property(constraint, st, head)
        fmt = _date_format(key, schema) if self.dates else None
        if fmt is not None:
            spelled = [d.strftime(fmt).encode() for d in self.dates]
        elif self.times and _takes_time(key, schema):
            spelled = [b"%02d:%02d" % t for t in self.times]
        else:
            return []
        return [d for d in dict.fromkeys(spelled) if d not in head]

    def _offered(self, constraint, st, written: bytes) -> tuple:
        """(offered, stale): the spellings the number being written may take - those of the
        mentions the call has not written yet (none once it has written each: the number is
        then not the request's), a percentage as a fraction where the property takes one, a
        duration in the property's unit (module docstring) - and the spellings that would
        write a duration in the wrong unit."""
        head = written[:len(written) - len(st[-1].text)]    # up to the number's first byte
        done = Counter(_WRITTEN_NUMBER.findall(head))
        left = []
        for m in self.mentions:
            w = next((w for w in m.written_as() if done[w]), None)
            if w is None:
                left.append(m)
            else:
                done[w] -= 1
        key, schema = self._property(constraint, st, head)
        fraction, unit = (_takes_fraction(key, schema), _unit_of(key, schema)) \
            if "units" in self.rules else (False, None)
        integer = bool(schema) and schema.get("type") == "integer"
        out, stale = set(), set()
        for m in left:
            converted = m.in_unit(unit, integer) if unit else None
            if fraction and m.fraction:
                out.add(m.fraction)
            elif converted is not None:
                out.add(converted)
                stale |= m.spellings     # "10" (minutes) where seconds are asked: wrong
            else:
                out |= m.spellings
        return frozenset(out), frozenset(stale - out)

    def _name_bonus(self, constraint, typed: tuple, allowed):
        """Each token of a tool name gets the relevance of the best tool it leads to."""
        opening = constraint.g.sx.args_open
        typed = bytes(typed)
        out = np.zeros(len(allowed), np.float32)
        for j, t in enumerate(allowed.tolist()):
            p = typed + self.v.pieces[t]
            out[j] = max((r for n, r in self.relevance.items()
                          if (n + opening).startswith(p) or p.startswith(n + opening)),
                         default=0)
        return out * NAME_BONUS if out.any() else None

    def _words_bonus(self, constraint, node, typed: bytes, allowed):
        """Enums: the values the request mentions; booleans: the request's polarity."""
        sx = constraint.g.sx
        words = [bytes(c for c in w if c < 256) for w in node.values]
        if node.values == frozenset((tuple(sx.true), tuple(sx.false))):
            pos, neg = self.polarity
            wanted = [] if pos == neg else [sx.false if neg else sx.true]
        else:
            low = self.r.lower()
            wanted = [w for w in words if len(w) > 2 and w.strip(b'"').lower() in low]
        if not wanted:
            return None
        out = np.zeros(len(allowed), np.float32)
        for j, t in enumerate(allowed.tolist()):
            p = typed + self.v.pieces[t]
            if any(w.startswith(p) or p.startswith(w) for w in wanted):
                out[j] = self.bonus_value
        return out if out.any() else None

    def _closer_ids(self, constraint):
        """Ids that start with the string's closing symbol."""
        close = constraint.g.sx.str_close
        if close in constraint.symbol_ids:
            return np.asarray([constraint.symbol_ids[close]], np.int32)
        keys, q = self.v.keys, bytes((close,))
        a, b = bisect_left(keys, q), bisect_left(keys, bytes((close + 1,)))
        return np.asarray([i for k in range(a, b) for i in self.v.ids[k]], np.int32)

    def _number_ids(self, typed: bytes, allowed, numbers: frozenset) -> list:
        if not numbers or len(allowed) > 4096:
            return []
        good = []
        for t in allowed.tolist():
            piece = self.v.pieces[t]
            head = piece
            for j, c in enumerate(piece):
                if not (48 <= c <= 57 or c in b".-eE+"):
                    head = piece[:j]
                    break
            whole = typed + head
            if not head:
                if typed in numbers:
                    good.append(t)      # ends a number of the request here
            elif len(head) < len(piece):
                if whole in numbers:
                    good.append(t)
            elif any(n.startswith(whole) for n in numbers):
                good.append(t)
        return good


def _tool_name(g, node):
    """The name of the tool whose arguments node reads."""
    return next((bytes(n[:-len(g.sx.args_open)]).decode()
                 for n, o in g.tools.items() if o is node), None)


def _digits(v: float) -> bytes:
    """How a call writes v: 8.5 million as 8500000."""
    return (str(int(v)) if v == int(v) else repr(v)).encode()


def _is_word(c: int) -> bool:
    return c >= 0x80 or bool(_WORD.match(bytes((c,))))
