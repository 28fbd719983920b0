"""FunctionGemma's tool-calling format: render prompts, parse calls; its call syntax
(syntax.SYNTAX) drives the shared constrained-decoding grammar (edge_runtime.calls.grammar).

    render(messages, tools)          -> prompt text (official HF chat template, no <bos>)
    parse(text_or_ids, tokenizer)    -> ParseResult(calls, text, errors)
"""
from .parse import ParseError, ParseResult, parse
from .render import (DEFAULT_SYSTEM, render_value, render, render_call, render_declaration,
                     render_response)
from .call_syntax import SYNTAX
from .tokens import FUNCTION_TOKENS, decode, encode

__all__ = ["ParseError", "ParseResult", "parse", "DEFAULT_SYSTEM", "render_value", "render",
           "render_call", "render_declaration", "render_response", "SYNTAX",
           "FUNCTION_TOKENS", "decode", "encode"]
