"""Grounding: the values a request spells, and the arguments it asks for (an optional argument
the request does not mention is held back).

On a small vocabulary and the python call syntax, the bonus is read token by token at the
states where that choice is made; what the agent then does with the real model is measured
on BFCL in docs/TOOL_CALLING.md and held by tests/test_builtin_agent.py.
"""
import numpy as np
from edge_runtime.calls.formats import python as python_format
from edge_runtime.calls.grammar import CallGrammar, TokenConstraint
import pytest

from edge_runtime.calls.grounding import (NAME_BONUS, RULES, Grounding, _mentioned, _words,
                                         rules_named, rules_of)
from edge_runtime.calls.schema import normalize_tool
from edge_runtime.calls.syntax import END, ESC
from edge_runtime.calls.vocab import Vocab
from edge_runtime.calls.formats.functiongemma import call_syntax as fg_syntax

TOOL = normalize_tool({
    "name": "set_timer", "description": "Start a countdown timer.",
    "parameters": {"type": "object", "required": ["minutes"], "properties": {
        "minutes": {"type": "integer", "description": "How many minutes the timer runs."},
        "label": {"type": "string", "description": "A short name for the timer."},
        "sound": {"type": "string", "enum": ["bell", "chime"],
                  "description": "What the timer plays at the end."}}}})
GROW = normalize_tool({
    "name": "grow", "description": "What a deposit grows to.",
    "parameters": {"type": "object", "required": ["amount", "rate", "years"], "properties": {
        "amount": {"type": "number", "description": "The deposit."},
        "rate": {"type": "number", "description": "The annual interest rate."},
        "years": {"type": "integer", "description": "How long it stays."},
        "fee": {"type": "number", "description": "The fee, as a percentage of the deposit."}}}})
BOOK = normalize_tool({
    "name": "book", "description": "Book a room.",
    "parameters": {"type": "object", "required": ["start_date"], "properties": {
        "start_date": {"type": "string", "description": "The first night."},
        "arrival": {"type": "string", "description": "Check-in, 24-hour HH:MM."},
        "last_day": {"type": "string", "description": "In the format of 'dd/mm/yyyy'."},
        "note": {"type": "string", "description": "For the desk."}}}})
LOCK = normalize_tool({
    "name": "lock_door", "description": "Lock a door.",
    "parameters": {"type": "object", "required": ["door"], "properties": {
        "door": {"type": "string", "description": "Which door."},
        "locked": {"type": "boolean", "description": "Whether it ends up locked."},
        "note": {"type": "string", "description": "Why, for the log."}}}})
WORDS = ["set_timer", "(", ")", "5", "50", ",", ", ", ", l", "label", " label", " sound", "=",
         '="', '")', '",', "tea", "timer"]


def _vocab():
    pieces = [bytes((b,)) for b in range(1, 256)]
    pieces += [w.encode() for w in WORDS if w.encode() not in pieces]
    return Vocab(pieces, [False] * len(pieces))


VOCAB = _vocab()
ID = {VOCAB.pieces[i]: i for i in range(VOCAB.n)}
CONSTRAINT = TokenConstraint(CallGrammar([TOOL, GROW, BOOK, LOCK], python_format.SYNTAX), VOCAB)


def _bonus(request, text, rules=RULES):
    """{piece: bonus} over the allowed tokens after the call text typed so far."""
    st = CONSTRAINT.g.feed(CONSTRAINT.start(), text.encode())
    allowed = CONSTRAINT.allowed(st)
    b = Grounding(request, VOCAB, tools=[TOOL, GROW, BOOK, LOCK], rules=rules).bonus(
        CONSTRAINT, st, allowed, text.encode())
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
    # the property's own name counts even when its words also name the topic
    profile = normalize_tool({
        "name": "create_profile", "description": "A player profile with a starting level.",
        "parameters": {"type": "object", "properties": {
            "starting_level": {"type": "integer", "description": "The level to start at."},
            "profile_motto": {"type": "string", "description": "Shown on the player's profile."}}}})
    assert _mentioned(_words("a profile for Sam, at level 3"), profile) == {"starting_level"}
    # ... but not a word of the tool's own name
    assert _mentioned(_words("a player profile for Sam"), profile) == set()


def test_an_unasked_optional_argument_is_held_back_wherever_a_key_is_chosen():
    """FunctionGemma's format writes keys in sorted order, so an optional key may be chosen
    before a required one: wherever a key is chosen, one the request does not mention is
    held back; a mentioned one and the required ones are left alone."""
    b = _bonus("set a timer for 5 minutes", "set_timer(")
    assert b[b"label"] < 0 and b[b"l"] < 0 and b[b"s"] < 0
    assert b[b"m"] == 0                            # the required key: untouched
    b = _bonus("set a timer for 5 minutes called tea", "set_timer(")
    assert b[b"label"] == b[b"l"] == b[b"m"] == 0 and b[b"s"] < 0
    b = _bonus("set a timer for 5 minutes called tea", "set_timer(minutes=5, ")
    assert b[b"label"] == b[b"l"] == 0 and b[b"s"] < 0
    assert not any(_bonus("set a timer for 5 minutes", "set_timer(",
                          rules=set(RULES) - {"args"}).values())


def test_a_boolean_is_never_held_back():
    """A verb may say a boolean's value without a word of the property's ("unlock" for
    locked=False), so an optional boolean is left to the model."""
    b = _bonus("unlock the back door", "lock_door(")
    assert b[b"n"] < 0                             # "note": unasked
    assert b[b"l"] == b[b"d"] == 0                 # "locked", a boolean; "door", required


def test_how_a_value_ends_is_left_to_the_model():
    """Between ending the call and adding an argument nothing is held back or made easy
    (either cost the taught model right calls: docs/TOOL_CALLING.md), and inside a string a
    closing token is never favoured over the bare one (that would cut the value short)."""
    for ask in ("set a timer for 5 minutes", "set a timer for 5 minutes called tea"):
        b = _bonus(ask, "set_timer(minutes=5")
        assert b[b","] == b[b", "] == b[b")"] > 0      # the number bonus: 5 ends here
    for ask in ("5 minutes called tea", "5 minutes called tea, with a bell"):
        b = _bonus(ask, 'set_timer(minutes=5, label="tea')
        assert b[b'",'] == b[b'"'] == b[b'")'] > 0    # the span bonus: "tea" ends here


def test_a_copied_string_is_closed_where_a_phrase_of_the_request_ends():
    """Closing a string gets the span bonus at the request's end, before punctuation or a
    connective word, not at every word boundary inside a phrase."""
    typed = 'set_timer(minutes=5, label="tea'
    for ask in ("5 minutes called tea", "5 minutes called tea, please", "5 minutes called tea "
                "and then another", "5 minutes called 'tea'"):
        assert _bonus(ask, typed)[b'"'] > 0, ask
    b = _bonus("5 minutes called tea timer for the pot", typed)
    assert b[b'"'] == 0 and b[b" "] > 0       # "tea" goes on: " timer" continues the span


def test_numbers_the_request_spells_are_grounded_too():
    b = _bonus("a timer for three minutes", "set_timer(minutes=")
    assert b[b"3"] > 0 and b[b"5"] == 0
    b = _bonus("a timer for 5 thousand minutes", "set_timer(minutes=5")
    assert b[b"0"] > 0                             # 5 thousand is written 5000
    spelled = {w for m in Grounding("charges of 1e-9 and 2E-9", VOCAB).mentions
               for w in m.spellings}
    assert spelled >= {b"1e-9", b"2e-9"}


def _offered(b):
    """The digits that get the bonus."""
    return {chr(c) for c in b"0123456789" if b[bytes((c,))] > 0}


def test_each_number_of_the_request_is_offered_until_the_call_has_written_it():
    ask = "put 800 in for 6 years at 3 percent"
    assert _offered(_bonus(ask, "grow(amount=")) == {"8", "6", "3"}
    assert _offered(_bonus(ask, "grow(amount=800, rate=0.03, years=")) == {"6"}
    assert _offered(_bonus(ask, "grow(amount=800, years=6, rate=0.03, fee=")) == set()
    # a number the request writes twice may be written twice
    ask = "put 800 in for 800 days at 3%"
    assert _offered(_bonus(ask, "grow(amount=800, years=")) == {"8", "3"}


def test_a_percentage_is_a_fraction_only_where_the_property_takes_one():
    ask = "put 800 in for 6 years at 3.5%, with a 2 percent fee"
    assert _offered(_bonus(ask, "grow(amount=800, rate=")) == {"0", "6"}   # 0.035, 0.02
    assert _bonus(ask, "grow(amount=800, rate=0.0")[b"3"] > 0
    assert _bonus(ask, "grow(amount=800, rate=0.0")[b"2"] > 0
    # "as a percentage": the number as written; an integer never takes a fraction
    assert _offered(_bonus(ask, "grow(amount=800, rate=0.035, years=6, fee=")) == {"2"}
    assert _offered(_bonus(ask, "grow(amount=800, rate=0.035, years=")) == {"6", "2"}


def test_a_duration_is_offered_in_the_unit_the_property_names():
    """"2 hours" to a property of minutes is 120; "90 seconds" is no whole number of minutes,
    so it is offered as written (the model decides); in its own unit a duration is as is."""
    assert _offered(_bonus("set a timer for 2 hours", "set_timer(minutes=")) == {"1"}
    assert _bonus("set a timer for 2 hours", "set_timer(minutes=12")[b"0"] > 0
    assert _bonus("set a timer for 2 hours", "set_timer(minutes=120")[b")"] > 0
    assert _bonus("set a timer for 2 hours", "set_timer(minutes=")[b"2"] < 0   # 2 minutes
    assert _offered(_bonus("set a timer for 5 minutes", "set_timer(minutes=")) == {"5"}
    assert _offered(_bonus("set a timer for 90 seconds", "set_timer(minutes=")) == {"9"}


def test_a_time_property_is_offered_the_requests_times_as_24_hour_hh_mm():
    """"3pm" to a property that takes HH:MM is 15:00; "quarter to 7 in the morning" 06:45;
    "at 7" says neither morning nor evening, so nothing is offered for it."""
    ask = "a room from 10th December 2022, arriving at quarter to 7 in the evening"
    assert _offered(_bonus(ask, 'book(start_date="2022-12-10", arrival="')) == {"1"}
    assert _bonus(ask, 'book(start_date="2022-12-10", arrival="18:4')[b"5"] > 0
    assert _bonus(ask, 'book(start_date="2022-12-10", arrival="18:45')[b'"'] > 0
    assert _offered(_bonus("a room on 10th December 2022, in at 3pm",
                           'book(start_date="2022-12-10", arrival="')) == {"1"}      # 15:00
    assert _offered(_bonus("a room on 10th December 2022, in at 7",
                           'book(start_date="2022-12-10", arrival="')) == {"1", "2", "7"}
    assert _bonus("a room on 10th December 2022, in at 7",       # spans only: no 19:00
                  'book(start_date="2022-12-10", arrival="1')[b"9"] == 0


def test_a_date_property_is_offered_the_requests_dates_in_its_format():
    ask = "a room from 10th December 2022 to Dec 12, 2022, note: March 3rd 2023 was lovely"
    assert _offered(_bonus(ask, 'book(start_date="')) == {"2"}        # ISO: 2022-12-10 ...
    assert _bonus(ask, 'book(start_date="2022-12-1')[b"0"] > 0
    assert _bonus(ask, 'book(start_date="2022-12-10')[b'"'] > 0       # ... and closed there
    assert _bonus(ask, 'book(start_date="10th')[b'"'] == 0           # the words: no bonus
    assert _offered(_bonus(ask, 'book(start_date="2022-12-10", last_day="')) == {"1", "0"}
    assert _bonus(ask, 'book(start_date="2022-12-10", last_day="12/1')[b"2"] > 0   # 12/12/2022
    # a property that is no date keeps the request's own words
    b = _bonus(ask, 'book(start_date="2022-12-10", note="')
    assert b[b"M"] > 0 and b[b"D"] > 0


def test_a_tool_name_gets_the_bonus_per_request_word_its_tool_shares():
    """The names rule, for a reply's first call only."""
    st = CONSTRAINT.start()
    allowed = CONSTRAINT.allowed(st)
    g = Grounding("grow my deposit: put 800 in for 6 years", VOCAB, tools=[TOOL, GROW, BOOK])
    b = dict(zip((VOCAB.pieces[i] for i in allowed.tolist()), g.bonus(CONSTRAINT, st, allowed)))
    shared = g.relevance[b"grow"]           # "grow", "deposit", "years"
    assert shared >= 2 and g.relevance[b"set_timer"] == g.relevance[b"book"] == 0
    assert b[b"g"] == shared * NAME_BONUS and b[b"s"] == b[b"b"] == 0
    g.call_index = 1        # a reply's second call: it led that one back to the first's tool
    assert g.bonus(CONSTRAINT, st, allowed) is None


def test_numbers_and_dates_in_functiongemma_syntax():
    """The argument being written is found the same way where strings open with <escape>, a
    control token."""
    pieces = [bytes((b,)) for b in range(1, 256)] + [b"<escape>", b"<end_function_call>"]
    vocab = Vocab(pieces, [False] * 255 + [True, True])
    fg = TokenConstraint(CallGrammar([GROW, BOOK], fg_syntax.SYNTAX), vocab, {ESC: 255, END: 256})

    def offered(request, text, opened=False):
        st = fg.g.feed(fg.start(), list(text) + [ESC] * opened)
        allowed = fg.allowed(st)
        b = Grounding(request, vocab, tools=[GROW, BOOK]).bonus(
            fg, st, allowed, text + b"<escape>" * opened)
        return {chr(vocab.pieces[i][0]) for i, v in zip(allowed.tolist(), b) if v > 0}
    assert offered("a room from 10th December 2022", b"call:book{start_date:", True) == {"2"}
    assert offered("put 800 in at 3% for 6 years", b"call:grow{amount:800,rate:") == {"0", "6"}


def test_each_rule_can_be_left_out_alone():
    """Leaving out one rule takes away what it does and nothing else (so each is measured on
    its own: tools/bench_dev.py --grounding-off)."""
    def without(rule):
        return set(RULES) - {rule}
    ask = "set a timer for 2 hours called tea"
    # numbers: the request's numbers; units: 2 hours offered to minutes as 120
    assert _offered(_bonus(ask, "set_timer(minutes=")) == {"1"}
    assert _offered(_bonus(ask, "set_timer(minutes=", without("units"))) == {"2"}
    assert _offered(_bonus(ask, "set_timer(minutes=", without("numbers"))) == set()
    # spans: a string continues the request's words
    assert _bonus(ask, 'set_timer(minutes=120, label="')[b"tea"] > 0
    assert _bonus(ask, 'set_timer(minutes=120, label="', without("spans"))[b"tea"] == 0
    assert _bonus(ask, 'set_timer(minutes=120, label="', without("args"))[b"tea"] > 0
    # args: the unasked optional argument is held back
    assert _bonus(ask, "set_timer(minutes=120, ")[b"s"] < 0
    assert _bonus(ask, "set_timer(minutes=120, ", without("args"))[b"s"] == 0
    # dates: the request's date in the property's format, else its words
    date = _bonus("book from 10 December 2022", 'book(start_date="', without("spans"))
    assert date[b"2"] > 0
    assert _bonus("book from 10 December 2022", 'book(start_date="',
                  without("dates") - {"spans"})[b"2"] == 0
    # words: the enum value the request mentions
    bell = "set a timer for 5 minutes with a bell"
    assert max(_bonus(bell, "set_timer(minutes=5, sound=").values()) > 0
    assert max(_bonus(bell, "set_timer(minutes=5, sound=", without("words")).values()) == 0
    # names: a tool's name by the request words it shares
    st = CONSTRAINT.start()
    allowed = CONSTRAINT.allowed(st)
    for rules, named in ((RULES, True), (without("names"), False)):
        g = Grounding("grow my deposit", VOCAB, tools=[TOOL, GROW, BOOK], rules=rules)
        assert (g.bonus(CONSTRAINT, st, allowed) is not None) == named
    assert rules_of(True) == set(RULES) and rules_of(False) == set() == rules_of(None)
    assert rules_named("all") == set(RULES) and rules_named("none") == set()
    assert rules_named("spans,args") == {"spans", "args"}
    with pytest.raises(ValueError, match="unknown grounding rules"):
        rules_of(["spans", "colour"])
