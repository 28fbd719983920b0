"""A chat message's content as the text a call format renders (one rule for every format and
the server): a string, or OpenAI's list of text parts joined; surrounding space stripped."""
from __future__ import annotations


def content_text(content) -> str:
    """None -> "", a string, or a list of {"type": "text", "text": str} parts joined, then
    stripped; ValueError for anything else (an image part, a number, a mapping)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content.strip()
    if isinstance(content, list):
        parts = []
        for p in content:
            if not isinstance(p, dict) or p.get("type") != "text" \
                    or not isinstance(p.get("text"), str):
                raise ValueError("only text content parts are supported")
            parts.append(p["text"])
        return "".join(parts).strip()
    raise ValueError(f"message content must be a string or a list of text parts, "
                     f"not {type(content).__name__}")
