"""Conversation + tools -> FunctionGemma prompt text, as the official Hugging Face chat template
(google/functiongemma-270m-it) renders it, without the leading <bos> (the tokenizer adds it).

Conventions the template fixes and that are easy to get wrong:
- every mapping is written in Jinja `dictsort` order (keys sorted case-insensitively);
- strings are wrapped in <escape>; numbers and booleans are bare; keys inside call arguments
  and responses are bare, keys inside declaration values (e.g. enum lists) are escaped;
- a property's description is always present, empty as <escape><escape>;
- a tool result is not a turn of its own: it follows the call inside the model turn, and the
  next message after it does not reopen a turn.
"""
from __future__ import annotations

from ...content import content_text
from ...schema import normalize_tool
from ...syntax import dictsort, format_call
from ...syntax import format_value as _fmt
from ..segments import call_arguments
from .call_syntax import DECLARATION_SYNTAX, SYNTAX
from .tokens import (END_CALL, END_DECL, END_RESP, ESCAPE, START_CALL, START_DECL,
                     START_RESP)

DEFAULT_SYSTEM = "You are a model that can do function calling with the following functions"


def _esc(s: str) -> str:
    return ESCAPE + s + ESCAPE


def render_value(v, escape_keys: bool = False) -> str:
    """One value in the format's own notation (the template's format_argument macro), keys
    in dictsort order. None is written `null` (Jinja would print Python's `None`, which no
    parser reads back)."""
    return _fmt(DECLARATION_SYNTAX if escape_keys else SYNTAX, v, ESCAPE)


def _required(names) -> str:
    return "required:[" + ",".join(_esc(n) for n in names) + "]"


# The template's own words: a property with one of these names is written escaped, so that it
# reads as a property, not as part of the declaration's structure.
_TEMPLATE_WORDS = frozenset(("description", "type", "properties", "required", "nullable",
                             "enum", "items"))


def _properties(props: dict) -> str:
    parts = []
    for key, s in dictsort(props):
        t = s.get("type", "").upper()
        name = _esc(key) if key in _TEMPLATE_WORDS or not key.isidentifier() else key
        p = f"{name}:{{description:{_esc(s.get('description', ''))}"
        if t == "STRING" and s.get("enum"):
            p += ",enum:" + render_value(s["enum"], escape_keys=True)
        elif t == "OBJECT":
            p += ",properties:{" + _properties(s.get("properties") or {}) + "}"
            if s.get("required"):
                p += "," + _required(s["required"])
        elif t == "ARRAY" and s.get("items"):
            p += ",items:{" + _items(s["items"]) + "}"
        parts.append(p + f",type:{_esc(t)}}}")
    return ",".join(parts)


def _items(items: dict) -> str:
    parts = []
    for k, v in dictsort(items):
        if v is None:
            continue
        if k == "properties":
            parts.append("properties:{" + _properties(v) + "}")
        elif k == "required":
            parts.append(_required(v))
        elif k == "type":
            parts.append("type:" + _esc(v.upper()))
        else:
            parts.append(f"{k}:{render_value(v, escape_keys=True)}")
    return ",".join(parts)


def render_declaration(tool) -> str:
    """`declaration:NAME{...}` for one tool (without the surrounding control tokens)."""
    t = normalize_tool(tool)
    out = f"declaration:{t['name']}{{description:{_esc(t['description'])}"
    params = t["parameters"]
    out += ",parameters:{"
    if params.get("properties"):
        out += "properties:{" + _properties(params["properties"]) + "},"
    if params.get("required"):
        out += _required(params["required"]) + ","
    out += f"type:{_esc(params['type'].upper())}}}"
    return out + "}"


def render_call(name: str, arguments: dict) -> str:
    return START_CALL + format_call(SYNTAX, name, arguments, ESCAPE) + END_CALL


def render_response(name: str, result) -> str:
    """A tool result: a mapping is spread into its keys, anything else becomes `value`."""
    body = render_value(result if isinstance(result, dict) else {"value": result})
    return f"{START_RESP}response:{name}{body}{END_RESP}"


def _tool_message(m: dict) -> str:
    content = m.get("content")
    if isinstance(content, dict) and "name" in content and "response" in content:
        return render_response(content["name"], content["response"])
    if not m.get("name"):
        raise ValueError("a tool message needs the 'name' of the tool it answers")
    if isinstance(content, dict):
        return render_response(m["name"], content)
    return render_response(m["name"], content_text(content))


def render(messages, tools=None, add_generation_prompt: bool = True) -> str:
    """The prompt for messages (OpenAI-style dicts: system/developer, user, assistant with
    optional tool_calls, tool with name + content) and OpenAI-style tools."""
    tools = list(tools or [])
    messages = list(messages)
    out = []
    first = messages[0].get("role") if messages else None
    if tools or first in ("system", "developer"):
        out.append("<start_of_turn>developer\n")
        if first in ("system", "developer"):
            out.append(content_text(messages[0].get("content")))
            messages = messages[1:]
        else:
            # The llama-server render of the official template with tools and no system
            # message opens with this sentence (llamadart fixture, see tests).
            out.append(DEFAULT_SYSTEM)
        out += [START_DECL + render_declaration(t) + END_DECL for t in tools]
        out.append("<end_of_turn>\n")
    prev = None
    for i, m in enumerate(messages):
        role = m.get("role")
        if role == "tool":
            out.append(_tool_message(m))
            prev = "tool_response"
            continue
        if role not in ("user", "assistant", "system", "developer"):
            raise ValueError(f"unknown message role {role!r}")
        if prev != "tool_response":
            out.append(f"<start_of_turn>{'model' if role == 'assistant' else role}\n")
        prev = None
        out.append(content_text(m.get("content")))
        if m.get("tool_calls"):
            out += [render_call(*call_arguments(c)) for c in m["tool_calls"]]
            prev = "tool_call"
            if i == len(messages) - 1:
                out.append(START_RESP)
        else:
            out.append("<end_of_turn>\n")
    if add_generation_prompt and prev is None:
        out.append("<start_of_turn>model\n")
    return "".join(out)
