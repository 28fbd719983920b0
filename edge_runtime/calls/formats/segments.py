"""Segments: what a call format turns a conversation into. A segment is plain text (always
encoded with special tokens treated as text, so nothing a user, a tool or a schema supplies can
become a control token) or a control id that only the format itself places."""
from __future__ import annotations

import json

from ..content import content_text


def encode_segments(tokenizer, segments, add_bos: bool) -> list:
    """Ids of segments: ints are control ids placed by a format, strings are text."""
    ids = [tokenizer.bos_id] if add_bos and tokenizer.bos_id is not None else []
    for s in segments:
        if isinstance(s, int):
            ids.append(s)
        elif s:
            ids.extend(tokenizer.encode(s, add_bos=False, special=False))
    return ids


def prefix_ids(fmt, tokenizer, system, tools) -> list:
    """The ids every prompt of an agent starts with: fmt's instructions, demonstrations and
    the declarations of tools (normalized: calls.schema.declare), after BOS."""
    return encode_segments(tokenizer, fmt.prefix(system, tools), True)


def message_text(m) -> str:
    """A message's text; a tool result given as a mapping, as JSON."""
    c = m.get("content")
    return json.dumps(c) if isinstance(c, dict) else content_text(c)


def tool_result(m):
    """A tool message's result: its content, read as JSON where it is JSON text."""
    c = m.get("content")
    if isinstance(c, str):
        try:
            return json.loads(c)
        except ValueError:
            return c
    return c


def call_arguments(call: dict):
    """(name, arguments dict) of an OpenAI-style tool call (arguments may be a JSON string)."""
    fn = call.get("function", call)
    args = fn.get("arguments") or {}
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            raise ValueError(f"tool call {fn.get('name')!r}: arguments are not JSON") from None
    if not isinstance(args, dict):
        raise ValueError(f"tool call {fn.get('name')!r}: arguments must be an object")
    return fn["name"], args
