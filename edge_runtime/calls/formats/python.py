"""The `python` call format: tools as Python function definitions, calls as Python keyword
calls `get_weather(city="Paris")` - what a model trained on text and code already knows (and
BFCL's own prompting format). Chosen for Gemma 3 models that never saw FunctionGemma's tokens.

A conversation is a plain-text log; the model continues it:

    <instructions and demonstrations, then this agent's functions as `def` stubs>
    Request: turn on the kitchen lights
    Call: toggle_light(room="kitchen", on=True)
    Result: {"room": "kitchen", "state": "on"}
    Answer: The kitchen lights are on.

The demonstrations use their own made-up tools (never benchmark items). Everything up to and
including the functions is the same for every request, so its KV state is cached.
"""
from __future__ import annotations

import json

from ..syntax import Syntax, format_call, format_value, parse_call
from .segments import call_arguments, message_text, tool_result

SYNTAX = Syntax(name="python", call_open=b"", args_open=b"(", args_close=b")", arg_kv=b"=",
                sep=b", ", dict_kv=b": ", key_quoted=True, true=b"True", false=b"False",
                null=b"None", str_open=34, str_close=34, escapes=True, forbidden=b"")

REQUEST, CALL, RESULT, ANSWER = "Request:", "Call:", "Result:", "Answer:"

INSTRUCTIONS = (
    "Below is the log of an assistant that acts through Python functions. For each request it "
    "writes the call of the listed function that does what was asked, with argument values "
    "taken from the request (numbers as numbers, names and places as written), leaving out "
    "optional arguments the request does not mention. After the result it answers in one "
    "short sentence.")

_TYPES = {"string": "str", "integer": "int", "number": "float", "boolean": "bool",
          "array": "list", "object": "dict", "null": "None"}

# Demonstrations: made-up tools, each teaching one habit (copy spans, numbers, pick the
# right function among several, booleans and enums, omit unmentioned optionals, answer
# from the result).
_DEMOS = [
    ([{"name": "set_alarm", "description": "Set an alarm clock.",
       "parameters": {"type": "object", "properties": {
           "time": {"type": "string", "description": "The time, HH:MM."},
           "label": {"type": "string", "description": "A name for the alarm."}},
           "required": ["time"]}},
      {"name": "play_music", "description": "Play music.",
       "parameters": {"type": "object", "properties": {
           "artist": {"type": "string", "description": "The artist to play."},
           "shuffle": {"type": "boolean", "description": "Shuffle the songs."}},
           "required": ["artist"]}}],
     "Wake me up at 06:45 and call it gym",
     ("set_alarm", {"time": "06:45", "label": "gym"}),
     {"status": "set", "time": "06:45"},
     "Your gym alarm is set for 06:45."),
    ([{"name": "convert_currency", "description": "Convert an amount between currencies.",
       "parameters": {"type": "object", "properties": {
           "amount": {"type": "number", "description": "The amount of money."},
           "source": {"type": "string", "description": "Currency code to convert from."},
           "target": {"type": "string", "description": "Currency code to convert to."}},
           "required": ["amount", "source", "target"]}}],
     "How much is 250 EUR in USD?",
     ("convert_currency", {"amount": 250, "source": "EUR", "target": "USD"}),
     {"amount": 271.5, "currency": "USD"},
     "250 EUR is 271.5 USD."),
    ([{"name": "send_message", "description": "Send a text message to a contact.",
       "parameters": {"type": "object", "properties": {
           "contact": {"type": "string", "description": "Who gets the message."},
           "text": {"type": "string", "description": "The message."}},
           "required": ["contact", "text"]}},
      {"name": "set_fan", "description": "Control a fan.",
       "parameters": {"type": "object", "properties": {
           "speed": {"type": "string", "enum": ["low", "medium", "high"],
                     "description": "Fan speed."},
           "running": {"type": "boolean", "description": "True to run the fan, False to "
                                                           "stop it."}},
           "required": ["running"]}}],
     "Please stop the fan",
     ("set_fan", {"running": False}),
     {"fan": "stopped"},
     "The fan is stopped."),
]


def _type_name(s: dict) -> str:
    if "enum" in s or "const" in s:
        values = s["enum"] if "enum" in s else [s["const"]]
        return "Literal[" + ", ".join(_literal(v) for v in values) + "]"
    t = s.get("type")
    if t == "array" and s.get("items"):
        return f"list[{_type_name(s['items'])}]"
    return _TYPES.get(t, "Any")


def _literal(v) -> str:
    return format_value(SYNTAX, v)


def _one_line(text) -> str:
    return " ".join(str(text or "").split())


def render_function(tool: dict) -> str:
    """A `def` stub with a Google-style docstring for a normalised tool."""
    params = tool["parameters"]
    props, required = params.get("properties") or {}, params.get("required") or []
    args = []
    for key in sorted(props, key=lambda k: k not in required):   # required first
        a = f"{key}: {_type_name(props[key])}"
        args.append(a if key in required else a + " = None")
    doc = _one_line(tool.get("description")) or tool["name"].replace("_", " ")
    lines = [f"def {tool['name']}({', '.join(args)}):", f'    """{doc}']
    if props:
        lines += ["", "    Args:"]
        lines += [f"        {k}: {_one_line(props[k].get('description')) or k}" for k in props]
    lines.append('    """')
    return "\n".join(lines) + "\n"


def render_functions(tools) -> str:
    return "Functions:\n\n" + "\n".join(render_function(t) for t in tools) + "\n"


def render_result(result) -> str:
    """A tool result as one JSON line (the result is already reduced to plain values)."""
    try:
        text = json.dumps(result, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        text = json.dumps(str(result), ensure_ascii=False)
    return _one_line(text)


def _demo(tools, request, call, result, answer) -> str:
    return (render_functions(tools) + f"{REQUEST} {request}\n{CALL} "
            + format_call(SYNTAX, *call) + f"\n{RESULT} {render_result(result)}\n"
            + f"{ANSWER} {answer}\n\n")


def render_preamble(system: str | None, demonstrations: bool = True) -> str:
    """Instructions and demonstrations: the same for every agent of this format."""
    demos = "".join(_demo(*d) for d in _DEMOS) if demonstrations else ""
    return (system or INSTRUCTIONS) + "\n\n" + demos


class PythonFormat:
    name = "python"
    syntax = SYNTAX
    symbol_ids: dict = {}

    def __init__(self, tokenizer, demonstrations=True):
        tok = tokenizer
        self.tok, self.demonstrations = tok, demonstrations
        first = lambda text: tok.encode(text, add_bos=False, special=False)[0]   # noqa: E731
        # decision tokens: the first token of each line marker after a newline
        self.call_id, self.answer_id, self.result_id = first("Call"), first("Answer"), \
            first("Result")
        self.answer_stops = frozenset(i for i in (tok.eos_id, getattr(tok, "eot_id", None))
                                      if i is not None)

    def prefix(self, system, tools) -> list:
        return [render_preamble(system, self.demonstrations) + render_functions(tools)]

    def preamble(self, system) -> list:
        return [render_preamble(system, self.demonstrations)]

    def turn(self, messages, names_by_id) -> list:
        """The conversation after the prefix, ending where the model speaks next."""
        out = []
        for m in messages:
            role = m.get("role")
            if role == "user":
                out.append(f"{REQUEST} {_one_line(message_text(m))}\n")
            elif role == "assistant":
                for c in m.get("tool_calls") or []:
                    out.append(f"{CALL} " + format_call(self.syntax, *call_arguments(c)) + "\n")
                text = message_text(m)
                if text:
                    out.append(f"{ANSWER} {_one_line(text)}\n")
            elif role == "tool":
                out.append(self.result(tool_result(m)))
            else:
                raise ValueError(f"unknown message role {role!r}")
        return out

    def open_call(self) -> list:
        return [f"{CALL} "]

    def close_call(self) -> list:
        return ["\n"]

    def open_answer(self) -> list:
        return [f"{ANSWER}"]

    def result(self, result) -> str:
        return f"{RESULT} {render_result(result)}\n"

    def results(self, records) -> list:
        return [self.result(r["result"]) for r in records]

    def parse(self, text: str) -> dict:
        return parse_call(self.syntax, text)

    def decode(self, ids) -> str:
        return self.tok.decode(ids)

    def render_call(self, name, arguments) -> str:
        return format_call(self.syntax, name, arguments)
