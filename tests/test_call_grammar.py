"""The call grammar, the renderer and the parser agree, in every call syntax (issue 12).

Property tests over hypothesis-chosen schemas of the subset, both ways:
  - every call the grammar can produce (random walks through TokenConstraint over a small fake
    vocabulary) parses with the format's parser and validates against the canonical schema,
    within a length bound computed here from the schema's caps;
  - every value generated for a schema, rendered with format_call, is accepted by the grammar
    symbol by symbol and parses back to the same value.
Then a table of the subset's keywords: a violating call is rejected by both the grammar and
validate() (and its valid twin accepted by both); and the ids TokenConstraint offers checked
against a brute-force run of every token of the vocabulary through the grammar.
"""
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_runtime.calls.formats import python as python_format
from edge_runtime.calls.grammar import CallGrammar, TokenConstraint
from edge_runtime.calls.schema import (DEFAULT_MAX_ITEMS, DEFAULT_MAX_LENGTH, FREE_DEPTH,
                                       MAX_DIGITS, MAX_KEY_LENGTH, normalize_tool, validate)
from edge_runtime.calls.syntax import END, ESC, ParseFailure, format_call, format_value, parse_call
from edge_runtime.calls.vocab import Vocab
from edge_runtime.calls.formats.functiongemma import call_syntax as fg_syntax

FG, PY = fg_syntax.SYNTAX, python_format.SYNTAX
SYNTAXES = [pytest.param(FG, id="functiongemma"), pytest.param(PY, id="python")]
ESC_TEXT, END_TEXT = "<escape>", "<end_function_call>"

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large])


# ---- a small vocabulary: every byte, some words, and the two FunctionGemma symbols ----------

def _fake_vocab():
    pieces = [b"<pad>", b"<eos>", b"<bos>", ESC_TEXT.encode(), END_TEXT.encode()]
    special = [True] * len(pieces)
    words = ["call:", "get", "_weather", "city", "Paris", '")', '="', "=", '"', ", ", ",",
             "True", "False", "true", "false", "None", "null", "12", "-3", "0.", ".5", "{", "}",
             "[", "]", "[]", "{}", ": ", '": ', "<esc", "ape>", "<escape", "ab", "ab\"",
             'Paris"', "\\n", '\\"', "é", "日本", "level", "room", "items", "type", "x_1",
             "/srv", "/public/", "shadow", "999", "100", "1e5", '""', '","', '"Paris"', '="x"']
    seen = set()
    for b in list(range(1, 256)):
        pieces.append(bytes((b,)))
        special.append(False)
        seen.add(pieces[-1])
    for w in words:
        p = w.encode()
        if p not in seen:
            pieces.append(p)
            special.append(False)
            seen.add(p)
    return Vocab(pieces, special)


VOCAB = _fake_vocab()
SYMBOL_IDS = {FG.name: {ESC: 3, END: 4}, PY.name: {}}


def _constraint(tools, sx):
    return TokenConstraint(CallGrammar(tools, sx), VOCAB, SYMBOL_IDS[sx.name])


def _symbols(sx, text):
    """The grammar's symbols for rendered call text (ESC/END spelled by their names)."""
    if sx.str_open != ESC:
        return list(text.encode())
    out = []
    body, _, _ = text.partition(END_TEXT)
    for k, part in enumerate(body.split(ESC_TEXT)):
        if k:
            out.append(ESC)
        out += list(part.encode())
    return out + ([END] if text.endswith(END_TEXT) else [])


def _render(sx, name, args):
    text = format_call(sx, name, args, ESC_TEXT)
    return text + END_TEXT if sx.end is not None else text


def _parse(sx, text):
    return parse_call(sx, text, ESC_TEXT, END_TEXT)


def _same(a, b) -> bool:
    """Equal as JSON values of the same kinds (True is not 1, 1 is not 1.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


# ---- schemas -------------------------------------------------------------------------------

PATTERNS = {   # pattern -> a strategy of strings that match it
    "^[a-z]{1,6}$": st.from_regex(r"\A[a-z]{1,6}\Z"),
    "^/srv/public/": st.from_regex(r"\A/srv/public/[a-z0-9/]{0,8}\Z"),
    r"^\d{3}-\d{4}$": st.from_regex(r"\A[0-9]{3}-[0-9]{4}\Z"),
    "^(on|off)$": st.sampled_from(["on", "off"]),
}
KEYS = st.sampled_from(["city", "type", "level", "room", "items", "properties", "x_1", "Name"])
NESTED_KEYS = st.one_of(KEYS, st.sampled_from(["required", "on"]))


def _bounds(integer):
    num = st.integers(-50, 50) if integer else st.sampled_from([-2.5, -1, 0, 0.25, 1, 3.75, 10])

    @st.composite
    def make(draw):
        s = {"type": "integer" if integer else "number"}
        lo, hi = draw(st.one_of(st.none(), num)), draw(st.one_of(st.none(), num))
        if lo is not None and hi is not None and lo > hi:
            lo, hi = hi, lo
        if lo is not None:
            s["exclusiveMinimum" if draw(st.booleans()) else "minimum"] = lo
        if hi is not None:
            s["exclusiveMaximum" if draw(st.booleans()) else "maximum"] = hi
        if lo is not None and hi is not None and lo == hi and len(s) == 3 and \
                ("exclusiveMinimum" in s or "exclusiveMaximum" in s):
            s.pop("exclusiveMinimum", None)
            s.pop("exclusiveMaximum", None)
        if integer and lo is not None and hi is not None and hi - lo < 2:
            s.pop("exclusiveMinimum", None)
            s.pop("exclusiveMaximum", None)
        return s
    return make()


@st.composite
def _string_schema(draw):
    s = {"type": "string"}
    if draw(st.booleans()):
        s["pattern"] = draw(st.sampled_from(sorted(PATTERNS)))
        return s
    lo = draw(st.integers(0, 3))
    s["minLength"] = lo
    s["maxLength"] = draw(st.integers(max(lo, 1), 12))
    return s


SCALARS = st.one_of(
    _string_schema(), _bounds(True), _bounds(False),
    st.just({"type": "boolean"}), st.just({"type": "null"}),
    st.lists(st.text(alphabet='ab"\\\n é<>', min_size=1, max_size=6), min_size=1,
             max_size=4, unique=True).map(lambda v: {"type": "string", "enum": v}),
    st.lists(st.integers(-20, 20), min_size=1, max_size=4, unique=True)
    .map(lambda v: {"type": "integer", "enum": v}),
    st.just({"type": "boolean", "enum": [True]}),
    st.just({"enum": ["auto", 3, 2.5, False, None]}),
    st.just({"const": "fixed"}), st.just({"const": 7}),
    st.just({"type": "object"}),          # free-form
    st.just({}),                          # untyped
)


def _containers(children):
    return st.one_of(
        st.tuples(children, st.integers(0, 2), st.integers(0, 3)).map(
            lambda t: {"type": "array", "items": t[0], "minItems": min(t[1], t[2]),
                       "maxItems": max(t[1], t[2], 1)}),
        st.dictionaries(NESTED_KEYS, children, min_size=1, max_size=3).flatmap(
            lambda props: st.lists(st.sampled_from(sorted(props)), unique=True).map(
                lambda req: {"type": "object", "properties": props, "required": req})))


NODES = st.recursive(SCALARS, _containers, max_leaves=5)


@st.composite
def tools(draw):
    props = draw(st.dictionaries(KEYS, NODES, min_size=0, max_size=3))
    req = draw(st.lists(st.sampled_from(sorted(props)), unique=True)) if props else []
    return {"name": draw(st.sampled_from(["get_weather", "set_level", "f"])),
            "parameters": {"type": "object", "properties": props, "required": req}}


# ---- values of a canonical schema ------------------------------------------------------------

def _text_chars(sx):
    """Characters a string value may hold in sx: no NUL, no surrogates; with escapes (python)
    the control characters that have an escape (\\n \\r \\t) but no others."""
    def ok(c):
        if sx.escapes and ord(c) < 0x20:
            return c in "\n\r\t"
        return c != "\x00"
    return st.characters(blacklist_categories=("Cs",)).filter(ok)


def _string_values(sx, lo, hi):
    special = st.sampled_from(['"', "\\", "\n", "é", "日", "<", ">", " ", "'", "\t", "😀"])
    s = st.text(alphabet=st.one_of(special, _text_chars(sx)), min_size=lo, max_size=hi)
    # FunctionGemma strings cannot hold their own closing text
    return s.filter(lambda v: ESC_TEXT not in v) if sx.str_close == ESC else s


def _number_values(s):
    integer = s["type"] == "integer"
    lo, hi = -(10 ** MAX_DIGITS - 1), 10 ** MAX_DIGITS - 1
    if integer:
        base = st.integers(lo, hi)
    else:
        base = st.one_of(st.integers(-10 ** 6, 10 ** 6),
                         st.tuples(st.integers(-10 ** 7, 10 ** 7), st.integers(0, 6))
                         .map(lambda t: t[0] / 10 ** t[1]))
    small = st.integers(-60, 60) if integer else \
        st.tuples(st.integers(-600, 600), st.integers(0, 2)).map(lambda t: t[0] / 10 ** t[1])
    return st.one_of(small, base).filter(lambda v: not validate(v, s))


def _untyped(sx, depth):
    scalars = st.one_of(_string_values(sx, 0, 12), st.integers(-10 ** 6, 10 ** 6),
                        st.sampled_from([0.5, -2.25, 3.0]), st.booleans(), st.none())
    if depth == 0:
        return scalars
    inner = _untyped(sx, depth - 1)
    return st.one_of(scalars, st.lists(inner, max_size=3),
                     st.dictionaries(st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,6}\Z"), inner,
                                     max_size=3))


def values(sx, s):
    """A strategy of values valid for canonical schema s."""
    t = s["type"]
    if "enum" in s:
        return st.sampled_from(s["enum"])
    if t == "string":
        if "pattern" in s:
            strat = PATTERNS[s["pattern"]]
        else:
            strat = _string_values(sx, s["minLength"], s["maxLength"])
        return strat.filter(lambda v: not validate(v, s))
    if t in ("integer", "number"):
        return _number_values(s)
    if t == "boolean":
        return st.booleans()
    if t == "null":
        return st.none()
    if t == "array":
        return st.lists(values(sx, s["items"]), min_size=s["minItems"],
                        max_size=min(s["maxItems"], 4))
    if t == "object" and "properties" in s:
        props = s["properties"]
        return st.fixed_dictionaries(
            {k: values(sx, props[k]) for k in s["required"]},
            optional={k: values(sx, v) for k, v in props.items() if k not in s["required"]})
    return _untyped(sx, FREE_DEPTH if t == "any" else FREE_DEPTH - 1).filter(
        lambda v: not validate(v, s))


# ---- a length bound from the caps ------------------------------------------------------------

def _max_len(sx, s, depth=FREE_DEPTH, top=False) -> int:
    """Most symbols a value of canonical schema s can take in sx (each character of a string
    at most 4 bytes: UTF-8, or an escape)."""
    words = max(len(sx.true), len(sx.false), len(sx.null))
    number = MAX_DIGITS + 2                               # sign and point
    sep = len(sx.sep)
    key = 2 + 4 * MAX_KEY_LENGTH if sx.key_quoted else MAX_KEY_LENGTH
    t = s.get("type")
    if "enum" in s:
        return max(len(_render_value(sx, v)) for v in s["enum"])
    if t == "string":
        return 2 + 4 * s["maxLength"]
    if t in ("integer", "number"):
        return number
    if t in ("boolean", "null"):
        return words
    if t == "array":
        n = s["maxItems"]
        return 2 + n * _max_len(sx, s["items"]) + max(0, n - 1) * sep
    if t == "object" and "properties" in s:
        props = s["properties"]
        return 2 + sum(_key_len(sx, k, top) + _max_len(sx, v) + sep for k, v in props.items())
    # free-form object or untyped value
    free_obj = 2 + DEFAULT_MAX_ITEMS * (key + len(sx.dict_kv) + _any_len(sx, depth - 1) + sep)
    return free_obj if t == "object" else max(_any_len(sx, depth), free_obj)


def _any_len(sx, depth):
    scalar = max(2 + 4 * DEFAULT_MAX_LENGTH, MAX_DIGITS + 2, len(sx.false), len(sx.null))
    if depth <= 0:
        return scalar
    inner = _any_len(sx, depth - 1)
    key = 2 + 4 * MAX_KEY_LENGTH if sx.key_quoted else MAX_KEY_LENGTH
    items = 2 + DEFAULT_MAX_ITEMS * (max(inner, key + len(sx.dict_kv) + inner) + len(sx.sep))
    return max(scalar, items)


def _render_value(sx, v):
    return _symbols(sx, format_value(sx, v, ESC_TEXT))


def _key_len(sx, k, top):
    if top:
        return len(k.encode()) + len(sx.arg_kv)
    quoted = 2 + len(sx.quote(k)) if sx.key_quoted else len(k.encode())
    return quoted + len(sx.dict_kv)


def _call_bound(sx, tool) -> int:
    t = normalize_tool(tool)
    return (len(sx.call_open) + len(t["name"]) + len(sx.args_open)
            + _max_len(sx, t["parameters"], top=True) + len(sx.args_close) + 1)


# ---- (a) and (d): random walks ---------------------------------------------------------------

def _walk(c, rng, stop_bias):
    """A random call through the constraint: token ids. Inside free string content a walk
    ends the string with probability stop_bias per step when it may (else strings would mostly
    run to their cap)."""
    st_, ids = c.start(), []
    closing = None
    while not c.g.done(st_):
        allowed = c.allowed(st_)
        assert len(allowed), f"stuck after {_walk_text(c.g.sx, ids)!r}"
        if len(allowed) > 60 and rng.random() < stop_bias:
            close = c.g.sx.str_close
            closing = [i for i in allowed.tolist()
                       if SYMBOL_IDS[c.g.sx.name].get(close) == i
                       or (close < 256 and VOCAB.pieces[i][:1] == bytes((close,)))]
        pick = rng.choice(closing) if closing else int(rng.choice(allowed.tolist()))
        closing = None
        st_ = c.advance(st_, pick)
        ids.append(pick)
    return ids


def _walk_text(sx, ids):
    data = b""
    syms = SYMBOL_IDS[sx.name]
    names = {syms.get(ESC): ESC_TEXT.encode(), syms.get(END): END_TEXT.encode()}
    for i in ids:
        data += names.get(i, VOCAB.pieces[i])
    return data.decode("utf-8")


@pytest.mark.parametrize("sx", SYNTAXES)
@SETTINGS
@given(tool=tools(), seed=st.integers(0, 2 ** 32 - 1))
def test_every_walk_parses_validates_and_is_bounded(sx, tool, seed):
    norm = normalize_tool(tool)
    c = _constraint([tool], sx)
    rng = random.Random(seed)
    bound = _call_bound(sx, tool)
    for bias in (0.5, 0.05):
        ids = _walk(c, rng, bias)
        text = _walk_text(sx, ids)
        call = _parse(sx, text)
        assert call["name"] == norm["name"], text
        assert validate(call["arguments"], norm["parameters"]) == [], text
        assert len(ids) <= bound, (len(ids), bound, text)


# ---- (b): every valid value can be written ---------------------------------------------------

@pytest.mark.parametrize("sx", SYNTAXES)
@SETTINGS
@given(data=st.data(), tool=tools())
def test_every_valid_value_is_accepted_and_parses_back(sx, data, tool):
    norm = normalize_tool(tool)
    args = data.draw(values(sx, norm["parameters"]), label="arguments")
    assert validate(args, norm["parameters"]) == []
    text = _render(sx, norm["name"], args)
    g = CallGrammar([tool], sx)
    state = g.start()
    syms = _symbols(sx, text)
    for k, sym in enumerate(syms):
        state = g.step(state, sym)
        assert state is not None, f"grammar refused symbol {k} of {text!r}"
    assert g.done(state), text
    assert len(syms) <= _call_bound(sx, tool)
    back = _parse(sx, text)
    assert back["name"] == norm["name"] and _same(back["arguments"], args), (text, back)


@pytest.mark.parametrize("sx", SYNTAXES)
def test_tricky_strings_round_trip(sx):
    tool = {"name": "say", "parameters": {"type": "object", "properties": {
        "text": {"type": "string", "maxLength": 64}}}}
    g = CallGrammar([tool], sx)
    for v in ['say "hi"', "back\\slash\\", "two\nlines\r\tx", "日本語 é 😀", "<escape>x"
              if sx is PY else "<escap>e", "<start_function_call>", '\\"', ""]:
        text = _render(sx, "say", {"text": v})
        assert g.done(g.feed(g.start(), _symbols(sx, text))), text
        assert _parse(sx, text)["arguments"] == {"text": v}


# ---- (c): each keyword enforced by the grammar and by validate() -----------------------------

# (property schema, a valid value, a violating value)
KEYWORD_TABLE = [
    ("enum", {"type": "string", "enum": ["low", "high"]}, "high", "medium"),
    ("integer enum", {"type": "integer", "enum": [1, 2, 3]}, 2, 4),
    ("integer enum as string", {"type": "integer", "enum": [1, 2, 3]}, 3, "3"),
    ("boolean enum", {"type": "boolean", "enum": [True]}, True, False),
    ("mixed enum", {"enum": ["a", 1, None]}, None, "b"),
    ("const", {"const": "fixed"}, "fixed", "fixes"),
    ("const int", {"const": 7}, 7, 8),
    ("minimum", {"type": "integer", "minimum": 0}, 0, -1),
    ("maximum", {"type": "integer", "maximum": 10}, 10, 11),
    ("maximum float", {"type": "number", "maximum": 0.5}, 0.5, 0.51),
    ("exclusiveMinimum", {"type": "number", "exclusiveMinimum": 0}, 0.001, 0),
    ("exclusiveMaximum", {"type": "integer", "exclusiveMaximum": 10}, 9, 10),
    ("integer type", {"type": "integer"}, 1, 1.5),
    ("digit cap", {"type": "integer"}, 10 ** MAX_DIGITS - 1, 10 ** MAX_DIGITS),
    ("boolean type", {"type": "boolean"}, False, 0),
    ("minLength", {"type": "string", "minLength": 3}, "abc", "ab"),
    ("maxLength", {"type": "string", "maxLength": 3}, "日本語", "abcd"),
    ("default maxLength", {"type": "string"}, "a" * DEFAULT_MAX_LENGTH,
     "a" * (DEFAULT_MAX_LENGTH + 1)),
    ("minItems", {"type": "array", "items": {"type": "integer"}, "minItems": 2}, [1, 2], [1]),
    ("maxItems", {"type": "array", "items": {"type": "integer"}, "maxItems": 2}, [1, 2],
     [1, 2, 3]),
    ("default maxItems", {"type": "array"}, [0] * DEFAULT_MAX_ITEMS,
     [0] * (DEFAULT_MAX_ITEMS + 1)),
    ("items", {"type": "array", "items": {"type": "integer"}}, [1], ["1"]),
    ("pattern", {"type": "string", "pattern": "^/srv/public/"}, "/srv/public/a.txt",
     "/etc/shadow"),
    ("pattern anchored end", {"type": "string", "pattern": r"^\d{3}$"}, "123", "1234"),
    ("nested required", {"type": "object", "properties": {"a": {"type": "integer"},
                                                          "b": {"type": "string"}},
                         "required": ["a"]}, {"a": 1}, {"b": "x"}),
    ("nested unknown key", {"type": "object", "properties": {"a": {"type": "integer"}}},
     {"a": 1}, {"a": 1, "c": 2}),
    ("nested type", {"type": "object", "properties": {"a": {"type": "object", "properties": {
        "on": {"type": "boolean"}}}}}, {"a": {"on": True}}, {"a": {"on": "yes"}}),
    ("free-form key", {"type": "object"}, {"ok_key": 1}, {"not ok": 1}),
    ("free-form depth", {"type": "object"}, {"a": [1]}, {"a": [[1]]}),
]


def _keyword_tool(prop):
    return {"name": "act", "parameters": {"type": "object", "properties": {
        "value": prop, "other": {"type": "string", "maxLength": 4}},
        "required": ["value"]}}


def _accepts(g, sx, text):
    state = g.feed(g.start(), _symbols(sx, text))
    return state is not None and g.done(state)


@pytest.mark.parametrize("sx", SYNTAXES)
@pytest.mark.parametrize("case", KEYWORD_TABLE, ids=[c[0] for c in KEYWORD_TABLE])
def test_each_keyword_is_enforced_by_grammar_and_validator(sx, case):
    _, prop, good, bad = case
    tool = _keyword_tool(prop)
    schema = normalize_tool(tool)["parameters"]
    g = CallGrammar([tool], sx)
    ok_text = _render(sx, "act", {"value": good})
    assert validate({"value": good}, schema) == []
    assert _accepts(g, sx, ok_text), ok_text
    assert _same(_parse(sx, ok_text)["arguments"], {"value": good})
    bad_text = _render(sx, "act", {"value": bad})
    assert validate({"value": bad}, schema) != []
    assert not _accepts(g, sx, bad_text), bad_text
    # what the parser reads from it (if it can) the validator still refuses
    try:
        read = _parse(sx, bad_text)["arguments"]
    except ParseFailure:
        return
    assert validate(read, schema) != []


@pytest.mark.parametrize("sx", SYNTAXES)
def test_required_and_declared_arguments_at_the_top_level(sx):
    tool = _keyword_tool({"type": "integer"})
    schema = normalize_tool(tool)["parameters"]
    g = CallGrammar([tool], sx)
    for args in ({"other": "x"}, {"value": 1, "extra": 2}, {}):
        text = _render(sx, "act", args)
        assert not _accepts(g, sx, text), text
        assert validate(args, schema) != []
    for name in ("acts", "ac", "other"):
        assert not _accepts(g, sx, _render(sx, name, {"value": 1}))


@pytest.mark.parametrize("sx", SYNTAXES)
def test_property_names_are_written_or_refused_never_unreadable(sx):
    def tool(name, nested=False):
        prop = {"type": "object", "properties": {name: {"type": "integer"}},
                "required": [name]} if nested else {"type": "integer"}
        return {"name": "f", "parameters": {"type": "object", "properties": {
            "k" if nested else name: prop}}}
    for name in ("type", "properties", "ok-name", "é", "True"):
        for nested in (False, True):
            args = {"k": {name: 1}} if nested else {name: 1}
            text = _render(sx, "f", args)
            assert _accepts(CallGrammar([tool(name, nested)], sx), sx, text), text
            assert _parse(sx, text)["arguments"] == args
    for name in ("a b", "<escape>", "", "x=y", "a,b"):
        with pytest.raises(ValueError, match="tool f: property name"):
            CallGrammar([tool(name)], sx)
        if sx.key_quoted:       # nested keys are quoted strings: any name can be written
            args = {"k": {name: 1}}
            text = _render(sx, "f", args)
            assert _accepts(CallGrammar([tool(name, True)], sx), sx, text), text
            assert _parse(sx, text)["arguments"] == args
        else:
            with pytest.raises(ValueError, match="tool f: property name"):
                CallGrammar([tool(name, True)], sx)


# ---- TokenConstraint's ids against a brute-force run of the vocabulary -----------------------

def _accepted_by_grammar(c, state, i):
    try:
        c.advance(state, i)
        return True
    except ValueError:
        return False


@pytest.mark.parametrize("sx", SYNTAXES)
@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(tool=tools(), seed=st.integers(0, 2 ** 32 - 1))
def test_allowed_ids_match_brute_force(sx, tool, seed):
    c = _constraint([tool], sx)
    rng = random.Random(seed)
    state, checked = c.start(), 0
    while not c.g.done(state):
        allowed = set(c.allowed(state).tolist())
        if checked < 12 and rng.random() < 0.5:
            checked += 1
            brute = {i for i in range(VOCAB.n) if _accepted_by_grammar(c, state, i)}
            assert allowed <= brute
            for i in brute - allowed:
                # the deliberate gaps, in the python syntax: a token that finishes string
                # content and closes the string in one piece, and one that opens a string and
                # closes it again
                piece = VOCAB.pieces[i]
                top = state[-1]
                assert sx is PY, piece
                if c.g.in_content(state):
                    assert piece[:1] != b'"' and b'"' in piece, piece
                else:
                    assert piece.count(b'"') >= 2, (piece, top.kind)
        state = c.advance(state, rng.choice(sorted(allowed)))


@pytest.mark.parametrize("sx", SYNTAXES)
@pytest.mark.parametrize("pattern", [r"^[^<>]*$", "a", r"^[a-z]{1,8}$", r'^[a-z "\\\n]*$',
                                     r"^\d{3}-\d{4}$"])
def test_pattern_content_ids_match_brute_force(sx, pattern):
    """Inside a string with a pattern the allowed ids come from one vectorised pass over the
    vocabulary (Vocab.pattern_ids): at every step of random values they are the tokens the
    grammar, stepped byte by byte, accepts (less the deliberate gaps described above)."""
    tool = {"name": "f", "parameters": {"type": "object", "properties": {
        "s": {"type": "string", "pattern": pattern, "maxLength": 12}}, "required": ["s"]}}
    c = _constraint([tool], sx)
    for seed in range(3):
        rng = random.Random(seed)
        state, steps = c.start(), 0
        while not c.g.done(state) and steps < 40:
            allowed = set(c.allowed(state).tolist())
            top = state[-1]
            if c.g.in_content(state):
                brute = {i for i in range(VOCAB.n) if _accepted_by_grammar(c, state, i)}
                assert allowed <= brute
                for i in brute - allowed:
                    # the gaps: a token finishing the content and closing the string; near
                    # maxLength, one whose written characters exceed the room, or that holds
                    # an escape (two written characters for one of the value's)
                    piece = VOCAB.pieces[i]
                    assert (sx is PY and piece[:1] != b'"' and b'"' in piece) or \
                        c.v.chars[i] > top.node.max - top.count or \
                        (sx.escapes and b"\\" in piece), piece
            state = c.advance(state, rng.choice(sorted(allowed)))
            steps += 1


def test_a_token_never_opens_and_closes_a_string():
    """`","` and `""` are common tokens, and a small model takes them where a string value
    starts: `function=","` instead of the request's formula. A token may open a string or
    close one, never both: the value is spelled after its opening quote (an empty one too)."""
    c = _constraint([{"name": "f", "parameters": {"type": "object", "properties": {
        "s": {"type": "string"}}, "required": ["s"]}}], PY)
    ids = {VOCAB.pieces[i]: i for i in range(VOCAB.n)}
    st = c.g.feed(c.start(), b"f(s=")
    allowed = set(c.allowed(st).tolist())
    assert ids[b'"'] in allowed
    assert not {ids[w] for w in (b'""', b'","', b'"Paris"')} & allowed
    assert ids[b'="x"'] not in set(c.allowed(c.g.feed(c.start(), b"f(s")).tolist())
    assert ids[b'="'] in set(c.allowed(c.g.feed(c.start(), b"f(s")).tolist())
    opened = c.advance(st, ids[b'"'])
    assert {ids[b'")'], ids[b'"']} <= set(c.allowed(opened).tolist())   # "" is still possible
    assert c.g.done(c.g.feed(opened, b'")'))
    assert c.g.done(c.g.feed(c.start(), b'f(s=",")'))    # the grammar's language is unchanged


@pytest.mark.parametrize("limits", [None, (256, 3)], ids=["default", "tiny cache"])
def test_kept_allowed_sets_are_the_computed_ones_and_bounded(limits, monkeypatch):
    """TokenConstraint.allowed keeps small sets by state: a second walk over the same states
    gets exactly what a fresh walk computes, read-only, and the store stays within its
    bounds (a tiny bound forces it to be emptied and refilled along the way)."""
    from edge_runtime.calls import grammar
    if limits:
        monkeypatch.setattr(grammar, "ALLOWED_CACHE_IDS", limits[0])
        monkeypatch.setattr(grammar, "ALLOWED_CACHE_SETS", limits[1])
    tool = {"name": "set_timer", "parameters": {"type": "object", "properties": {
        "minutes": {"type": "integer", "minimum": 1, "maximum": 600},
        "label": {"type": "string", "maxLength": 6},
        "unit": {"enum": ["s", "min"]}}, "required": ["minutes", "unit"]}}
    for sx in (FG, PY):
        kept = _constraint([tool], sx)
        for seed in (1, 2, 1, 3, 2):
            rng, state = random.Random(seed), kept.start()
            while not kept.g.done(state):
                got = kept.allowed(state)
                assert not got.flags.writeable
                assert np.array_equal(got, _constraint([tool], sx).allowed(state))
                assert kept._known_ids <= grammar.ALLOWED_CACHE_IDS
                assert len(kept._known) <= grammar.ALLOWED_CACHE_SETS
                state = kept.advance(state, rng.choice(got.tolist()))
        assert kept._known


def test_long_enums_and_names_cost_memory_in_proportion():
    """The words of enums, property and tool names are kept once, sorted (not every prefix
    with every word under it): the largest schema the subset allows - 1024 enum values of
    900 characters, a 12,000-character property name - builds in a few MiB, and its values
    still decode."""
    import tracemalloc
    values = ["v" * 890 + f"{i:04d}" for i in range(1024)]
    tool = {"name": "f", "parameters": {"type": "object", "properties": {
        "x": {"type": "string", "enum": values}, "k" * 12000: {"type": "integer"}},
        "required": ["x"]}}
    tracemalloc.start()
    try:
        g = CallGrammar([tool], FG)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20, peak       # the words as symbol tuples: ~8 MiB
    text = _render(FG, "f", {"x": values[517]})
    assert _accepts(g, FG, text) and not _accepts(g, FG, text.replace("0517", "1517"))
