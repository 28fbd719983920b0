"""The schema subset (edge_runtime.calls.schema): each keyword enforced by validate, each
unsupported keyword and each malformed schema refused at construction with a ValueError that
names the tool, the place and the keyword."""
from __future__ import annotations

import enum
from typing import Annotated, Any, Dict, List, Literal, Optional

import pytest
from hypothesis import given, settings, strategies as st

from edge_runtime.calls import schema as S
from edge_runtime.calls.schema import (check_schema, normalize_tool, schema_from_callable,
                                       validate)


def tool(props, required=None, **extra):
    params = {"type": "object", "properties": props, **extra}
    if required is not None:
        params["required"] = required
    return {"type": "function", "function": {"name": "t", "parameters": params}}


def args_ok(props, value, required=None):
    return validate(value, normalize_tool(tool(props, required))["parameters"]) == []


# keyword, schema, values that pass, values that fail
ENFORCED = [
    ("type string", {"type": "string"}, ["", "x"], [1, None, True, ["x"]]),
    ("type integer", {"type": "integer"}, [0, -7], [1.0, 1.5, True, "1", None]),
    ("type number", {"type": "number"}, [0, 1.5, -2], [True, "1", float("nan"), float("inf")]),
    ("type boolean", {"type": "boolean"}, [True, False], [0, 1, "true", None]),
    ("type null", {"type": "null"}, [None], [0, "", False]),
    ("type array", {"type": "array", "items": {"type": "integer"}}, [[], [1, 2]],
     [[1, "2"], "x", {"a": 1}]),
    ("type object", {"type": "object", "properties": {"a": {"type": "integer"}}},
     [{}, {"a": 1}], [{"b": 1}, {"a": "1"}, [], "x"]),
    ("enum strings", {"type": "string", "enum": ["on", "off"]}, ["on"], ["ON", 1, None]),
    ("enum integers", {"type": "integer", "enum": [1, 2, 3]}, [1, 3], [4, "1", True, 1.5]),
    ("enum numbers", {"type": "number", "enum": [0.5, 2]}, [0.5, 2, 2.0], [1, "0.5"]),
    ("enum booleans", {"type": "boolean", "enum": [True]}, [True], [False, 1]),
    ("enum mixed", {"enum": ["a", 1, None, False]}, ["a", 1, None, False],
     [0, True, "1", 1.5, [1]]),
    ("const", {"const": 3}, [3], [3.0, 4, "3", True]),      # an integer const: 3.0 is not
    ("const false", {"const": False}, [False], [0, None, True]),
    ("minimum", {"type": "integer", "minimum": 0}, [0, 5], [-1]),
    ("maximum", {"type": "integer", "maximum": 10}, [10, -3], [11, 5444444444444444]),
    ("exclusiveMinimum", {"type": "number", "exclusiveMinimum": 0}, [0.001, 1], [0, -1]),
    ("exclusiveMaximum", {"type": "number", "exclusiveMaximum": 1.5}, [1.49, 0], [1.5, 2]),
    ("digit cap", {"type": "integer"}, [10 ** 15 - 1, -(10 ** 15 - 1)],
     [10 ** 15, 4000000000000000]),
    ("digit cap number", {"type": "number"}, [0.25, 12345678901234.5],
     [0.1 + 0.2, 1e-20, 1e300]),
    ("minLength", {"type": "string", "minLength": 2}, ["ab", "日本"], ["a", ""]),
    ("maxLength", {"type": "string", "maxLength": 2}, ["ab", "😀😀"], ["abc"]),
    ("default maxLength", {"type": "string"}, ["x" * S.DEFAULT_MAX_LENGTH],
     ["x" * (S.DEFAULT_MAX_LENGTH + 1)]),
    ("pattern", {"type": "string", "pattern": "^/srv/public/"}, ["/srv/public/a"],
     ["/etc/shadow", "/srv/public"]),
    ("pattern unanchored", {"type": "string", "pattern": "[0-9]{3}"}, ["ab123"], ["12"]),
    ("minItems", {"type": "array", "items": {"type": "string"}, "minItems": 1}, [["a"]], [[]]),
    ("maxItems", {"type": "array", "items": {"type": "string"}, "maxItems": 1}, [["a"]],
     [["a", "b"]]),
    ("default maxItems", {"type": "array", "items": {"type": "integer"}},
     [[0] * S.DEFAULT_MAX_ITEMS], [[0] * (S.DEFAULT_MAX_ITEMS + 1)]),
    ("required", {"type": "object", "properties": {"a": {"type": "string"}},
                  "required": ["a"]}, [{"a": "x"}], [{}]),
    ("additionalProperties false", {"type": "object", "properties": {},
                                    "additionalProperties": False}, [{}], [{"x": 1}]),
    ("nested", {"type": "array", "items": {"type": "object", "properties": {
        "n": {"type": "integer", "maximum": 3}}, "required": ["n"]}},
     [[{"n": 3}]], [[{"n": 4}], [{}]]),
    ("free-form object", {"type": "object"}, [{}, {"a": 1, "b": ["x", None]}],
     [{"a b": 1}, {"k" * (S.MAX_KEY_LENGTH + 1): 1}, {"a": [{"b": 1}]},
      {f"k{i}": i for i in range(S.DEFAULT_MAX_ITEMS + 1)}, []]),
    ("untyped", {}, ["x", 1, 1.5, True, None, [1, "a"], {"a": [1]}],
     [[[[1]]], "x" * (S.DEFAULT_MAX_LENGTH + 1), float("nan"), 10 ** 20]),
    ("BFCL dict", {"type": "dict", "properties": {"a": {"type": "float"}}},
     [{"a": 1.5}], [{"a": "1"}]),
    ("BFCL tuple", {"type": "tuple", "items": {"type": "integer"}}, [[1, 2]], [[1.5]]),
    ("BFCL any", {"type": "any"}, ["x", 3, None], [object()]),
]


@pytest.mark.parametrize("what,schema,good,bad", ENFORCED, ids=[e[0] for e in ENFORCED])
def test_keyword_enforced(what, schema, good, bad):
    canon = check_schema(schema, "tool t: parameters.x")
    for v in good:
        assert validate(v, canon) == [], (what, v)
    for v in bad:
        errs = validate(v, canon)
        assert errs and all(isinstance(e, str) for e in errs), (what, v)


UNSUPPORTED = ["format", "anyOf", "allOf", "oneOf", "$ref", "not", "if", "then", "else",
               "multipleOf", "uniqueItems", "patternProperties", "minProperties",
               "propertyNames", "contains", "prefixItems", "dependentRequired", "$defs",
               "nullable", "contentEncoding", "unevaluatedProperties"]


@pytest.mark.parametrize("keyword", UNSUPPORTED)
def test_unsupported_keyword_refused(keyword):
    t = {"type": "function", "function": {"name": "read_file", "parameters": {
        "type": "object", "properties": {"path": {"type": "string", keyword: "x"}}}}}
    with pytest.raises(ValueError) as e:
        normalize_tool(t)
    assert str(e.value) == \
        f"tool read_file: parameters.path: keyword {keyword!r} is not supported"


def self_ref():
    s = {"type": "object", "properties": {}}
    s["properties"]["again"] = s
    return s


def deep(n):
    s = {"type": "string"}
    for _ in range(n):
        s = {"type": "array", "items": s}
    return s


def wide_dag():
    s = {"type": "string"}
    for _ in range(12):
        s = {"type": "object", "properties": {"a": s, "b": s, "c": s}}
    return s


MALFORMED = [
    ({"type": "integer", "minimum": "0"}, "minimum must be a finite number"),
    ({"type": "integer", "maximum": True}, "maximum must be a finite number"),
    ({"type": "number", "minimum": float("nan")}, "minimum must be a finite number"),
    ({"type": "string", "description": 3}, "description must be a string"),
    ({"type": "string", "title": ["x"]}, "title must be a string"),
    ({"type": "array", "minItems": 5, "maxItems": 2}, "minItems 5 is greater than maxItems 2"),
    ({"type": "array", "minItems": -1}, "minItems -1 is outside"),
    ({"type": "array", "maxItems": 10 ** 9}, "maxItems 1000000000 is outside"),
    ({"type": "array", "minItems": 1.5}, "minItems must be an integer"),
    ({"type": "string", "minLength": 10 ** 6}, "minLength 1000000 is outside"),
    ({"type": "string", "minLength": 3, "maxLength": 2}, "greater than maxLength"),
    ({"type": "string", "pattern": "(?=x)"}, "lookaround"),
    ({"type": "string", "pattern": 5}, "pattern must be a string"),
    ({"type": "integer", "minimum": 5, "maximum": 4}, "no integer"),
    ({"type": "integer", "minimum": 10 ** 20}, "no integer"),
    ({"type": "string", "enum": []}, "non-empty list"),
    ({"type": "string", "enum": "abc"}, "non-empty list"),
    ({"type": "string", "enum": ["a", 1]}, "not of type 'string'"),
    ({"enum": [[1]]}, "not a JSON scalar"),
    ({"enum": [float("inf")]}, "not a JSON scalar"),
    ({"type": "string", "enum": ["a"], "const": "a"}, "either enum or const"),
    ({"type": "string", "enum": ["abc"], "maxLength": 2}, "no enum/const value"),
    ({"type": "integer", "enum": [1, 2], "minimum": 3}, "no enum/const value"),
    ({"type": "array", "enum": [1]}, "not supported for type 'array'"),
    ({"type": "string", "minimum": 1}, "'minimum' is not supported for type 'string'"),
    ({"type": ["string", "null"]}, "list of types"),
    ({"type": "str"}, "unsupported type 'str'"),
    ({"type": "array", "items": [{"type": "string"}]}, "items as a list"),
    ({"type": "array", "items": "string"}, "schema must be a dict"),
    ({"type": "object", "properties": []}, "properties must be a mapping"),
    ({"type": "object", "properties": {"a": {}}, "required": ["b"]}, "not a declared"),
    ({"type": "object", "properties": {"a": {}}, "required": "a"}, "required must be a list"),
    ({"type": "object", "properties": {"a": {}}, "required": ["a", "a"]}, "twice"),
    ({"type": "object", "required": ["a"]}, "required needs properties"),
    ({"type": "object", "properties": {}, "additionalProperties": True}, "not supported"),
    ({"type": "object", "additionalProperties": {"type": "string"}}, "must be true or false"),
    ({"type": "string", "description": "a\ud800"}, "not valid Unicode"),
    ({"type": "string", "enum": ["x" * (S.MAX_LENGTH_CAP + 1)]}, "longer than"),
    ({"type": "string", "enum": list(map(str, range(S.MAX_ENUM + 1)))}, "more than"),
    ({"type": "string", 3: "x"}, "is not a string"),
    (self_ref(), "refers to itself"),
    (deep(1200), f"deeper than {S.MAX_DEPTH}"),
    (wide_dag(), f"more than {S.MAX_NODES} nodes"),
]


@pytest.mark.parametrize("schema,message", MALFORMED, ids=[m[1][:30] for m in MALFORMED])
def test_malformed_refused(schema, message):
    with pytest.raises(ValueError) as e:
        normalize_tool(tool({"x": schema}))
    assert str(e.value).startswith("tool t: parameters") and message in str(e.value)


def test_tool_level_errors():
    with pytest.raises(ValueError, match="name"):
        normalize_tool({"name": "bad name"})
    with pytest.raises(ValueError, match="description must be a string"):
        normalize_tool({"name": "f", "description": 3})
    with pytest.raises(ValueError, match="of type 'object'"):
        normalize_tool({"name": "f", "parameters": {"type": "string"}})
    with pytest.raises(ValueError, match="dict schema or a callable"):
        normalize_tool("f")


def test_any_property_name_is_accepted():
    names = ["type", "description", "properties", "required", "nullable", "enum", "",
             "with space", "<start_function_call>", "日本"]
    t = normalize_tool(tool({n: {"type": "string"} for n in names}, required=names))
    assert list(t["parameters"]["properties"]) == names
    assert args_ok({n: {"type": "string"} for n in names}, {n: "v" for n in names}, names)


def test_canonical_form():
    t = normalize_tool(tool({
        "s": {"type": "string", "description": "d", "default": "x", "title": "T"},
        "o": {"type": "dict", "properties": {"f": {"type": "float"}}},
        "free": {"type": "object"},
        "u": {"description": "anything"},
        "c": {"const": 2, "description": "two"},
        "e": {"type": "integer", "enum": [1, 5, 1], "maximum": 4},
    }, required=["s"]))
    p = t["parameters"]
    assert p["additionalProperties"] is False and p["required"] == ["s"]
    props = p["properties"]
    assert props["s"] == {"type": "string", "description": "d", "title": "T",
                          "minLength": 0, "maxLength": S.DEFAULT_MAX_LENGTH}
    assert props["o"] == {"type": "object", "properties": {"f": {"type": "number"}},
                          "required": [], "additionalProperties": False}
    assert props["free"] == {"type": "object"}
    assert props["u"] == {"type": "any", "description": "anything"}
    assert props["c"] == {"type": "integer", "description": "two", "enum": [2]}
    assert props["e"] == {"type": "integer", "enum": [1]}       # 5 breaks maximum; dup dropped
    assert check_schema(p) == p                                  # canonical is a fixed point
    # the input is never modified
    raw = {"type": "object", "properties": {"a": {"type": "float"}}}
    check_schema(raw)
    assert raw == {"type": "object", "properties": {"a": {"type": "float"}}}


def test_enum_values_are_exempt_from_default_caps():
    long = "x" * (S.DEFAULT_MAX_LENGTH + 10)
    s = check_schema({"type": "string", "enum": [long]})
    assert validate(long, s) == []
    big = check_schema({"type": "integer", "enum": [10 ** 17]})
    assert validate(10 ** 17, big) == []


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Color(enum.Enum):
    RED = "red"


def test_schema_from_callable():
    def f(a: Literal[1, 2, 3], b: Level, c: Color, d: List[int], e: Optional[float] = None,
          g: Literal[True] = True, h: Dict[str, Any] = None, i: list = None,
          j: Literal["x", 1] = "x", k: Any = None):
        """Do f.

        Args:
            a: the a.
        """
    fn = schema_from_callable(f)["function"]
    props = fn["parameters"]["properties"]
    assert props["a"] == {"type": "integer", "enum": [1, 2, 3], "description": "the a."}
    assert props["b"] == {"type": "integer", "enum": [1, 2]}
    assert props["c"] == {"type": "string", "enum": ["red"]}
    assert props["d"] == {"type": "array", "items": {"type": "integer"}}
    assert props["e"] == {"type": "number"}
    assert props["g"] == {"type": "boolean", "enum": [True]}
    assert props["h"] == {"type": "object"} and props["i"] == {"type": "array"}
    assert props["j"] == {"enum": ["x", 1]} and props["k"] == {}
    assert fn["parameters"]["required"] == ["a", "b", "c", "d"]
    canon = normalize_tool(schema_from_callable(f))["parameters"]
    ok = {"a": 2, "b": 1, "c": "red", "d": [1], "j": 1}
    assert validate(ok, canon) == []
    assert validate({**ok, "a": "2"}, canon) and validate({**ok, "b": True}, canon)

    def bad(x: set):
        pass
    with pytest.raises(ValueError, match="no schema"):
        schema_from_callable(bad)


def test_annotated_hints_add_schema_keywords_and_nothing_is_dropped():
    def f(n: Annotated[int, {"minimum": 1, "maximum": 60}],
          s: Annotated[Optional[str], {"maxLength": 8}] = None):
        pass
    props = schema_from_callable(f)["function"]["parameters"]["properties"]
    assert props["n"] == {"type": "integer", "minimum": 1, "maximum": 60}
    assert props["s"] == {"type": "string", "maxLength": 8}
    canon = normalize_tool(schema_from_callable(f))["parameters"]
    assert validate({"n": 60}, canon) == [] and validate({"n": 61}, canon)

    def other(n: Annotated[int, "a note"]):     # metadata that is not a schema: refused
        pass
    with pytest.raises(ValueError, match="Annotated metadata"):
        schema_from_callable(other)

    def unknown(n: Annotated[int, {"multipleOf": 5}]):   # a keyword we do not enforce
        pass
    with pytest.raises(ValueError, match="multipleOf"):
        normalize_tool(schema_from_callable(unknown))


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-5, 10 ** 6), st.text(max_size=6),
                      st.floats(allow_nan=True, allow_infinity=True),
                      st.sampled_from(["string", "integer", "object", "array", "dict", "any"]))
junk = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.sampled_from(["type", "items", "properties", "enum", "const",
                                     "minimum", "maxLength", "minItems", "maxItems",
                                     "required", "pattern", "additionalProperties",
                                     "description", "a", "b"]), inner, max_size=4)),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(junk, junk)
def test_any_schema_is_canonical_or_a_value_error(schema, value):
    try:
        canon = check_schema(schema, "tool t: parameters")
    except ValueError as e:
        assert str(e).startswith("tool t: parameters")
        return
    assert check_schema(canon) == canon
    errs = validate(value, canon)
    assert isinstance(errs, list) and all(isinstance(e, str) for e in errs)
