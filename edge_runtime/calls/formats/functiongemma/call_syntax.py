"""FunctionGemma's call syntax: `call:NAME{key:value,...}` closed by <end_function_call>,
strings wrapped in <escape> (no escapes inside: the text "<escape>" itself cannot occur),
bare keys, keys written in Jinja dictsort order."""
from dataclasses import replace

from ...syntax import END, ESC, Syntax

SYNTAX = Syntax(name="functiongemma", call_open=b"call:", args_open=b"{", args_close=b"}",
                arg_kv=b":", sep=b",", dict_kv=b":", key_quoted=False,
                true=b"true", false=b"false", null=b"null", str_open=ESC, str_close=ESC,
                escapes=False, forbidden=b"<escape>", end=END, sort_keys=True)
# Values inside declarations (enum lists, items): the template escapes their keys too.
DECLARATION_SYNTAX = replace(SYNTAX, key_quoted=True)
