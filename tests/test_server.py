"""`edge-runtime serve` end to end on the real default model: the CLI started as its own
process on a free loopback port, the official `openai` client against it. Behaviour only: the
answers are checked against the declared schemas, against the same request made in-process
(edge_runtime.Agent), against the same request made alone, and against a cold server."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from edge_runtime.calls.schema import normalize_tool, schema_from_callable, validate  # noqa: E402
from edge_runtime.tools_builtin import TOOLS  # noqa: E402

pytestmark = pytest.mark.model

BUILTIN = [schema_from_callable(t) for t in TOOLS]
SCHEMAS = {n["name"]: n["parameters"] for n in map(normalize_tool, BUILTIN)}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CTX = 1024


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """`python -m edge_runtime serve` in a child process; .url, .client, .stats(), .stop()."""

    def __init__(self, model_path, *extra):
        self.port = _free_port()
        env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge_runtime", "serve", "--model", model_path, "--port",
             str(self.port), "--threads", "1", "--max-inference-len", str(CTX), *extra],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.root = f"http://127.0.0.1:{self.port}"
        self.url = self.root + "/v1"
        deadline = time.monotonic() + 120
        while True:
            try:
                self.get("/health")
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("server did not start: " + self.proc.stderr.read().decode())
                time.sleep(0.2)
        self.name = self.get("/v1/models")["data"][0]["id"]
        self.client = openai.OpenAI(base_url=self.url, api_key="unused", max_retries=0,
                                    timeout=300)

    def get(self, path):
        with urllib.request.urlopen(self.root + path, timeout=60) as r:
            return json.loads(r.read())

    def stats(self):
        return self.get("/v1/edge/stats")

    def chat(self, **kw):
        return self.client.chat.completions.create(model=self.name, temperature=0, **kw)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def served(default_model):
    s = Served(default_model, "--queue", "6")
    yield s
    s.stop()


def _user(text):
    return [{"role": "user", "content": text}]


def _calls(r):
    return [(c.function.name, json.loads(c.function.arguments))
            for c in r.choices[0].message.tool_calls or []]


def _valid(calls):
    return all(name in SCHEMAS and not validate(args, SCHEMAS[name]) for name, args in calls)


def test_plain_chat(served):
    r = served.chat(messages=_user("Write one sentence about the sea."), max_tokens=24)
    m = r.choices[0].message
    assert m.content and m.tool_calls is None and r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.completion_tokens >= 1 and r.usage.prompt_tokens > 5


def test_json_object_mode_gives_a_json_object(served):
    """response_format json_object on the real model: the reply parses as a JSON object."""
    r = served.client.chat.completions.create(
        model=served.name, temperature=0, response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "Give the weather in Paris as JSON."}])
    assert r.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(r.choices[0].message.content), dict)


def test_tool_call_then_tool_result_then_text(served):
    msgs = _user("turn on the kitchen lights")
    r = served.chat(messages=msgs, tools=BUILTIN, tool_choice="required")
    calls = _calls(r)
    assert r.choices[0].finish_reason == "tool_calls" and calls and _valid(calls)
    msgs.append(r.choices[0].message.model_dump(exclude_none=True))
    for c in r.choices[0].message.tool_calls:
        msgs.append({"role": "tool", "tool_call_id": c.id,
                     "content": json.dumps({"room": "kitchen", "state": "on"})})
    r2 = served.chat(messages=msgs, tools=BUILTIN, tool_choice="none", max_tokens=32)
    assert r2.choices[0].message.tool_calls is None and r2.choices[0].message.content
    assert r2.choices[0].finish_reason in ("stop", "length")


def test_the_server_answers_as_the_in_process_agent(served, default_model):
    import edge_runtime as er
    agent = er.Agent(er.Model.load(default_model, threads=1, max_inference_len=CTX), BUILTIN)
    for choice in ("required", "auto", "none"):
        turn = agent.respond(_user("what is the weather in Paris?"),
                                            tool_choice=choice)
        r = served.chat(messages=_user("what is the weather in Paris?"), tools=BUILTIN,
                        tool_choice=choice)
        assert _calls(r) == [(c["name"], c["arguments"]) for c in turn.calls]
        assert (r.choices[0].message.content or "") == turn.text
        assert r.choices[0].finish_reason == turn.finish_reason


@pytest.mark.parametrize("choice", ["none", "required", "auto",
                                    {"type": "function", "function": {"name": "get_weather"}}])
def test_tool_choice(served, choice):
    r = served.chat(messages=_user("turn on the kitchen lights"), tools=BUILTIN,
                    tool_choice=choice, max_tokens=24)
    calls = _calls(r)
    assert _valid(calls)
    if choice == "none":
        assert not calls and r.choices[0].message.content
    elif choice == "required":
        assert calls
    elif isinstance(choice, dict):
        assert [n for n, _ in calls] == ["get_weather"]


def _reassemble(stream):
    text, calls, finish = "", {}, None
    for chunk in stream:
        for ch in chunk.choices:
            text += ch.delta.content or ""
            for tc in ch.delta.tool_calls or []:
                c = calls.setdefault(tc.index, ["", ""])
                c[0] += tc.function.name or ""
                c[1] += tc.function.arguments or ""
            finish = ch.finish_reason or finish
    return text, [(n, json.loads(a)) for n, a in (calls[i] for i in sorted(calls))], finish


@pytest.mark.parametrize("request_text,tools,choice", [
    ("Write one sentence about the sea.", None, None),
    ("turn on the kitchen lights", BUILTIN, "required"),
    ("what is the weather in Paris?", BUILTIN, "none")])
def test_stream_reassembles_to_the_unstreamed_reply(served, request_text, tools, choice):
    kw = dict(messages=_user(request_text), max_tokens=24,
              **({"tools": tools, "tool_choice": choice} if tools else {}))
    r = served.chat(**kw)
    text, calls, finish = _reassemble(served.chat(stream=True, **kw))
    assert (text, calls, finish) == (r.choices[0].message.content or "", _calls(r),
                                     r.choices[0].finish_reason)


def test_errors(served):
    bad_schema = [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"x": {"type": "string", "format": "date-time"}}}}}]
    with pytest.raises(openai.BadRequestError) as e:
        served.chat(messages=_user("hi"), tools=bad_schema)
    assert e.value.body["param"] == "tools"
    with pytest.raises(openai.BadRequestError) as e:
        served.chat(messages=_user("lights " * 1500), tools=BUILTIN)
    assert e.value.code == "context_length_exceeded"
    with pytest.raises(openai.NotFoundError) as e:
        served.client.chat.completions.create(model="gpt-4o", messages=_user("hi"))
    assert e.value.code == "model_not_found"
    assert served.get("/health")["status"] == "ok"      # and the server is still fine


def test_prefix_reuse_prefills_only_the_request_and_matches_a_cold_server(served, default_model,
                                                                         tmp_path):
    system = [{"role": "system", "content": "You control a small flat."}]
    msgs = system + _user("what is the weather in Paris?")

    def run(s):
        before = s.stats()["prefix_reuse"]["evaluated"]
        r = s.chat(messages=msgs, tools=BUILTIN, tool_choice="required")
        after = s.stats()["prefix_reuse"]["evaluated"]
        return r, sum(after.values()) - sum(before.values())

    first, cold_eval = run(served)     # a new (system, tools) pair: the prefix is computed
    second, warm_eval = run(served)
    assert _calls(second) == _calls(first) and _valid(_calls(first))
    u = second.usage
    prefix = u.prompt_tokens_details.cached_tokens
    assert prefix > 0 and warm_eval == u.prompt_tokens - prefix + u.completion_tokens
    assert cold_eval - warm_eval == prefix
    cold = Served(default_model, "--cache-dir", str(tmp_path))
    try:
        assert _calls(cold.chat(messages=msgs, tools=BUILTIN, tool_choice="required")) == \
            _calls(first)
    finally:
        cold.stop()
    again = Served(default_model, "--cache-dir", str(tmp_path))   # snapshot read from disk
    try:
        r, evaluated = run(again)
        assert _calls(r) == _calls(first) and evaluated == warm_eval
    finally:
        again.stop()


def test_load_16_clients_more_than_the_sessions(served):
    """16 clients at once against 1 session + a queue of 6: each gets its full answer or a
    clean 503 with Retry-After; answers equal the same request made alone; RSS within plan."""
    requests = [("turn on the kitchen lights", "required"), ("what is the weather in Paris?",
                                                            "required"),
                ("Write one sentence about the sea.", "none"), ("turn off the bedroom light",
                                                               "auto")]

    def ask(i):
        text, choice = requests[i % len(requests)]
        try:
            r = served.chat(messages=_user(text), tools=BUILTIN, tool_choice=choice,
                            max_tokens=16)
            return i, (r.choices[0].message.content, _calls(r), r.choices[0].finish_reason)
        except openai.APIStatusError as e:
            assert e.status_code == 503 and int(e.response.headers["Retry-After"]) >= 1
            assert e.body["code"] == "server_busy"
            return i, None

    with ThreadPoolExecutor(16) as pool:
        results = dict(pool.map(ask, range(16)))
    alone = {}
    for i, got in results.items():
        if got is not None:
            if i % len(requests) not in alone:
                alone[i % len(requests)] = ask(i % len(requests))[1]
            assert got == alone[i % len(requests)]
    assert sum(r is not None for r in results.values()) >= 7   # 1 decoding + 6 queued
    st = served.stats()
    assert st["admission"]["active"] == 0 and st["admission"]["waiting"] == 0
    assert st["rss"]["vm_hwm"] <= st["memory_plan"]["total_resident"]
