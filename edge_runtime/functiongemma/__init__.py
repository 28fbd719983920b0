"""FunctionGemma's tool-calling format: render prompts, parse calls, constrain decoding.

    render(messages, tools)          -> prompt text (official HF chat template, no <bos>)
    parse(text_or_ids, tokenizer)    -> ParseResult(calls, text, errors)
    validate(arguments, schema)      -> [error strings]
    CallGrammar(tools) + Vocab.from_tokenizer(tok) -> TokenConstraint: allowed ids per step
"""
from .grammar import CallGrammar, TokenConstraint, Vocab
from .parse import ParseError, ParseResult, parse
from .render import (DEFAULT_SYSTEM, format_value, render, render_call, render_declaration,
                     render_response)
from ..calls.schema import normalize_tool, schema_from_callable, validate
from .tokens import FUNCTION_TOKENS, decode, encode

__all__ = ["CallGrammar", "TokenConstraint", "Vocab", "ParseError", "ParseResult", "parse",
           "DEFAULT_SYSTEM", "format_value", "render", "render_call", "render_declaration",
           "render_response", "normalize_tool", "schema_from_callable", "validate",
           "FUNCTION_TOKENS", "decode", "encode"]
