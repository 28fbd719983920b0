"""FunctionGemma format: golden renders from published sources, parser round trips, the call
grammar and its token-level constraint (on a small fake vocabulary)."""
import math
import random
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_runtime.calls.grammar import CallGrammar as _Grammar
from edge_runtime.calls.grammar import TokenConstraint as _Constraint
from edge_runtime.calls.schema import (DEFAULT_MAX_LENGTH, MAX_DIGITS, normalize_tool, number_digits,
                                       schema_from_callable, validate)
from edge_runtime.calls.syntax import END, ESC
from edge_runtime.calls.vocab import Vocab
from edge_runtime.calls.formats.functiongemma import (SYNTAX, render_value, parse, render, render_call,
                                        render_declaration)
from edge_runtime.calls.formats.functiongemma import tokens as T
from fg_fakes import FakeTokenizer


def CallGrammar(tools):
    return _Grammar(tools, SYNTAX)


def TokenConstraint(grammar, vocab):
    return _Constraint(grammar, vocab, {ESC: T.ESCAPE_ID, END: T.END_CALL_ID})


def feed_text(g, st, text):
    """State after FunctionGemma text (control tokens spelled out), or None."""
    syms = []
    for part in re.split("(<escape>|<end_function_call>)", text):
        syms += [ESC] if part == T.ESCAPE else [END] if part == T.END_CALL else list(part.encode())
    return g.feed(st, syms)


def fn(name, description, properties, required=None):
    params = {"type": "object", "properties": properties}
    if required:
        params["required"] = required
    return {"type": "function",
            "function": {"name": name, "description": description, "parameters": params}}


def call(name, **arguments):
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


# ---- golden renders ------------------------------------------------------------------------

def test_llama_server_parallel_calls_and_results():
    # Source: leehack/llamadart test/fixtures/multi_tool_result_render_upstream.json - the
    # prompt llama-server (llama.cpp 7fe450e19, --jinja) returned from POST /apply-template
    # with functiongemma-270m-it's own template. That request passed the call arguments as
    # JSON *strings*, which the template copies verbatim with its indentation
    # (`{                    {"city":"Paris"}}`); here they are mappings, which the template
    # writes as `{city:<escape>Paris<escape>}` (same template rendered by llamadart's dinja
    # test "Renders FunctionGemma w/ macros and recursion", and Google's formatting page).
    tools = [fn("get_weather", "Return the weather for a city.", {"city": {"type": "string"}},
                ["city"]),
             fn("get_time", "Return the local time for a city.", {"city": {"type": "string"}},
                ["city"])]
    messages = [
        {"role": "user", "content": "What are the weather and the local time in Paris?"},
        {"role": "assistant", "content": None,
         "tool_calls": [call("get_weather", city="Paris"), call("get_time", city="Paris")]},
        {"role": "tool", "name": "get_weather", "content": "RESULT_ONE"},
        {"role": "tool", "name": "get_time", "content": "RESULT_TWO"},
    ]
    expected = (
        "<start_of_turn>developer\nYou are a model that can do function calling with the "
        "following functions<start_function_declaration>declaration:get_weather{description:"
        "<escape>Return the weather for a city.<escape>,parameters:{properties:{city:{"
        "description:<escape><escape>,type:<escape>STRING<escape>}},required:[<escape>city"
        "<escape>],type:<escape>OBJECT<escape>}}<end_function_declaration>"
        "<start_function_declaration>declaration:get_time{description:<escape>Return the local "
        "time for a city.<escape>,parameters:{properties:{city:{description:<escape><escape>,"
        "type:<escape>STRING<escape>}},required:[<escape>city<escape>],type:<escape>OBJECT"
        "<escape>}}<end_function_declaration><end_of_turn>\n<start_of_turn>user\nWhat are the "
        "weather and the local time in Paris?<end_of_turn>\n<start_of_turn>model\n"
        "<start_function_call>call:get_weather{city:<escape>Paris<escape>}<end_function_call>"
        "<start_function_call>call:get_time{city:<escape>Paris<escape>}<end_function_call>"
        "<start_function_response>response:get_weather{value:<escape>RESULT_ONE<escape>}"
        "<end_function_response><start_function_response>response:get_time{value:<escape>"
        "RESULT_TWO<escape>}<end_function_response>")
    assert render(messages, tools) == expected


def test_llama_server_answer_after_result_and_next_user_turn():
    # Source: leehack/llamadart test/unit/core/template/tool_call_fixture_render_test.dart,
    # "FunctionGemma keeps string tool-call arguments verbatim" (llama-server 7fe450e19
    # /apply-template output; the call arguments substituted as explained above).
    tools = [fn("get_weather", "Get weather", {"city": {"type": "string"}})]
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "tool_calls": [call("get_weather", city="Paris")]},
        {"role": "tool", "name": "get_weather", "content": "sunny"},
        {"role": "assistant", "content": "It is sunny."},
        {"role": "user", "content": "And Rome?"},
    ]
    expected = (
        "<start_of_turn>developer\nYou are a model that can do function calling with the "
        "following functions<start_function_declaration>declaration:get_weather{description:"
        "<escape>Get weather<escape>,parameters:{properties:{city:{description:<escape>"
        "<escape>,type:<escape>STRING<escape>}},type:<escape>OBJECT<escape>}}"
        "<end_function_declaration><end_of_turn>\n<start_of_turn>user\nWeather in Paris?"
        "<end_of_turn>\n<start_of_turn>model\n<start_function_call>call:get_weather{city:"
        "<escape>Paris<escape>}<end_function_call><start_function_response>response:"
        "get_weather{value:<escape>sunny<escape>}<end_function_response>It is sunny."
        "<end_of_turn>\n<start_of_turn>user\nAnd Rome?<end_of_turn>\n<start_of_turn>model\n")
    assert render(messages, tools) == expected


GOOGLE_WEATHER = fn(
    "get_current_weather", "Gets the current weather in a given location.",
    {"location": {"type": "string",
                  "description": 'The city and state, e.g. "San Francisco, CA" or "Tokyo, JP"'},
     "unit": {"type": "string", "enum": ["celsius", "fahrenheit"],
              "description": "The unit to return the temperature in."}},
    ["location"])


def test_google_formatting_page_weather_flow():
    # Source: ai.google.dev/gemma/docs/functiongemma/formatting-and-best-practices, "Example:
    # Weather Tool Flow" turns 1-5 (developer turn, user turn, call, response, answer).
    messages = [
        {"role": "developer",
         "content": "You are a model that can do function calling with the following functions"},
        {"role": "user", "content": "Hey, what's the weather in Tokyo right now?"},
        {"role": "assistant", "tool_calls": [call("get_current_weather",
                                                  location="Tokyo, Japan")]},
        {"role": "tool", "name": "get_current_weather",
         "content": {"temperature": 15, "weather": "sunny"}},
    ]
    turn1 = (
        "<start_of_turn>developer\nYou are a model that can do function calling with the "
        "following functions<start_function_declaration>declaration:get_current_weather{"
        "description:<escape>Gets the current weather in a given location.<escape>,parameters:"
        "{properties:{location:{description:<escape>The city and state, e.g. \"San Francisco, "
        "CA\" or \"Tokyo, JP\"<escape>,type:<escape>STRING<escape>},unit:{description:<escape>"
        "The unit to return the temperature in.<escape>,enum:[<escape>celsius<escape>,<escape>"
        "fahrenheit<escape>],type:<escape>STRING<escape>}},required:[<escape>location<escape>],"
        "type:<escape>OBJECT<escape>}}<end_function_declaration><end_of_turn>\n")
    turn2 = "<start_of_turn>user\nHey, what's the weather in Tokyo right now?<end_of_turn>\n"
    turn3 = ("<start_function_call>call:get_current_weather{location:<escape>Tokyo, Japan"
             "<escape>}<end_function_call>")
    turn4 = ("<start_function_response>response:get_current_weather{temperature:15,weather:"
             "<escape>sunny<escape>}<end_function_response>")
    assert render(messages, [GOOGLE_WEATHER]) == \
        turn1 + turn2 + "<start_of_turn>model\n" + turn3 + turn4
    # Turn 5: the answer continues the same model turn and closes it.
    answer = {"role": "assistant", "content": "The current weather in Tokyo is sunny with a "
                                              "temperature of 15 degrees Celsius."}
    assert render(messages + [answer], [GOOGLE_WEATHER], add_generation_prompt=False) == \
        turn1 + turn2 + "<start_of_turn>model\n" + turn3 + turn4 + answer["content"] + \
        "<end_of_turn>\n"


@pytest.mark.parametrize("messages,expected", [
    # Source: ollama/ollama model/renderers/functiongemma_test.go (cases without tools, where
    # Ollama and the official template agree; Ollama's strings start with <bos>, which here
    # the tokenizer adds instead).
    ([{"role": "user", "content": "Hello!"}],
     "<start_of_turn>user\nHello!<end_of_turn>\n<start_of_turn>model\n"),          # basic
    ([{"role": "system", "content": "You are helpful"}, {"role": "user", "content": "Hello!"}],
     "<start_of_turn>developer\nYou are helpful<end_of_turn>\n<start_of_turn>user\nHello!"
     "<end_of_turn>\n<start_of_turn>model\n"),                                      # system
    ([{"role": "developer", "content": "You are a coding assistant"},
      {"role": "user", "content": "Hello!"}],
     "<start_of_turn>developer\nYou are a coding assistant<end_of_turn>\n<start_of_turn>user\n"
     "Hello!<end_of_turn>\n<start_of_turn>model\n"),                                # developer
    ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
      {"role": "user", "content": "More"}],
     "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
     "<start_of_turn>user\nMore<end_of_turn>\n<start_of_turn>model\n"),            # multi_turn
    ([], "<start_of_turn>model\n"),                                                 # empty
])
def test_ollama_renders_without_tools(messages, expected):
    assert render(messages) == expected


def test_ollama_declarations_and_where_ollama_departs_from_the_official_template():
    # Source: ollama functiongemma_test.go "tool_with_required_params" and "tool_call".
    tool = fn("get_weather", "Gets the weather for a given city",
              {"city": {"type": "string", "description": "City Name"},
               "country": {"type": "string", "description": "Country Name"}}, ["city"])
    assert render_declaration(tool) == (
        "declaration:get_weather{description:<escape>Gets the weather for a given city<escape>,"
        "parameters:{properties:{city:{description:<escape>City Name<escape>,type:<escape>STRING"
        "<escape>},country:{description:<escape>Country Name<escape>,type:<escape>STRING"
        "<escape>}},required:[<escape>city<escape>],type:<escape>OBJECT<escape>}}")
    out = render([{"role": "user", "content": "Weather?"},
                  {"role": "assistant", "tool_calls": [call("get_weather", city="Paris")]},
                  {"role": "tool", "name": "get_weather", "content": "Sunny"}], [tool])
    # Ollama opens with "You can do function calling with the following functions:" and
    # writes a string result as `{<escape>Sunny<escape>}`; the official template (llama-server
    # renders above) uses the sentence below and `{value:<escape>Sunny<escape>}`. We follow
    # the official template.
    assert out.startswith("<start_of_turn>developer\nYou are a model that can do function "
                          "calling with the following functions<start_function_declaration>")
    assert out.endswith("<start_function_response>response:get_weather{value:<escape>Sunny"
                        "<escape>}<end_function_response>")
    # LiteRT-LM's built-in FunctionGemma template (runtime/util/model_type_utils.cc) puts
    # "\n\n" between a system message and the declarations; the official template does not.
    sys_first = render([{"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "x"}], [tool])
    assert "Be brief.<start_function_declaration>" in sys_first


def test_declaration_nested_array_enum_and_dictsort_order():
    tool = fn("plan", "", {
        "Zeta": {"type": "integer"},
        "alpha": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
        "opts": {"type": "object", "properties": {"on": {"type": "boolean"}}, "required": ["on"]},
    })
    # Jinja's dictsort is case-insensitive: alpha < opts < Zeta.
    assert render_declaration(tool) == (
        "declaration:plan{description:<escape><escape>,parameters:{properties:{alpha:{"
        "description:<escape><escape>,items:{enum:[<escape>a<escape>,<escape>b<escape>],type:"
        "<escape>STRING<escape>},type:<escape>ARRAY<escape>},opts:{description:<escape><escape>,"
        "properties:{on:{description:<escape><escape>,type:<escape>BOOLEAN<escape>}},required:["
        "<escape>on<escape>],type:<escape>OBJECT<escape>},Zeta:{description:<escape><escape>,"
        "type:<escape>INTEGER<escape>}},type:<escape>OBJECT<escape>}}")


def test_values_and_bad_tools():
    assert render_value({"b": [1, 2.5, True, None], "a": "x"}) == \
        "{a:<escape>x<escape>,b:[1,2.5,true,null]}"
    with pytest.raises(ValueError, match="name"):
        render_declaration(fn("bad name", "", {}))
    # a property may be called like the template's own words: it is written escaped
    assert "<escape>type<escape>:{description:" in \
        render_declaration(fn("f", "", {"type": {"type": "string"}}))
    # a free-form object is declared as an object without properties
    assert "d:{description:<escape><escape>,properties:{},type:<escape>OBJECT<escape>}" in \
        render_declaration(fn("f", "", {"d": {"type": "object"}}))
    with pytest.raises(ValueError, match="name"):
        render([{"role": "tool", "content": "x"}])


def test_schema_from_callable():
    from typing import List, Literal, Optional

    def set_alarm(hour: int, days: List[str], mode: Literal["loud", "soft"] = "soft",
                  note: Optional[str] = None) -> str:
        """Set an alarm on the device.

        Args:
            hour: Hour of the day,
                0 to 23.
            days (list): Weekdays.
        Returns:
            A confirmation.
        """
    f = schema_from_callable(set_alarm)["function"]
    assert f["description"] == "Set an alarm on the device."
    assert f["parameters"] == {"type": "object", "required": ["hour", "days"], "properties": {
        "hour": {"type": "integer", "description": "Hour of the day, 0 to 23."},
        "days": {"type": "array", "items": {"type": "string"}, "description": "Weekdays."},
        "mode": {"type": "string", "enum": ["loud", "soft"]},
        "note": {"type": "string"}}}

    def untyped(x):
        pass
    with pytest.raises(ValueError, match="type hint"):
        schema_from_callable(untyped)


# ---- parser --------------------------------------------------------------------------------

def test_parse_calls_text_and_errors():
    out = parse("Sure.<start_function_call>call:f{a:<escape>x, y: {z}<escape>,n:-2.5e3,"
                "ok:false,l:[]}<end_function_call><start_function_call>call:g{k:oops}"
                "<end_function_call><end_of_turn>")
    assert out.calls == [{"name": "f", "arguments": {"a": "x, y: {z}", "n": -2500.0,
                                                     "ok": False, "l": []}}]
    assert out.text == "Sure."
    assert len(out.errors) == 1 and "expected a value" in out.errors[0].message
    assert isinstance(parse(["not", "ids"]).errors[0].message, str)   # no tokenizer: no raise


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(list("{}[],:<>ab1-.e ") + list(T.FUNCTION_TOKENS)
                                + ["call:", "true"]), max_size=60))
def test_parse_never_raises(parts):
    out = parse("".join(parts))
    assert isinstance(out.calls, list) and isinstance(out.text, str)


# Random schemas with values that satisfy them, including strings holding { } , : and quotes.
KEYS = st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True).filter(
    lambda k: k not in ("description", "type", "properties", "required", "nullable"))
TEXT = st.text(alphabet=st.sampled_from(list("ab {},:\"'[]<>é日\n\\")), max_size=12).filter(
    lambda s: "<escape>" not in s)


def schemas(depth=2):
    leaf = st.sampled_from([{"type": "string"}, {"type": "integer"}, {"type": "number"},
                            {"type": "boolean"}, {"type": "string", "enum": ["x{,}", "y:z", "q\""]}])
    if depth == 0:
        return leaf
    sub = schemas(depth - 1)
    return st.one_of(
        leaf,
        sub.map(lambda s: {"type": "array", "items": s}),
        st.dictionaries(KEYS, sub, max_size=3).map(
            lambda p: {"type": "object", "properties": p, "required": sorted(p)[:1]}))


def values(schema):
    t = schema["type"]
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if t == "string":
        return TEXT
    if t == "integer":
        return st.integers(-10**12, 10**12)
    if t == "number":   # the subset's numbers: at most MAX_DIGITS digits
        return st.floats(-1e9, 1e9).filter(lambda v: number_digits(v) <= MAX_DIGITS)
    if t == "boolean":
        return st.booleans()
    if t == "array":
        return st.lists(values(schema["items"]), max_size=3)
    return st.fixed_dictionaries({k: values(v) for k, v in schema["properties"].items()})


@st.composite
def tool_and_args(draw):
    props = draw(st.dictionaries(KEYS, schemas(), min_size=0, max_size=4))
    params = {"type": "object", "properties": props, "required": sorted(props)}
    args = draw(st.fixed_dictionaries({k: values(v) for k, v in props.items()}))
    return {"name": "tool_x", "description": "", "parameters": params}, args


def _same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b and type(a) is type(b)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tool_and_args())
def test_render_parse_round_trip_and_grammar_accepts(ta):
    tool, args = ta
    text = render_call(tool["name"], args)
    out = parse(text)
    assert not out.errors and len(out.calls) == 1
    assert out.calls[0]["name"] == tool["name"] and _same(out.calls[0]["arguments"], args)
    assert validate(args, normalize_tool(tool)["parameters"]) == []
    g = CallGrammar([tool])     # every valid value can be produced under constraint
    end = feed_text(g, g.start(), text[len(T.START_CALL):])
    assert end is not None and g.done(end), text


# ---- grammar -------------------------------------------------------------------------------

TOOLS = [fn("get_weather", "", {"city": {"type": "string"}, "days": {"type": "integer"},
                                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                                "tags": {"type": "array", "items": {"type": "number"}},
                                "opt": {"type": "object", "properties": {"x": {"type": "boolean"}},
                                        "required": ["x"]}}, ["city"]),
         fn("get", "", {}),
         fn("set_timer", "", {"minutes": {"type": "integer"}, "label": {"type": "string"}},
            ["minutes"])]


@pytest.mark.parametrize("body,ok", [
    ("call:get_weather{city:<escape>Pa{r}is, :\"<escape>}", True),
    ("call:get_weather{days:3,city:<escape>x<escape>,opt:{x:true},tags:[1,-2500.5]}", True),
    ("call:get_weather{city:<escape>x<escape>,tags:[-2.5e3]}", False),        # no exponents
    ("call:get{}", True),
    ("call:get_weather{}", False),                                        # required missing
    ("call:get_weather{city:<escape>a<escape>,city:<escape>b<escape>}", False),   # duplicate
    ("call:rm_rf{}", False),                                              # undeclared
    ("call:get_weather{city:<escape>a<escape>,unit:<escape>kelvin<escape>}", False),  # enum
    ("call:get_weather{city:<escape>a<escape>,days:1.5}", False),         # not an integer
    ("call:get_weather{city:<escape>a<escape>,days:<escape>1<escape>}", False),
    ("call:get_weather{city:<escape>a<escape>,zz:1}", False),             # unknown key
    ("call:get_weather{city:<escape>a<escape>,opt:{}}", False),           # nested required
    ("call:get_weather{city:7}", False),
    ("call:get_weather{city:<escape>a<escape>,}", False),                 # trailing comma
])
def test_grammar_accepts_exactly_valid_calls(body, ok):
    g = CallGrammar(TOOLS)
    end = feed_text(g, g.start(), body + T.END_CALL)
    assert (end is not None and g.done(end)) == ok


def test_grammar_blocks_plain_text_escape_and_caps():
    g = CallGrammar(TOOLS)
    assert feed_text(g, g.start(), "call:get_weather{city:<escape>a<esc") is not None
    assert feed_text(g, g.start(), "call:get_weather{city:<escape>a<escape") is not None
    s = g.start()
    for c in b"call:get_weather{city:":
        s = g.step(s, c)
    s = g.step(s, 256)
    for c in b"<escape":
        s = g.step(s, c)
    assert g.step(s, ord(">")) is None          # "<escape>" typed as plain text
    assert feed_text(g, g.start(), "call:get_weather{city:<escape>" + "a" * (DEFAULT_MAX_LENGTH + 1)) is None


@pytest.fixture(scope="module")
def constraint():
    return TokenConstraint(CallGrammar(TOOLS), Vocab.from_tokenizer(FakeTokenizer()))


def _brute_force(c, state):
    ok = []
    for i in range(c.v.n):
        try:
            c.advance(state, i)
            ok.append(i)
        except ValueError:
            pass
    return ok


def test_allowed_ids_are_the_tokens_the_grammar_accepts_minus_dead_ends(constraint):
    rng = random.Random(0)
    for _ in range(30):
        state, steps = constraint.start(), 0
        while not constraint.g.done(state):
            allowed = constraint.allowed(state)
            accepted = _brute_force(constraint, state)
            assert set(allowed.tolist()) <= set(accepted)
            # the only tokens held back are dead ends: a lone UTF-8 lead byte when the
            # vocabulary has no tokens to finish the character
            for t in set(accepted) - set(allowed.tolist()):
                after = constraint.advance(state, t)
                assert not constraint.g.done(after) and len(constraint.allowed(after)) == 0
            state = constraint.advance(state, int(rng.choice(allowed)))
            steps += 1
            assert steps < 2000


def test_random_constrained_walks_always_yield_schema_valid_declared_calls(constraint):
    tok = FakeTokenizer()
    schemas = {t["function"]["name"]: normalize_tool(t)["parameters"] for t in TOOLS}
    rng = np.random.default_rng(1)
    for _ in range(200):
        state, ids = constraint.start(), []
        while not constraint.g.done(state):
            t = int(rng.choice(constraint.allowed(state)))
            ids.append(t)
            state = constraint.advance(state, t)
        out = parse([T.START_CALL_ID] + ids, tok)
        assert not out.errors and len(out.calls) == 1
        c = out.calls[0]
        assert c["name"] in schemas and validate(c["arguments"], schemas[c["name"]]) == []


@pytest.mark.parametrize("syntax", ["functiongemma", "python"])
def test_vectorised_string_tables_match_the_byte_automaton(syntax):
    """Vocab.content_ids runs all tokens through the table form of a syntax's string automaton
    at once; check it against stepping each piece byte by byte through the automaton's own
    rule (Syntax._content_step)."""
    from edge_runtime.calls.formats.python import SYNTAX as PY

    sx = SYNTAX if syntax == "functiongemma" else PY
    F = max(1, len(sx.forbidden))
    rng = np.random.default_rng(0)
    pieces = [b"", b"a", b"<", b"<esc", b"<escape>", b"x<escape", "é".encode(), b"\xc3", b"\xa9",
              b"\xe2\x82", "€".encode(), b"\x00", b"\xff", b"ok ok", b'a"', b"\\n", b"\\", b"\\q"]
    pieces += [bytes(rng.integers(0, 256, size=rng.integers(1, 6)).tolist()) for _ in range(400)]
    pieces += [bytes((b,)) for b in range(0x80, 0xC0)]          # byte fallback present
    v = Vocab(pieces, [False] * len(pieces))
    for pend in range(4):
        for esc in range(2 if sx.escapes else 1):
            for k in range(F):
                want = []
                for i, p in enumerate(pieces):
                    if not p:
                        continue
                    s = (pend, esc, k)
                    for c in p:
                        s = sx._content_step(*s, c)
                        if s is None:
                            break
                    if s is not None and ((s[0] == 0 and s[1] == 0) or v.byte_fallback):
                        want.append(i)
                got = v.content_ids(sx.string_automaton, (pend * 2 + esc) * F + k, 10 ** 6)
                assert got.tolist() == want, (pend, esc, k)
