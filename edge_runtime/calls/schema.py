"""Tools as FunctionGemma sees them: OpenAI-style schemas, schemas from Python callables, and
argument validation.

A tool is normalised to {"name", "description", "parameters"} where parameters is a JSON Schema
object. Only the subset the format can carry is accepted (string, integer, number, boolean,
array, object with declared properties; enum; required); anything else is rejected up front
with a ValueError naming the offending part, so the grammar and the validator never meet it.
"""
from __future__ import annotations

import enum
import inspect
import json
import math
import re
import typing

NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")
KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
TYPES = ("string", "integer", "number", "boolean", "array", "object")
# The official template skips properties with these names when it renders a declaration, so a
# model could never learn of them: refuse them instead of declaring a tool it cannot call.
RESERVED_KEYS = frozenset(("description", "type", "properties", "required", "nullable"))


def normalize_tool(tool) -> dict:
    """An OpenAI-style tool ({"type": "function", "function": {...}} or the inner dict),
    checked, as {"name", "description", "parameters"}."""
    if not isinstance(tool, dict):
        raise ValueError(f"tool must be a dict schema or a callable, got {type(tool).__name__}")
    fn = tool.get("function", tool) if tool.get("type", "function") == "function" else None
    if not isinstance(fn, dict):
        raise ValueError(f"tool has unsupported type {tool.get('type')!r}")
    name = fn.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError(f"tool name {name!r} must match {NAME_RE.pattern[:-2]}")
    params = fn.get("parameters") or {"type": "object", "properties": {}}
    check_schema(params, name, top=True)
    return {"name": name, "description": str(fn.get("description") or ""),
            "parameters": params}


def check_schema(s, where: str, top: bool = False) -> None:
    if not isinstance(s, dict):
        raise ValueError(f"{where}: schema must be a dict")
    t = s.get("type")
    if t not in TYPES:
        raise ValueError(f"{where}: unsupported type {t!r} (use one of {', '.join(TYPES)})")
    if top and t != "object":
        raise ValueError(f"{where}: parameters must be of type 'object'")
    if "enum" in s:
        e = s["enum"]
        if not isinstance(e, list) or not e or not all(_is_type(v, t) for v in e):
            raise ValueError(f"{where}: enum must be a non-empty list of {t} values")
        if t not in ("string", "integer", "number"):
            raise ValueError(f"{where}: enum is supported for strings and numbers only")
    if t == "array":
        check_schema(s.get("items"), where + "[]")
    if t == "object":
        props = s.get("properties")
        if not isinstance(props, dict):
            raise ValueError(f"{where}: object needs a 'properties' mapping")
        for k, v in props.items():
            if not isinstance(k, str) or not KEY_RE.match(k) or k in RESERVED_KEYS:
                raise ValueError(f"{where}: property name {k!r} cannot be declared")
            check_schema(v, f"{where}.{k}")
        req = s.get("required", [])
        if not isinstance(req, list) or any(r not in props for r in req):
            raise ValueError(f"{where}: required lists a property that is not declared")


def _is_type(v, t: str) -> bool:
    if t == "string":
        return isinstance(v, str)
    if t == "boolean":
        return isinstance(v, bool)
    if t == "integer":
        return isinstance(v, int) and not isinstance(v, bool)
    if t == "number":
        return (isinstance(v, (int, float)) and not isinstance(v, bool)
                and math.isfinite(v))
    if t == "array":
        return isinstance(v, list)
    return isinstance(v, dict)


def validate(value, schema: dict, path: str = "arguments") -> list:
    """Every way value breaks schema, as readable strings (empty when valid)."""
    t = schema["type"]
    if not _is_type(value, t):
        return [f"{path}: expected {t}, got {json.dumps(value, default=str)[:40]}"]
    errs = []
    if "enum" in schema and value not in schema["enum"]:
        errs.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if t == "string":
        if len(value) < schema.get("minLength", 0):
            errs.append(f"{path}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errs.append(f"{path}: longer than {schema['maxLength']}")
    elif t in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"]:
            errs.append(f"{path}: below minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errs.append(f"{path}: above maximum {schema['maximum']}")
    elif t == "array":
        if len(value) < schema.get("minItems", 0):
            errs.append(f"{path}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errs.append(f"{path}: more than {schema['maxItems']} items")
        for i, v in enumerate(value):
            errs += validate(v, schema["items"], f"{path}[{i}]")
    elif t == "object":
        props = schema["properties"]
        errs += [f"{path}: unknown key {k!r}" for k in value if k not in props]
        errs += [f"{path}: missing required key {k!r}" for k in schema.get("required", [])
                 if k not in value]
        for k, v in value.items():
            if k in props:
                errs += validate(v, props[k], f"{path}.{k}")
    return errs


# ---- schemas from Python callables -------------------------------------------------------

_SIMPLE = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _hint_schema(hint, where: str) -> dict:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in _SIMPLE:
        return {"type": _SIMPLE[hint]}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        values = [m.value for m in hint]
        return {"type": _value_type(values, where), "enum": values}
    if origin is typing.Literal:
        return {"type": _value_type(list(args), where), "enum": list(args)}
    if origin in (list, typing.List) or hint is list:
        if not args:
            raise ValueError(f"{where}: give the item type, e.g. list[str]")
        return {"type": "array", "items": _hint_schema(args[0], where + "[]")}
    if origin is typing.Union:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return _hint_schema(rest[0], where)
    raise ValueError(f"{where}: type hint {hint!r} has no FunctionGemma schema")


def _value_type(values, where):
    for t in ("boolean", "integer", "string", "number"):
        if all(_is_type(v, t) for v in values):
            return t
    raise ValueError(f"{where}: enum values must share one type")


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
        hints = typing.get_type_hints(fn)
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
