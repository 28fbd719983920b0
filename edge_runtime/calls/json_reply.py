"""Replies constrained to JSON (the server's `response_format`): the grammar and token
constraint the calls use, run over one value of a schema in JSON's own syntax. Compact JSON
(no whitespace between tokens); object keys of a schema's `properties` only; a free-form object
(`json_object`, or `{"type": "object"}` inside a schema) takes identifier keys."""
from __future__ import annotations

from .grammar import CallGrammar, TokenConstraint
from .schema import check_schema
from .syntax import Syntax
from .vocab import Vocab

JSON_SYNTAX = Syntax(name="json", call_open=b"", args_open=b"{", args_close=b"}", arg_kv=b":",
                     sep=b",", dict_kv=b":", key_quoted=True, true=b"true", false=b"false",
                     null=b"null", str_open=34, str_close=34, escapes=True, forbidden=b"")
ANY_OBJECT = {"type": "object"}


def reply_schema(schema) -> dict:
    """schema in canonical form (schema.check_schema: a keyword outside the subset the grammar
    enforces is a ValueError), or any object for None."""
    return check_schema(ANY_OBJECT if schema is None else schema, "response_format schema")


def reply_constraint(tokenizer, schema) -> TokenConstraint:
    """The token constraint for one JSON value of a canonical schema."""
    return TokenConstraint(CallGrammar([], JSON_SYNTAX, value=schema),
                           Vocab.from_tokenizer(tokenizer), {})
