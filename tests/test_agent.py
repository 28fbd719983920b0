"""The agent loop on a scripted fake model (no weights), and on the real default model
(marked `model`: they run once edge_runtime.Model exists)."""
import threading

import pytest

from edge_runtime.agent import Agent
from edge_runtime.functiongemma import parse, validate
from edge_runtime.functiongemma import tokens as T
from fg_fakes import ScriptedModel


class Recorder:
    """A toolset that records every execution."""

    def __init__(self):
        self.log = []
        self.release = threading.Event()   # `slow` runs until the test sets it

    def tools(self):
        log, release = self.log, self.release

        def get_weather(city: str, days: int = 1) -> dict:
            """Weather for a city.

            Args:
                city: The city.
                days: How many days.
            """
            log.append(("get_weather", city, days))
            return {"city": city, "sky": "clear"}

        def set_timer(minutes: int, label: str = "timer") -> str:
            """Start a timer."""
            log.append(("set_timer", minutes, label))
            return "started"

        def broken(x: int) -> int:
            """Always fails."""
            log.append(("broken", x))
            raise RuntimeError("sensor offline")

        def slow(x: int) -> int:
            """Takes too long."""
            log.append(("slow", x))
            release.wait(600)
            log.append(("slow done", x))
            return x

        return [get_weather, set_timer, broken, slow]


def _fed_text(model):
    return T.decode(model.tokenizer, model.history)


def test_call_executed_and_its_result_reaches_the_next_model_turn():
    rec = Recorder()
    model = ScriptedModel([
        "<start_function_call>call:get_weather{city:<escape>Paris<escape>,days:12}"
        "<end_function_call><start_function_response>",
        "The weather is ok<end_of_turn>"])
    events = []
    r = Agent(model, rec.tools()).run("weather in Paris?", on_event=events.append)
    assert rec.log == [("get_weather", "Paris", 12)]
    assert r.calls == [{"name": "get_weather", "arguments": {"city": "Paris", "days": 12},
                        "result": {"city": "Paris", "sky": "clear"}}]
    assert r.text == "The weather is ok"
    fed = _fed_text(model)
    assert ("<end_function_call><start_function_response>response:get_weather{city:<escape>"
            "Paris<escape>,sky:<escape>clear<escape>}<end_function_response>") in fed
    # the answer was generated after the result was in the KV state
    assert fed.index("<end_function_response>") < fed.rindex("The weather")
    assert [e["type"] for e in events if e["type"] != "token"] == ["call", "result", "answer"]


def test_constraint_turns_an_undeclared_call_into_a_declared_valid_one():
    rec = Recorder()
    model = ScriptedModel(["<start_function_call>call:rm_rf{path:<escape>/<escape>}"
                           "<end_function_call>"])
    r = Agent(model, rec.tools()).run("delete everything", max_steps=1)
    assert len(r.calls) == 1
    c = r.calls[0]
    agent = Agent(model, rec.tools())
    assert c["name"] in agent.schemas and validate(c["arguments"], agent.schemas[c["name"]]) == []
    assert rec.log and rec.log[0][0] == c["name"]
    # scored steps inside the call never asked for the full vocabulary
    sparse = [rows for ids, rows in model.calls if rows is not None]
    assert sparse and all(len(rows) < model.tokenizer.n_vocab for rows in sparse)


def test_unconstrained_invalid_calls_are_never_executed():
    rec = Recorder()
    agent = Agent(ScriptedModel([]), rec.tools())
    text = ("<start_function_call>call:rm_rf{path:<escape>/<escape>}<end_function_call>"
            "<start_function_call>call:get_weather{town:<escape>x<escape>}<end_function_call>"
            "<start_function_call>call:set_timer{minutes:<escape>ten<escape>}"
            "<end_function_call>")
    records = [agent.dispatch(c) for c in parse(text).calls]
    assert rec.log == []
    assert [r["result"]["error"].split(":")[0] for r in records] == \
        ["unknown tool 'rm_rf'", "invalid arguments", "invalid arguments"]
    # the same through the loop with the constraint off: the model's call is parsed,
    # rejected and answered with an error, and nothing runs
    model = ScriptedModel(["<start_function_call>call:rm_rf{path:<escape>/<escape>}"
                           "<end_function_call>", "ok<end_of_turn>"])
    r = Agent(model, rec.tools(), constrained=False).run("x")
    assert rec.log == [] and r.calls[0]["result"] == {"error": "unknown tool 'rm_rf'"}
    assert "response:rm_rf{error:<escape>unknown tool 'rm_rf'<escape>}" in _fed_text(model)


def test_tool_errors_and_timeouts_become_results():
    rec = Recorder()
    model = ScriptedModel([
        "<start_function_call>call:broken{x:1}<end_function_call>"
        "<start_function_call>call:slow{x:2}<end_function_call><start_function_response>",
        "ok<end_of_turn>"])
    r = Agent(model, rec.tools(), timeout=0.2).run("x")
    assert ("slow done", 2) not in rec.log   # the run went on without waiting for it
    rec.release.set()
    assert [c["result"] for c in r.calls] == [{"error": "RuntimeError: sensor offline"},
                                              {"error": "timed out after 0.2 s"}]
    assert "response:slow{error:<escape>timed out after 0.2 s<escape>}" in _fed_text(model)


def test_schema_only_tools_are_returned_not_run_and_max_steps_bounds_the_loop():
    schema = {"type": "function", "function": {"name": "shutdown", "description": "Power off",
              "parameters": {"type": "object", "properties": {"delay": {"type": "integer"}}}}}
    model = ScriptedModel(["<start_function_call>call:shutdown{delay:3}<end_function_call>"])
    r = Agent(model, [schema]).run("power off")
    assert r.calls == [{"name": "shutdown", "arguments": {"delay": 3}, "result": None}]
    rec = Recorder()
    again = "<start_function_call>call:set_timer{minutes:1}<end_function_call>"
    r = Agent(ScriptedModel([again] * 5), rec.tools()).run("x", max_steps=2)
    assert len(rec.log) == 2 and len(r.calls) == 2


def test_bad_agent_input():
    with pytest.raises(ValueError):
        Agent(ScriptedModel([]), [])
    with pytest.raises(ValueError):
        Agent(ScriptedModel([]), [lambda x: x])       # no type hints
    with pytest.raises(ValueError):
        Agent(ScriptedModel([]), [{"type": "function", "function": {"name": "a b"}}])


# ---- the real default model ------------------------------------------------------------------

TOOLSETS = {
    "home": [
        {"type": "function", "function": {"name": "toggle_light", "description": "Switch a light",
         "parameters": {"type": "object", "properties": {
             "room": {"type": "string", "description": "Room name"},
             "on": {"type": "boolean"}}, "required": ["room", "on"]}}},
        {"type": "function", "function": {"name": "set_thermostat", "description": "Set heating",
         "parameters": {"type": "object", "properties": {
             "celsius": {"type": "number"},
             "mode": {"type": "string", "enum": ["heat", "cool", "off"]}},
             "required": ["celsius"]}}}],
    "calendar": [
        {"type": "function", "function": {"name": "create_event", "description": "Add an event",
         "parameters": {"type": "object", "properties": {
             "title": {"type": "string"}, "day": {"type": "integer"},
             "attendees": {"type": "array", "items": {"type": "string"}}},
             "required": ["title", "day"]}}},
        {"type": "function", "function": {"name": "list_events", "description": "List events",
         "parameters": {"type": "object", "properties": {}}}}],
    "travel": [
        {"type": "function", "function": {"name": "get_weather", "description": "Weather",
         "parameters": {"type": "object", "properties": {
             "city": {"type": "string"},
             "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
             "required": ["city"]}}},
        {"type": "function", "function": {"name": "book_taxi", "description": "Book a taxi",
         "parameters": {"type": "object", "properties": {
             "pickup": {"type": "string"}, "passengers": {"type": "integer"},
             "options": {"type": "object", "properties": {"child_seat": {"type": "boolean"}},
                         "required": ["child_seat"]}},
             "required": ["pickup"]}}}],
}
REQUESTS = {
    "home": ["turn on the kitchen lights", "switch off the bedroom light",
             "make it 21 degrees", "cool the house to 19", "lights off in the garage",
             "set heating off", "turn the hall light on"],
    "calendar": ["add dentist on day 12", "what is on my calendar?",
                 "schedule lunch with Ana and Bo on day 3", "create an event called review",
                 "list my events", "put gym on day 30 with Sam", "new meeting on day 1"],
    "travel": ["weather in Paris", "is it cold in Oslo in fahrenheit?",
               "book a taxi from the station for 2 people", "taxi to the airport with a child seat",
               "what's the weather in Tokyo?", "get me a cab from home",
               "weather for Berlin in celsius"],
}


@pytest.fixture(scope="module")
def model(default_model):
    import edge_runtime as er
    return er.Model.load(default_model)


@pytest.mark.model
def test_constrained_calls_are_schema_valid_on_the_default_model(model):
    n = 0
    for name, tools in TOOLSETS.items():
        schemas = {t["function"]["name"]: t["function"]["parameters"] for t in tools}
        agent = Agent(model, tools)
        for request in REQUESTS[name]:
            r = agent.run(request, max_steps=1)   # schema-only tools: the call is returned
            assert len(r.calls) >= 1, request
            for c in r.calls:
                assert c["name"] in schemas, (request, c)
                assert validate(c["arguments"], schemas[c["name"]]) == [], (request, c)
            n += 1
    assert n >= 20


@pytest.mark.model
def test_agent_end_to_end_on_the_default_model(model):
    rec = Recorder()
    events = []
    r = Agent(model, rec.tools()[:2]).run("What's the weather in Paris?", max_steps=1,
                                           on_event=events.append)
    assert rec.log, "no tool was executed"
    c = r.calls[0]
    assert c["name"] in ("get_weather", "set_timer") and c["result"] is not None
    kinds = [e["type"] for e in events]
    assert kinds.index("result") < kinds.index("answer")
