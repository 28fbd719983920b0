"""FunctionGemma's control tokens and how text containing them becomes ids (and back).

FunctionGemma reuses Gemma 3's vocabulary: its seven function tokens sit at ids 46-52, which
the base Gemma 3 GGUF still names `<unused40>`..`<unused46>`. Mapping the names to those fixed
ids here (instead of asking the tokenizer) lets the same code drive both models unchanged.
"""
from __future__ import annotations

import re

START_DECL = "<start_function_declaration>"
END_DECL = "<end_function_declaration>"
START_CALL = "<start_function_call>"
END_CALL = "<end_function_call>"
START_RESP = "<start_function_response>"
END_RESP = "<end_function_response>"
ESCAPE = "<escape>"

FUNCTION_TOKENS = {START_DECL: 46, END_DECL: 47, START_CALL: 48, END_CALL: 49,
                   START_RESP: 50, END_RESP: 51, ESCAPE: 52}
TOKEN_NAMES = {i: name for name, i in FUNCTION_TOKENS.items()}

START_CALL_ID, END_CALL_ID = FUNCTION_TOKENS[START_CALL], FUNCTION_TOKENS[END_CALL]
START_RESP_ID, ESCAPE_ID = FUNCTION_TOKENS[START_RESP], FUNCTION_TOKENS[ESCAPE]
EOS_ID, START_TURN_ID, END_TURN_ID = 1, 105, 106

TURN_TOKENS = {"<start_of_turn>": START_TURN_ID, "<end_of_turn>": END_TURN_ID}
# The template's control names, for splitting rendered text into control ids and text.
SPLIT = re.compile("(" + "|".join(re.escape(n) for n in (*FUNCTION_TOKENS, *TURN_TOKENS)) + ")")
_SPLIT = re.compile("(" + "|".join(re.escape(n) for n in FUNCTION_TOKENS) + ")")


def encode(tokenizer, text: str, add_bos: bool = True) -> list:
    """Token ids for rendered FunctionGemma text; function tokens always become ids 46-52."""
    ids = []
    for i, part in enumerate(_SPLIT.split(text)):
        if part in FUNCTION_TOKENS:
            ids.append(FUNCTION_TOKENS[part])
        elif part or (i == 0 and add_bos):
            ids.extend(tokenizer.encode(part, add_bos=(i == 0 and add_bos), special=True))
    return ids


def decode(tokenizer, ids) -> str:
    """Text of ids with function tokens spelled by their FunctionGemma names."""
    out, buf = [], bytearray()
    for t in ids:
        t = int(t)
        if t in TOKEN_NAMES:
            out.append(buf.decode("utf-8", "replace"))
            buf.clear()
            out.append(TOKEN_NAMES[t])
        else:
            buf += tokenizer.token_to_piece(t)
    out.append(buf.decode("utf-8", "replace"))
    return "".join(out)
