"""Grounding's choice of arguments: once the required ones are written, an optional argument
the request mentions is made easy to add, and ending the call easy when it mentions none.

On a small vocabulary and the python call syntax, the bonus is read token by token at the
states where that choice is made; what the agent then does with the real model is measured
on BFCL in docs/TOOL_CALLING.md and held by tests/test_builtin_agent.py.
"""
import numpy as np

from edge_runtime.calls import python_format
from edge_runtime.calls.grammar import CallGrammar, TokenConstraint
from edge_runtime.calls.grounding import Grounding, _mentioned, _words
from edge_runtime.calls.schema import normalize_tool
from edge_runtime.calls.vocab import Vocab

TOOL = normalize_tool({
    "name": "set_timer", "description": "Start a countdown timer.",
    "parameters": {"type": "object", "required": ["minutes"], "properties": {
        "minutes": {"type": "integer", "description": "How many minutes the timer runs."},
        "label": {"type": "string", "description": "A short name for the timer."},
        "sound": {"type": "string", "enum": ["bell", "chime"],
                  "description": "What the timer plays at the end."}}}})
WORDS = ["set_timer", "(", ")", "5", "50", ",", ", ", ", l", "label", " label", " sound", "=",
         '="', '")', '",', "tea", "timer"]


def _vocab():
    pieces = [bytes((b,)) for b in range(1, 256)]
    pieces += [w.encode() for w in WORDS if w.encode() not in pieces]
    return Vocab(pieces, [False] * len(pieces))


VOCAB = _vocab()
ID = {VOCAB.pieces[i]: i for i in range(VOCAB.n)}
CONSTRAINT = TokenConstraint(CallGrammar([TOOL], python_format.SYNTAX), VOCAB)


def _bonus(request, text):
    """{piece: bonus} over the allowed tokens after the call text typed so far."""
    st = CONSTRAINT.g.feed(CONSTRAINT.start(), text.encode())
    allowed = CONSTRAINT.allowed(st)
    b = Grounding(request, VOCAB, tools=[TOOL]).bonus(CONSTRAINT, st, allowed)
    b = np.zeros(len(allowed)) if b is None else b
    return {VOCAB.pieces[i]: float(v) for i, v in zip(allowed.tolist(), b)}


def test_a_property_is_mentioned_by_its_own_words_not_the_tool_topic():
    def mentioned(request):
        return _mentioned(_words(request), TOOL) - {"minutes"}
    assert mentioned("set a timer for 5 minutes") == set()   # "timer" names the tool's topic
    assert mentioned("set a timer for 5 minutes called tea") == {"label"}    # naming words
    assert mentioned("a 5 minute timer labelled tea") == {"label"}
    assert mentioned("5 minutes, and ring a chime at the end") == {"sound"}  # an enum value
    assert _words("exploring detailed tempUnit") == _words("exploration detail temp_unit")


def test_with_no_optional_argument_mentioned_the_call_ends():
    # ")" and "," both end the request's number 5 (the number bonus gives each the same);
    # only the separator, which starts another argument, is held back
    b = _bonus("set a timer for 5 minutes", "set_timer(minutes=5")
    assert b[b","] == b[b", "] == b[b", l"] < b[b")"]
    assert b[b"0"] == 0                            # going on with the number: untouched


def test_a_mentioned_optional_argument_is_added():
    b = _bonus("set a timer for 5 minutes called tea", "set_timer(minutes=5")
    assert b[b")"] < b[b","] == b[b", "]           # ending the call is held back
    b = _bonus("set a timer for 5 minutes called tea", "set_timer(minutes=5, ")
    assert b[b"label"] > 0 and b[b"l"] > 0         # the mentioned key is made easy
    assert b[b"s"] == 0
    b = _bonus("set a timer for 5 minutes called tea", 'set_timer(minutes=5, label="tea')
    assert b[b'")'] == b[b'"'] > b[b'",']         # nothing mentioned is left: the call ends


def test_a_string_value_is_never_cut_short_to_add_an_argument():
    """Inside a string only closing tokens end the value: the one that closes it the wanted
    way gets nothing over a bare closing quote (a bonus there would cut the value short),
    the other way is held back."""
    b = _bonus("5 minutes called tea, with a bell", 'set_timer(minutes=5, label="tea')
    assert b[b'",'] == b[b'"'] > b[b'")']              # "sound" is still wanted


def test_numbers_the_request_spells_are_grounded_too():
    b = _bonus("a timer for three minutes", "set_timer(minutes=")
    assert b[b"3"] > 0 and b[b"5"] == 0
    b = _bonus("a timer for 5 thousand minutes", "set_timer(minutes=5")
    assert b[b"0"] > 0                             # 5 thousand is written 5000
    assert Grounding("charges of 1e-9 and 2E-9", VOCAB).numbers >= {b"1e-9", b"2e-9"}
