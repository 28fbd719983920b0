"""Tool schemas, independent of any call format: normalising, checking and validating.

A tool is normalised to {"name", "description", "parameters"} where parameters is a *canonical*
schema (below). Everything outside the subset is refused with a ValueError that names the tool,
the place and the keyword ("tool read_file: parameters.path: keyword 'format' is not
supported"); nothing is ever silently ignored, so what the grammar allows and what `validate`
accepts are the same set of values.

The subset
----------
type        "string", "integer", "number", "boolean", "null", "array", "object"; BFCL's
            spellings map: "dict" -> object, "float" -> number, "tuple" -> array, "any" or no
            type -> an untyped value. A list of types is refused.
enum/const  non-empty list of JSON scalars (str, int, float, bool, None; finite numbers); mixed
            types are allowed without "type". const is enum with one value. Values that break
            the node's other keywords are dropped at check time (none left -> refused), so a
            canonical enum node carries only "type", "enum" and documentation.
numbers     minimum, maximum, exclusiveMinimum, exclusiveMaximum (numbers, draft 6 form).
            Every number also has at most MAX_DIGITS digit characters in its plain decimal
            text (no exponent; "0.05" has 3): integers stay exact as doubles, decoding stays
            short. A range with no such number is refused.
strings     minLength, maxLength (code points, at most MAX_LENGTH_CAP; default maxLength
            DEFAULT_MAX_LENGTH), pattern (edge_runtime.calls.regex's subset, ECMA search
            semantics).
arrays      items (one schema; absent -> untyped items), minItems, maxItems (at most
            MAX_ITEMS_CAP; default maxItems DEFAULT_MAX_ITEMS).
objects     properties + required: only the declared keys are accepted (additionalProperties
            absent or false; true next to properties is refused). Any string is a valid
            property name ("type", "properties", "" ...): quoting it is the format's job.
            An object without "properties" is *free-form*: at most DEFAULT_MAX_ITEMS keys,
            each an identifier of at most MAX_KEY_LENGTH characters, values untyped.
untyped     a string, number, boolean, null, or an array / free-form object of untyped values,
            nested at most FREE_DEPTH containers deep (a free-form object is one level).
docs        description, title (strings, kept in the canonical form), default, examples,
            $comment, $schema (accepted, dropped): never enforced.

Value rules: a bool is never an integer or number; an integer is a Python int (1.0 is a number,
never an integer: no call format writes an integer as "1.0"); numbers must be finite.

Malformed schemas (a keyword of the wrong type, minItems > maxItems, negative or oversized
lengths, self-reference, nesting beyond MAX_DEPTH, more than MAX_NODES nodes once expanded,
strings that are not valid Unicode) are a ValueError at construction, never RecursionError or
TypeError.

Canonical form (what the grammar walks): every node is a new dict with "type" among
TYPES + ("any",); strings always carry minLength/maxLength, arrays items/minItems/maxItems;
closed objects carry "properties", "required" and "additionalProperties": False; free-form
objects have no "properties"; enum nodes are as said above.
"""
from __future__ import annotations

import enum
import inspect
import json
import math
import re
import typing
from decimal import Decimal

from . import numbers as _numbers
from . import regex as _regex

NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")
KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")       # keys of free-form objects
TYPES = ("string", "integer", "number", "boolean", "null", "array", "object")
ALIASES = {"dict": "object", "float": "number", "tuple": "array", "any": "any"}

DEFAULT_MAX_LENGTH = 128     # characters of a string without maxLength
MAX_LENGTH_CAP = 4096        # largest minLength/maxLength a schema may give
DEFAULT_MAX_ITEMS = 8        # items of an array without maxItems; keys of a free-form object
MAX_ITEMS_CAP = 256          # largest minItems/maxItems a schema may give
MAX_KEY_LENGTH = 32          # characters of a free-form object's key
MAX_DIGITS = _numbers.MAX_DIGITS   # digit characters of any number (15: exact as a double)
FREE_DEPTH = 2               # containers an untyped value may nest
MAX_DEPTH = 16               # nesting of schema nodes
MAX_NODES = 2000             # schema nodes, counting each use of a shared sub-schema
MAX_ENUM = 1024              # values in one enum

_DOC = ("description", "title", "default", "examples", "$comment", "$schema")
_KEYWORDS = {
    "string": ("minLength", "maxLength", "pattern"),
    "integer": ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"),
    "number": ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"),
    "boolean": (), "null": (), "any": (),
    "array": ("items", "minItems", "maxItems"),
    "object": ("properties", "required", "additionalProperties"),
}
_BOUNDS = _KEYWORDS["number"]


def _err(where, msg):
    return ValueError(f"{where}: {msg}")


# ---- normalising ---------------------------------------------------------------------------

# "strict" asks for exactly what the agent always does: calls that match the schema.
TOOL_FIELDS = {"name", "description", "parameters", "strict"}


def normalize_tool(tool) -> dict:
    """An OpenAI-style tool ({"type": "function", "function": {...}} or the inner dict),
    checked, as {"name", "description", "parameters": canonical schema}."""
    if not isinstance(tool, dict):
        raise ValueError(f"tool must be a dict schema or a callable, got {type(tool).__name__}")
    fn = tool.get("function", tool) if tool.get("type", "function") == "function" else None
    if not isinstance(fn, dict):
        raise ValueError(f"tool has unsupported type {tool.get('type')!r}")
    unknown = sorted(map(str, set(fn) - TOOL_FIELDS - ({"type", "function"} if fn is tool else set())))
    if unknown:    # a misspelled "parameter" would declare a tool that takes nothing
        raise ValueError(f"tool {fn.get('name')!r}: unknown field {unknown[0]!r} (a tool has "
                         f"{', '.join(sorted(TOOL_FIELDS))})")
    name = fn.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError(f"tool name {name!r} must match {NAME_RE.pattern[:-2]}")
    desc = fn.get("description", "")
    if desc is None:
        desc = ""
    if not isinstance(desc, str):
        raise ValueError(f"tool {name}: description must be a string")
    _check_text(desc, f"tool {name}: description")
    params = fn.get("parameters")
    if params is None:
        params = {"type": "object", "properties": {}}
    canon = check_schema(params, f"tool {name}: parameters")
    if canon["type"] != "object":
        raise ValueError(f"tool {name}: parameters must be of type 'object'")
    return {"name": name, "description": desc, "parameters": canon}


def declare(tools) -> list:
    """The declarations of a toolset, as an agent gives them to its model: each tool (a
    callable or an OpenAI-style schema) normalized, in order; ValueError for none, a name
    given twice, or a schema outside the subset."""
    out, names = [], set()
    for t in tools or []:
        norm = normalize_tool(schema_from_callable(t) if callable(t) else t)
        if norm["name"] in names:
            raise ValueError(f"tool {norm['name']!r} is declared twice")
        names.add(norm["name"])
        out.append(norm)
    if not out:
        raise ValueError("an agent needs at least one tool")
    return out


def check_schema(schema, where: str = "schema") -> dict:
    """The canonical form of schema, or a ValueError naming where and what is wrong."""
    return _Checker().node(schema, where, 0, ())


def _check_text(s: str, where: str) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{where}: text is not valid Unicode (lone surrogate)") from None


def _is_scalar(v) -> bool:
    return v is None or isinstance(v, (str, bool, int)) or (
        isinstance(v, float) and math.isfinite(v))


def _scalar_type(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    return "number" if isinstance(v, float) else "string"


class _Checker:
    def __init__(self):
        self.nodes = 0

    def node(self, s, where, depth, path):
        if not isinstance(s, dict):
            raise _err(where, f"schema must be a dict, got {type(s).__name__}")
        if depth > MAX_DEPTH:
            raise _err(where, f"schema nests deeper than {MAX_DEPTH} levels")
        if any(s is p for p in path):
            raise _err(where, "schema refers to itself")
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _err(where, f"schema has more than {MAX_NODES} nodes")
        path = path + (s,)
        t = self._type(s, where)
        allowed = _KEYWORDS[t] + ("type", "enum", "const") + _DOC
        for k in s:
            if not isinstance(k, str):
                raise _err(where, f"keyword {k!r} is not a string")
            if k not in allowed:
                what = f"for type '{t}'" if any(k in v for v in _KEYWORDS.values()) else ""
                raise _err(where, f"keyword {k!r} is not supported {what}".rstrip())
        out = {"type": t}
        for k in ("description", "title"):
            if k in s:
                if not isinstance(s[k], str):
                    raise _err(where, f"{k} must be a string")
                _check_text(s[k], f"{where}.{k}")
                out[k] = s[k]
        out.update(getattr(self, "_" + t)(s, where, depth, path))
        if "enum" in s or "const" in s:
            return self._enum(s, out, where)
        return out

    def _type(self, s, where):
        if "type" not in s:
            return self._enum_type(s, where) if ("enum" in s or "const" in s) else "any"
        t = s["type"]
        if isinstance(t, list):
            raise _err(where, f"a list of types {t!r} is not supported")
        if not isinstance(t, str):
            raise _err(where, f"type must be a string, got {type(t).__name__}")
        t = ALIASES.get(t, t)
        if t not in TYPES and t != "any":
            raise _err(where, f"unsupported type {t!r} (use one of {', '.join(TYPES)})")
        return t

    def _enum_values(self, s, where):
        if "enum" in s and "const" in s:
            raise _err(where, "give either enum or const, not both")
        values = [s["const"]] if "const" in s else s["enum"]
        if not isinstance(values, list) or not values:
            raise _err(where, "enum must be a non-empty list")
        if len(values) > MAX_ENUM:
            raise _err(where, f"enum has more than {MAX_ENUM} values")
        for v in values:
            if not _is_scalar(v):
                raise _err(where, f"enum/const value {v!r} is not a JSON scalar "
                                  "(string, finite number, boolean, null)")
            if isinstance(v, str):
                _check_text(v, f"{where}.enum")
                if len(v) > MAX_LENGTH_CAP:
                    raise _err(where, f"enum value longer than {MAX_LENGTH_CAP} characters")
        return values

    def _enum_type(self, s, where):
        kinds = {_scalar_type(v) for v in self._enum_values(s, where)}
        if kinds == {"integer", "number"}:
            return "number"
        return kinds.pop() if len(kinds) == 1 else "any"

    def _enum(self, s, out, where):
        values = self._enum_values(s, where)
        t = out["type"]
        if t in ("array", "object"):
            raise _err(where, f"enum/const is not supported for type '{t}'")
        kept = []
        for v in values:
            if t != "any" and not _is_type(v, t):
                raise _err(where, f"enum value {v!r} is not of type '{t}'")
            if _enum_ok(v, s) and not any(_same(v, k) for k in kept):
                kept.append(v)
        if not kept:
            raise _err(where, "no enum/const value satisfies the other keywords")
        return {k: out[k] for k in ("type", "description", "title") if k in out} | {"enum": kept}

    # -- per type: the canonical keywords

    def _length(self, s, key, where, cap):
        v = s[key]
        if isinstance(v, bool) or not isinstance(v, int):
            raise _err(where, f"{key} must be an integer, got {v!r}")
        if not 0 <= v <= cap:
            raise _err(where, f"{key} {v} is outside 0..{cap}")
        return v

    def _range(self, s, lo_key, hi_key, default, cap, where):
        lo = self._length(s, lo_key, where, cap) if lo_key in s else 0
        hi = self._length(s, hi_key, where, cap) if hi_key in s else max(lo, default)
        if lo > hi:
            raise _err(where, f"{lo_key} {lo} is greater than {hi_key} {hi}")
        return {lo_key: lo, hi_key: hi}

    def _string(self, s, where, depth, path):
        out = self._range(s, "minLength", "maxLength", DEFAULT_MAX_LENGTH, MAX_LENGTH_CAP, where)
        if "pattern" in s:
            p = s["pattern"]
            if not isinstance(p, str):
                raise _err(where, "pattern must be a string")
            try:
                _regex.compile(p)
            except ValueError as e:
                raise _err(where, f"pattern {p!r}: {e}") from None
            out["pattern"] = p
        return out

    def _integer(self, s, where, depth, path):
        return self._numeric(s, where, True)

    def _number(self, s, where, depth, path):
        return self._numeric(s, where, False)

    def _numeric(self, s, where, integer):
        out = {}
        for k in _BOUNDS:
            if k in s:
                v = s[k]
                if isinstance(v, bool) or not isinstance(v, (int, float)) or \
                        not math.isfinite(v):
                    raise _err(where, f"{k} must be a finite number, got {v!r}")
                out[k] = v
        try:
            _numbers.NumberSyntax(integer, **out)
        except ValueError as e:
            raise _err(where, str(e)) from None
        return out

    def _boolean(self, s, where, depth, path):
        return {}

    _null = _any = _boolean

    def _array(self, s, where, depth, path):
        items = s.get("items", {})
        if isinstance(items, list):
            raise _err(where, "items as a list (tuple validation) is not supported")
        out = {"items": self.node(items, where + ".items", depth + 1, path)}
        out.update(self._range(s, "minItems", "maxItems", DEFAULT_MAX_ITEMS, MAX_ITEMS_CAP,
                               where))
        return out

    def _object(self, s, where, depth, path):
        extra = s.get("additionalProperties", "absent")
        if not (extra == "absent" or isinstance(extra, bool)):
            raise _err(where, "additionalProperties must be true or false "
                              "(a schema there is not supported)")
        if "properties" not in s:
            if "required" in s and s["required"]:
                raise _err(where, "required needs properties")
            if extra is False:        # no properties, none allowed: the empty object
                return {"properties": {}, "required": [], "additionalProperties": False}
            return {}
        if extra is True:
            raise _err(where, "additionalProperties true next to properties is not supported")
        props = s["properties"]
        if not isinstance(props, dict):
            raise _err(where, "properties must be a mapping")
        canon = {}
        for k, v in props.items():
            if not isinstance(k, str):
                raise _err(where, f"property name {k!r} is not a string")
            _check_text(k, f"{where}: property name")
            canon[k] = self.node(v, f"{where}.{k}", depth + 1, path)
        req = s.get("required", [])
        if not isinstance(req, list) or not all(isinstance(r, str) for r in req):
            raise _err(where, "required must be a list of property names")
        for r in req:
            if r not in props:
                raise _err(where, f"required lists {r!r}, which is not a declared property")
        if len(set(req)) != len(req):
            raise _err(where, "required lists a property twice")
        return {"properties": canon, "required": list(req), "additionalProperties": False}


def _enum_ok(v, s) -> bool:
    """Whether an enum value passes the keywords written next to the enum (the default caps
    do not apply: the grammar writes enum values literally)."""
    if isinstance(v, str):
        return (s.get("minLength", 0) <= len(v) <= s.get("maxLength", len(v))
                and ("pattern" not in s or _regex.compile(s["pattern"]).matches(v)))
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return True
    errs = []
    _bounds(v, s, "", errs)
    return not errs


# ---- validating ----------------------------------------------------------------------------

def _is_type(v, t: str) -> bool:
    if t == "string":
        return isinstance(v, str)
    if t == "boolean":
        return isinstance(v, bool)
    if t == "null":
        return v is None
    if t == "integer":
        return isinstance(v, int) and not isinstance(v, bool)
    if t == "number":
        return (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))
    if t == "array":
        return isinstance(v, list)
    if t == "object":
        return isinstance(v, dict)
    return True


def _same(a, b) -> bool:
    """JSON equality of scalars: True is not 1, 1 equals 1.0."""
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a is b or (isinstance(a, bool) and isinstance(b, bool) and a == b)
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    return a == b


def number_digits(v) -> int:
    """Digit characters in the shortest plain decimal text of a finite number (no exponent)."""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, int) and abs(v) >= 10 ** 60:
        return 61          # beyond any cap (and str() of a huge int is refused by Python)
    text = str(abs(v)) if isinstance(v, int) else format(abs(Decimal(repr(v))), "f")
    return sum(c.isdigit() for c in text)


def _show(v) -> str:
    try:
        return json.dumps(v, default=repr)[:40]
    except (ValueError, TypeError, RecursionError):
        return type(v).__name__


def validate(value, schema: dict, path: str = "arguments") -> list:
    """Every way value breaks schema, as readable strings; empty when valid. schema may be
    raw or canonical (it is checked first: ValueError if it is outside the subset)."""
    errs = []
    _validate(value, check_schema(schema), path, errs)
    return errs


def _validate(value, s, path, errs):
    t = s["type"]
    if t == "any" and "enum" not in s:
        return _free(value, path, errs, FREE_DEPTH)
    if not _is_type(value, t):
        errs.append(f"{path}: expected {t}, got {_show(value)}")
        return
    if "enum" in s:
        if not any(_same(value, v) for v in s["enum"]) or not _is_scalar(value):
            errs.append(f"{path}: {_show(value)} is not one of {_show(s['enum'])}")
        return
    if t == "string":
        n = len(value)
        if n < s["minLength"]:
            errs.append(f"{path}: shorter than {s['minLength']} characters")
        if n > s["maxLength"]:
            errs.append(f"{path}: longer than {s['maxLength']} characters")
        if "pattern" in s and not _regex.compile(s["pattern"]).matches(value):
            errs.append(f"{path}: does not match pattern {s['pattern']!r}")
    elif t in ("integer", "number"):
        _number(value, s, path, errs)
    elif t == "array":
        if len(value) < s["minItems"]:
            errs.append(f"{path}: fewer than {s['minItems']} items")
        if len(value) > s["maxItems"]:
            errs.append(f"{path}: more than {s['maxItems']} items")
        for i, v in enumerate(value[:s["maxItems"]]):
            _validate(v, s["items"], f"{path}[{i}]", errs)
    elif t == "object":
        if "properties" not in s:
            return _free(value, path, errs, FREE_DEPTH)
        props = s["properties"]
        errs += [f"{path}: unknown key {_show(k)}" for k in value if k not in props]
        errs += [f"{path}: missing required key {k!r}" for k in s["required"]
                 if k not in value]
        for k, v in value.items():
            if k in props:
                _validate(v, props[k], f"{path}.{k}", errs)


def _number(value, s, path, errs):
    if number_digits(value) > MAX_DIGITS:
        errs.append(f"{path}: more than {MAX_DIGITS} digits")
    _bounds(value, s, path, errs)


def _bounds(value, s, path, errs):
    if "minimum" in s and value < s["minimum"]:
        errs.append(f"{path}: below minimum {s['minimum']}")
    if "exclusiveMinimum" in s and value <= s["exclusiveMinimum"]:
        errs.append(f"{path}: not above exclusiveMinimum {s['exclusiveMinimum']}")
    if "maximum" in s and value > s["maximum"]:
        errs.append(f"{path}: above maximum {s['maximum']}")
    if "exclusiveMaximum" in s and value >= s["exclusiveMaximum"]:
        errs.append(f"{path}: not below exclusiveMaximum {s['exclusiveMaximum']}")


def _free(value, path, errs, depth):
    """An untyped value: scalars within the default caps, containers FREE_DEPTH deep."""
    if isinstance(value, str):
        if len(value) > DEFAULT_MAX_LENGTH:
            errs.append(f"{path}: longer than {DEFAULT_MAX_LENGTH} characters")
    elif value is None or isinstance(value, bool):
        pass
    elif isinstance(value, (int, float)):
        if not math.isfinite(value):
            errs.append(f"{path}: not a finite number")
        elif number_digits(value) > MAX_DIGITS:
            errs.append(f"{path}: more than {MAX_DIGITS} digits")
    elif isinstance(value, (list, dict)):
        if depth <= 0:
            errs.append(f"{path}: nested deeper than {FREE_DEPTH} levels")
        elif len(value) > DEFAULT_MAX_ITEMS:
            errs.append(f"{path}: more than {DEFAULT_MAX_ITEMS} "
                        f"{'items' if isinstance(value, list) else 'keys'}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                _free(v, f"{path}[{i}]", errs, depth - 1)
        else:
            for k, v in value.items():
                if not isinstance(k, str) or not KEY_RE.match(k) or len(k) > MAX_KEY_LENGTH:
                    errs.append(f"{path}: key {_show(k)} is not an identifier of at most "
                                f"{MAX_KEY_LENGTH} characters")
                else:
                    _free(v, f"{path}.{k}", errs, depth - 1)
    else:
        errs.append(f"{path}: {type(value).__name__} is not a JSON value")


# ---- schemas from Python callables -------------------------------------------------------

_SIMPLE = {str: "string", int: "integer", float: "number", bool: "boolean",
           type(None): "null"}


def _hint_schema(hint, where: str) -> dict:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:    # Annotated[int, {"minimum": 1}]: keywords added
        s = _hint_schema(args[0], where)
        for extra in hint.__metadata__:
            if not isinstance(extra, dict):
                raise ValueError(f"{where}: Annotated metadata must be a dict of JSON-schema "
                                 f"keywords, not {extra!r}")
            s.update(extra)
        return s
    if hint in _SIMPLE:
        return {"type": _SIMPLE[hint]}
    if hint is typing.Any:
        return {}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum_schema([m.value for m in hint], where)
    if origin is typing.Literal:
        return _enum_schema(list(args), where)
    if hint is list or origin is list:
        return {"type": "array", "items": _hint_schema(args[0], where + "[]")} if args else \
            {"type": "array"}
    if hint is dict or origin is dict:
        if args and args[0] is not str:
            raise ValueError(f"{where}: dict keys must be str")
        return {"type": "object"}
    if origin is typing.Union:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return _hint_schema(rest[0], where)
    raise ValueError(f"{where}: type hint {hint!r} has no schema")


def _enum_schema(values, where):
    if not values or not all(_is_scalar(v) for v in values):
        raise ValueError(f"{where}: enum values must be strings, numbers, booleans or None")
    kinds = {_scalar_type(v) for v in values}
    if kinds == {"integer", "number"}:
        kinds = {"number"}
    return {"type": kinds.pop(), "enum": values} if len(kinds) == 1 else {"enum": values}


def _docstring_parts(doc: str):
    """(description, {param: text}) from a Google-style docstring: the first paragraph
    describes the tool, "name: text" lines under "Args:" describe parameters."""
    lines = inspect.cleandoc(doc or "").splitlines()
    desc = []
    for line in lines:
        if not line.strip() or _SECTION.match(line):
            break
        desc.append(line.strip())
    params, current, in_args = {}, None, False
    for line in lines:
        section = _SECTION.match(line)
        if section:
            in_args = section.group(1) in ("Args", "Arguments", "Parameters")
            current = None
            continue
        m = re.match(r"\s+(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)", line) if in_args else None
        if m:
            current = m.group(1)
            params[current] = m.group(2).strip()
        elif in_args and current and line.strip():
            params[current] += " " + line.strip()
    return " ".join(desc), params


_SECTION = re.compile(r"(Args|Arguments|Parameters|Returns|Raises|Yields|Examples?|Notes?):\s*$")


def schema_from_callable(fn) -> dict:
    """An OpenAI-style tool for fn from its signature, type hints and docstring."""
    name = getattr(fn, "__name__", None)
    try:
        sig = inspect.signature(fn)
        hints = typing.get_type_hints(fn, include_extras=True)
    except (TypeError, ValueError, NameError) as e:
        raise ValueError(f"tool {name!r}: cannot read its signature ({e})") from None
    desc, pdocs = _docstring_parts(fn.__doc__)
    props, required = {}, []
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise ValueError(f"tool {name!r}: *args/**kwargs cannot be declared")
        if p.name not in hints:
            raise ValueError(f"tool {name!r}: parameter {p.name!r} needs a type hint")
        s = _hint_schema(hints[p.name], f"{name}.{p.name}")
        if p.name in pdocs:
            s["description"] = pdocs[p.name]
        props[p.name] = s
        if p.default is p.empty:
            required.append(p.name)
    params = {"type": "object", "properties": props}
    if required:
        params["required"] = required
    return {"type": "function",
            "function": {"name": name, "description": desc, "parameters": params}}
