"""The HTTP layer of `edge-runtime serve` with the official `openai` client: wire shapes, SSE,
errors and admission. Chat turns come from a scripted agent (the respond() signature of
edge_runtime.Agent, no model) so each shape is checked against a known answer; plain
completions run on a tiny random GGUF through the real Model. The real agent on the real model:
tests/test_server.py."""
from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import jsonschema
import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from edge_runtime import Model, server  # noqa: E402
from edge_runtime.calls.schema import normalize_tool  # noqa: E402
from edge_runtime.server.engine import Engine  # noqa: E402

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}
TIMER = {"type": "function", "function": {
    "name": "set_timer", "parameters": {"type": "object",
                                        "properties": {"minutes": {"type": "integer"}}}}}


class ScriptedAgent:
    """respond() as edge_runtime.Agent declares it, answering from the conversation:
    a tool result -> "got <content>"; a call when tool_choice asks for one or the user says
    "call"; otherwise the user's text echoed word by word. Every call is recorded."""

    log: list = []
    gate: threading.Event | None = None     # when set by a test, respond() waits on it

    def __init__(self, model, tools, system=None, cache_dir=None):
        self.system = system
        self.tools = [normalize_tool(t) for t in tools]   # ValueError outside the subset

    def respond(self, messages, tool_choice="auto", max_tokens=None, temperature=0.0, top_p=1.0,
                seed=None, stop=None, on_text=None, parallel_tool_calls=True):
        ScriptedAgent.log.append({"system": self.system, "messages": messages, "tool_choice": tool_choice,
                                  "max_tokens": max_tokens, "temperature": temperature,
                                  "top_p": top_p, "seed": seed, "stop": stop,
                                  "parallel_tool_calls": parallel_tool_calls})
        if ScriptedAgent.gate is not None:
            assert ScriptedAgent.gate.wait(30)
        last = messages[-1]
        named = tool_choice.get("function", {}).get("name") if isinstance(tool_choice, dict) \
            else None
        wants = named or tool_choice == "required" or \
            (tool_choice == "auto" and "call" in last["content"])
        if last["role"] != "tool" and wants and self.tools:
            calls = [{"name": named or self.tools[0]["name"], "arguments": {"city": "Paris"}}]
            if "two" in last["content"] and parallel_tool_calls:
                calls.append({"name": self.tools[-1]["name"], "arguments": {"minutes": 3}})
            return SimpleNamespace(text="", calls=calls, finish_reason="tool_calls",
                                   usage={"prompt_tokens": 40, "completion_tokens": 9,
                                          "cached_tokens": 30})
        text = f"got {last['content']}" if last["role"] == "tool" else last["content"]
        pieces = [text[i:i + 3] for i in range(0, len(text), 3)]   # "tokens", spaces and all
        n = min(max_tokens or len(pieces), len(pieces))
        for piece in pieces[:n]:
            if on_text:
                on_text(piece)
        return SimpleNamespace(text="".join(pieces[:n]).strip(), calls=[],
                               finish_reason="length" if n < len(pieces) else "stop",
                               usage={"prompt_tokens": 12, "completion_tokens": n,
                                      "cached_tokens": 0})


@pytest.fixture(scope="module")
def tiny_model(tiny_gguf_factory):
    return Model.load(tiny_gguf_factory(), threads=1, max_inference_len=96)


def _start(model, **kw):
    return server.start(model, engine=Engine(model, agent_factory=ScriptedAgent), **kw)


@pytest.fixture(scope="module")
def srv(tiny_model):
    with _start(tiny_model, queue=4) as s:
        yield s


@pytest.fixture
def client(srv):
    ScriptedAgent.log.clear()
    return openai.OpenAI(base_url=srv.url, api_key="unused", max_retries=0, timeout=60)


def _name(srv):
    return srv.server.name


def _raw(srv, path, body=None, method=None):
    """(status, headers, parsed JSON) of a raw HTTP request."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(srv.url.removesuffix("/v1") + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read())


def _error(status_body):
    status, _, body = status_body
    assert set(body["error"]) >= {"message", "type", "param", "code"}
    return status, body["error"]


def test_models_and_health(srv, client):
    assert [m.id for m in client.models.list().data] == [_name(srv)]
    assert _raw(srv, "/health")[:1] == (200,)
    st = _raw(srv, "/v1/edge/stats")[2]
    assert st["admission"]["slots"] == 1 and st["rss"]["vm_hwm"] > 0


def test_chat_parameters_reach_the_agent(srv, client):
    r = client.chat.completions.create(
        model=_name(srv), temperature=0.5, top_p=0.9, seed=7, stop="xyz", max_tokens=50,
        tools=[WEATHER], messages=[{"role": "system", "content": "be brief"},
                                   {"role": "user", "content": "hello there"}])
    assert r.object == "chat.completion" and r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.content == "hello there" and r.choices[0].message.tool_calls is None
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (12, 4, 16)
    got = ScriptedAgent.log[-1]
    assert got["system"] == "be brief" and got["messages"][1] == {"role": "user",
                                                                   "content": "hello there"}
    assert {k: got[k] for k in ("tool_choice", "max_tokens", "temperature", "top_p", "seed",
                                "stop")} == {"tool_choice": "auto", "max_tokens": 50,
                                             "temperature": 0.5, "top_p": 0.9, "seed": 7,
                                             "stop": ["xyz"]}


def test_chat_without_tools_is_the_gemma_template_on_the_real_decoder(srv, client, tiny_model):
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "hi"}, {"role": "user", "content": "the world"}]
    r = client.chat.completions.create(model=_name(srv), temperature=0, max_tokens=10,
                                       messages=msgs)
    tok = tiny_model.tokenizer
    sot, eot = tok.find("<start_of_turn>"), tok.find("<end_of_turn>")
    enc = lambda s: tok.encode(s, add_bos=False, special=False)  # noqa: E731
    ids = [tok.bos_id, sot, *enc("user\nbe brief\n\nhello"), eot, *enc("\n"), sot,
           *enc("model\nhi"), eot, *enc("\n"), sot, *enc("user\nthe world"), eot, *enc("\n"),
           sot, *enc("model\n")]
    ref = list(tiny_model.new_session().generate(ids, max_tokens=10))
    assert r.choices[0].message.content == tok.decode(ref)
    assert r.usage.prompt_tokens == len(ids) and r.usage.completion_tokens == len(ref)
    assert not ScriptedAgent.log


def test_tool_calls_and_tool_result_round_trip(srv, client):
    msgs = [{"role": "user", "content": "call two tools"}]
    r = client.chat.completions.create(model=_name(srv), messages=msgs, tools=[WEATHER, TIMER])
    ch = r.choices[0]
    assert ch.finish_reason == "tool_calls" and ch.message.content is None
    calls = ch.message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "set_timer"]
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": "Paris"}, {"minutes": 3}]
    assert len({c.id for c in calls}) == 2 and all(c.type == "function" for c in calls)
    assert r.usage.prompt_tokens_details.cached_tokens == 30
    assert ScriptedAgent.log[-1]["tool_choice"] == "auto"

    msgs.append(ch.message.model_dump(exclude_none=True))
    msgs.append({"role": "tool", "tool_call_id": calls[0].id, "content": "sunny"})
    r2 = client.chat.completions.create(model=_name(srv), messages=msgs, tools=[WEATHER, TIMER])
    assert r2.choices[0].message.content == "got sunny"
    sent = ScriptedAgent.log[-1]["messages"]
    assert sent[1]["tool_calls"][0] == {"id": calls[0].id, "type": "function", "function": {
        "name": "get_weather", "arguments": json.dumps({"city": "Paris"})}}
    assert sent[2] == {"role": "tool", "tool_call_id": calls[0].id, "content": "sunny"}


def _reassemble(stream):
    text, calls, finish, usage, roles = "", {}, None, None, []
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage is not None:
            usage = chunk.usage
        for ch in chunk.choices:
            d = ch.delta
            roles += [d.role] if d.role else []
            text += d.content or ""
            for tc in d.tool_calls or []:
                c = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                c["id"] += tc.id or ""
                c["name"] += tc.function.name or ""
                c["arguments"] += tc.function.arguments or ""
            finish = ch.finish_reason or finish
    return text, [calls[i] for i in sorted(calls)], finish, usage, roles


@pytest.mark.parametrize("content,tools,max_tokens", [
    ("  one two  three four ", [WEATHER], None), ("one two three four", [WEATHER], 2),
    ("hello world", None, 20), ("call two", [WEATHER, TIMER], None)])
def test_stream_reassembles_to_the_unstreamed_reply(srv, client, content, tools, max_tokens):
    kw = dict(model=_name(srv), messages=[{"role": "user", "content": content}],
              max_tokens=max_tokens, temperature=0, **({"tools": tools} if tools else {}))
    r = client.chat.completions.create(**kw)
    text, calls, finish, usage, roles = _reassemble(client.chat.completions.create(
        stream=True, stream_options={"include_usage": True}, **kw))
    m = r.choices[0].message
    assert roles == ["assistant"]
    assert text == (m.content or "") and finish == r.choices[0].finish_reason
    assert [(c["name"], json.loads(c["arguments"])) for c in calls] == \
        [(c.function.name, json.loads(c.function.arguments)) for c in m.tool_calls or []]
    assert all(c["id"].startswith("call_") for c in calls)
    # (cached_tokens may differ: the second request finds more of its prompt in the state)
    assert (usage.prompt_tokens, usage.completion_tokens) == \
        (r.usage.prompt_tokens, r.usage.completion_tokens)


NAMED = {"type": "function", "function": {"name": "set_timer"}}


@pytest.mark.parametrize("choice,names", [
    ("none", []), ("required", ["get_weather"]), ("auto", []), (NAMED, ["set_timer"])])
def test_tool_choice_reaches_the_agent(srv, client, choice, names):
    r = client.chat.completions.create(model=_name(srv), tools=[WEATHER, TIMER], tool_choice=choice,
                                       messages=[{"role": "user", "content": "hi"}])
    assert ScriptedAgent.log[-1]["tool_choice"] == choice
    assert [c.function.name for c in r.choices[0].message.tool_calls or []] == names


@pytest.mark.parametrize("kw,status,param", [
    ({"model": "no-such-model"}, 404, "model"),
    ({"n": 2}, 400, "n"),
    ({"temperature": 3}, 400, "temperature"),
    ({"max_tokens": 0}, 400, "max_tokens"),
    ({"stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    ({"tool_choice": "required"}, 400, "tool_choice"),                       # no tools
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "x"}}},
     400, "tool_choice"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"x": {"$ref": "#/x"}}}}}]}, 400, "tools"),
    ({"messages": []}, 400, "messages"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, 400, "messages[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
     400, "messages[0].content"),
    ({"messages": [{"role": "tool", "content": "x"}]}, 400, "messages[0]"),
    ({"seed": -1}, 400, "seed"),
    ({"top_p": 0}, 400, "top_p"),
    ({"logit_bias": {"42": 5}}, 400, "logit_bias"),
    ({"presence_penalty": 0.5}, 400, "presence_penalty"),
    ({"frequency_penalty": 1}, 400, "frequency_penalty"),
    ({"tools": [WEATHER] * 65}, 400, "tools"),
    ({"tools": [{"type": "function", "function": {"name": "f", "description": "x" * 70000}}]},
     400, "tools"),
    ({"response_format": {"type": "json_object"}, "tools": [WEATHER]}, 400, "response_format"),
    ({"response_format": {"type": "json_object"}, "stop": "}"}, 400, "stop"),
    ({"response_format": {"type": "yaml"}}, 400, "response_format"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, 400,
     "response_format"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "object", "properties": {"a": {"type": "string", "format": "email"}}}}}}, 400,
     "response_format"),
    ({"parallel_tool_calls": "no", "tools": [WEATHER]}, 400, "parallel_tool_calls"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameter": {
        "type": "object", "properties": {"x": {"type": "string"}}}}}]}, 400, "tools"),
])
def test_bad_chat_requests_get_openai_errors(srv, client, kw, status, param):
    body = {"model": _name(srv), "messages": [{"role": "user", "content": "hi"}], **kw}
    got_status, err = _error(_raw(srv, "/v1/chat/completions", body))
    assert (got_status, err["param"]) == (status, param)
    assert err["message"]
    err_cls = openai.NotFoundError if status == 404 else openai.BadRequestError
    with pytest.raises(err_cls):
        client.chat.completions.create(**body)
    assert not ScriptedAgent.log   # refused before reaching the model


def test_unknown_fields_are_refused_and_neutral_ones_accepted(srv, client):
    body = {"model": _name(srv), "messages": [{"role": "user", "content": "hi"}]}
    status, err = _error(_raw(srv, "/v1/chat/completions", {**body, "top_k": 5}))
    assert (status, err["param"], err["code"]) == (400, "top_k", "unsupported_parameter")
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(**body, extra_body={"repetition_penalty": 1.1})
    assert not ScriptedAgent.log
    r = client.chat.completions.create(**body, tools=[WEATHER], logit_bias={}, user="u1",
                                       presence_penalty=0, response_format={"type": "text"})
    assert r.choices[0].message.content == "hi"


PERSON = {"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 6}, "age": {"type": "integer", "minimum": 0,
                                                        "maximum": 120},
    "role": {"enum": ["admin", "guest"]}, "tags": {"type": "array", "maxItems": 2, "items": {
        "type": "string", "maxLength": 3}}}, "required": ["name", "age", "role"],
    "additionalProperties": False}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_json_schema_response_format_gives_json_of_that_schema(srv, client, stream):
    """The reply is one JSON value the schema accepts (checked with the jsonschema package),
    whatever the (tiny, random) model would have said; streamed, its pieces join into it."""
    seeds = range(4)
    for seed in seeds:
        kw = dict(model=_name(srv), messages=[{"role": "user", "content": "who is it?"}],
                  seed=seed, temperature=1.0, response_format={
                      "type": "json_schema",
                      "json_schema": {"name": "person", "schema": PERSON, "strict": True}})
        if stream:
            pieces = list(client.chat.completions.create(stream=True, **kw))
            text = "".join(c.choices[0].delta.content or "" for c in pieces if c.choices)
            reason = [c.choices[0].finish_reason for c in pieces if c.choices][-1]
        else:
            r = client.chat.completions.create(**kw)
            text, reason = r.choices[0].message.content, r.choices[0].finish_reason
        assert reason == "stop", text
        jsonschema.validate(json.loads(text), PERSON)
    assert not ScriptedAgent.log    # not the tools path


def test_a_json_reply_cut_by_max_tokens_says_length(srv, client):
    r = client.chat.completions.create(
        model=_name(srv), messages=[{"role": "user", "content": "who?"}], max_tokens=2,
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON}})
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 2
    assert r.choices[0].message.content.startswith("{")


def test_parallel_tool_calls_false_gives_at_most_one_call(srv, client):
    kw = dict(model=_name(srv), messages=[{"role": "user", "content": "call two tools"}],
              tools=[WEATHER, TIMER])
    assert len(client.chat.completions.create(**kw).choices[0].message.tool_calls) == 2
    one = client.chat.completions.create(parallel_tool_calls=False, **kw)
    assert [c.function.name for c in one.choices[0].message.tool_calls] == ["get_weather"]
    assert ScriptedAgent.log[-1]["parallel_tool_calls"] is False


def test_chat_without_tools_or_max_tokens_runs_to_the_context(srv, client, tiny_model):
    """What the openai client sends by default: no max_tokens means until the context's room
    (as OpenAI), never a 500."""
    r = client.chat.completions.create(model=_name(srv), temperature=0,
                                       messages=[{"role": "user", "content": "hello"}])
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens + r.usage.completion_tokens <= tiny_model.max_inference_len
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=_name(srv), messages=[
            {"role": "user", "content": "hello world " * 60}])
    assert e.value.code == "context_length_exceeded"


def test_bodies_that_are_not_json_objects_or_nest_too_deep(srv):
    req = urllib.request.Request(srv.url + "/chat/completions", method="POST",
                                 data=json.dumps({"model": _name(srv), "messages": [
                                     {"role": "user", "content": "hi"}]}).encode(),
                                 headers={"Content-Type": "text/plain"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=60)
    assert e.value.code == 415
    deep = b'{"model": "m", "messages": ' + b"[" * 100000 + b"]" * 100000 + b"}"
    status, err = _error(_raw(srv, "/v1/chat/completions", deep))
    assert status == 400 and "deep" in err["message"]
    assert not ScriptedAgent.log


def test_malformed_bodies_and_unknown_routes(srv):
    status, err = _error(_raw(srv, "/v1/chat/completions", b"{not json"))
    assert status == 400 and "JSON" in err["message"]
    assert _error(_raw(srv, "/v1/chat/completions", b"[1, 2]"))[0] == 400
    assert _error(_raw(srv, "/v1/chat/completions", b"x" * (2 << 20)))[0] == 413
    assert _error(_raw(srv, "/v1/nothing"))[1]["code"] == "not_found"
    assert _error(_raw(srv, "/v1/chat/completions", method="GET"))[0] == 405


def test_completions_stream_and_stop_on_the_real_decoder(srv, client, tiny_model):
    kw = dict(model=_name(srv), prompt="hello world", max_tokens=12, temperature=0)
    r = client.completions.create(**kw)
    ids = tiny_model.tokenizer.encode("hello world", add_bos=True, special=False)
    ref = list(tiny_model.new_session().generate(ids, max_tokens=12))
    assert r.choices[0].text == tiny_model.tokenizer.decode(ref)
    assert r.choices[0].finish_reason == ("length" if len(ref) == 12 else "stop")
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (len(ids), len(ref))
    streamed = client.completions.create(stream=True, **kw)
    assert "".join(c.choices[0].text for c in streamed) == r.choices[0].text
    # A stop string inside the text: the reply ends just before it, streamed or not.
    text = r.choices[0].text
    stop = text[len(text) // 2:len(text) // 2 + 2]
    if stop.strip():
        cut = client.completions.create(stop=[stop], **kw)
        assert cut.choices[0].text == text[:text.find(stop)]
        assert cut.choices[0].finish_reason == "stop"
        assert "".join(c.choices[0].text for c in
                       client.completions.create(stream=True, stop=[stop], **kw)) == \
            cut.choices[0].text


@pytest.mark.parametrize("stream", [False, True])
def test_prompt_beyond_max_inference_len_is_a_400(srv, client, stream):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=_name(srv), prompt="hello world " * 200, max_tokens=4,
                                  stream=stream)
    assert e.value.code == "context_length_exceeded"


def test_admission_queues_then_refuses_with_503_and_retry_after(tiny_model):
    ScriptedAgent.gate = threading.Event()
    try:
        with _start(tiny_model, queue=1) as s:
            c = openai.OpenAI(base_url=s.url, api_key="x", max_retries=0, timeout=60)

            def ask(i):
                return c.chat.completions.create(
                    model=s.server.name, tools=[WEATHER],
                    messages=[{"role": "user", "content": f"n {i}"}])

            with ThreadPoolExecutor(2) as pool:
                running = [pool.submit(ask, i) for i in range(2)]   # one decodes, one waits
                for _ in range(3000):
                    if s.server.admission.waiting == 1:
                        break
                    threading.Event().wait(0.01)
                status, headers, body = _raw(s, "/v1/chat/completions", {
                    "model": s.server.name, "tools": [WEATHER],
                    "messages": [{"role": "user", "content": "x"}]})
                assert status == 503 and body["error"]["code"] == "server_busy"
                assert int(headers["Retry-After"]) >= 1
                ScriptedAgent.gate.set()
                answers = sorted(f.result().choices[0].message.content for f in running)
            assert answers == ["n 0", "n 1"]
            adm = _raw(s, "/v1/edge/stats")[2]["admission"]
            assert (adm["admitted"], adm["rejected"], adm["active"], adm["waiting"]) == (2, 1, 0, 0)
    finally:
        ScriptedAgent.gate = None


def test_requests_in_flight_past_the_limit_get_the_same_503(tiny_model):
    """Clients that send headers and then stall their body hold no slot but still cost a
    body's memory: past slots + queue + room, the next request is refused with the JSON 503
    and Retry-After before its body is read (not uvicorn's plain-text 503)."""
    with _start(tiny_model, queue=0) as s:
        guard = s.server.app
        held = guard.admission.slots + guard.admission.queue + guard.ROOM
        stalled = []
        try:
            for _ in range(held):
                sock = socket.create_connection((s.host, s.port), timeout=60)
                sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
                             b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
                stalled.append(sock)
            for _ in range(3000):
                if guard.active == held:
                    break
                threading.Event().wait(0.01)
            assert guard.active == held
            status, headers, body = _raw(s, "/v1/models")
            assert status == 503 and body["error"]["code"] == "server_busy"
            assert int(headers["Retry-After"]) >= 1
            assert _raw(s, "/health")[0] == 200          # a monitor still sees it up
        finally:
            for sock in stalled:
                sock.close()
        for _ in range(3000):
            if guard.active == 0:
                break
            threading.Event().wait(0.01)
        assert _raw(s, "/health")[0] == 200


def test_a_client_leaving_mid_stream_frees_its_session(tiny_model):
    with _start(tiny_model, queue=0) as s:
        c = openai.OpenAI(base_url=s.url, api_key="x", max_retries=0, timeout=60)
        stream = c.completions.create(model=s.server.name, prompt="hello", max_tokens=60,
                                      temperature=0, stream=True)
        next(iter(stream))
        stream.close()
        # The slot comes back (the decode stops at its next token); then a request gets in.
        for _ in range(500):
            if s.server.admission.active == 0:
                break
            threading.Event().wait(0.02)
        r = c.completions.create(model=s.server.name, prompt="hello", max_tokens=3)
        assert r.choices[0].finish_reason in ("stop", "length")


def test_the_server_plan_adds_its_rows_and_is_checked_against_a_budget(tiny_model):
    from edge_runtime.errors import MemoryBudgetError
    from edge_runtime.server.app import Server

    def make(budget=None):
        return Server(tiny_model, engine=Engine(tiny_model, agent_factory=ScriptedAgent),
                      budget=budget)

    plan = make().plan
    extra = [r for r in plan.rows if r not in tiny_model.plan.rows]
    assert any(n.startswith("server: HTTP stack") for n, _, _ in extra)
    assert plan.total_resident == tiny_model.plan.total_resident + sum(b for _, b, _ in extra)
    assert make(budget=plan.total_resident).plan.total_resident == plan.total_resident
    with pytest.raises(MemoryBudgetError):   # the model alone fits, the server does not
        make(budget=tiny_model.plan.total_resident)


def test_the_server_plan_counts_the_agent_once_with_its_real_prefix(tiny_gguf_factory):
    """A model loaded for the agent (what `edge-runtime serve` does) already has the agent's
    rows and its prefix snapshot: the server adds none of them again, and sizes the snapshots
    of further toolsets like the planned prefix."""
    from edge_runtime.server.app import Server
    path = tiny_gguf_factory(context_length=4096)   # the tiny vocabulary spells a long prefix
    for agent in (None, True):
        m = Model.load(path, threads=1, agent=agent)
        rows = Server(m, engine=Engine(m, agents=3, agent_factory=ScriptedAgent)).plan.rows
        assert sum("vocabulary index" in n for n, _, _ in rows) == 1
        more = [n for n, _, _ in rows if "snapshots of 2 more toolsets" in n]
        assert len(more) == 1
        assert sum("token constraints of 2 more toolsets" in n for n, _, _ in rows) == 1
        if agent:
            assert f"({m.plan.settings['snapshot_tokens']} tokens each)" in more[0]


def _raw_headers(srv, path, headers, body=None):
    """(status, parsed JSON) of a request with exactly these extra headers."""
    req = urllib.request.Request(srv.url.removesuffix("/v1") + path, data=body,
                                 headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_an_api_key_is_required_when_set(tiny_model):
    """With api_key, the official client with the key is served; without it, or with another,
    401 before anything runs; /health stays open for monitors."""
    with _start(tiny_model, api_key="s3cret") as s:
        ok = openai.OpenAI(base_url=s.url, api_key="s3cret", max_retries=0, timeout=60)
        assert [m.id for m in ok.models.list().data] == [_name(s)]
        for key in ("wrong", "s3cre"):
            bad = openai.OpenAI(base_url=s.url, api_key=key, max_retries=0, timeout=60)
            with pytest.raises(openai.AuthenticationError) as e:
                bad.chat.completions.create(model=_name(s), messages=[
                    {"role": "user", "content": "hello"}])
            assert e.value.status_code == 401 and e.value.code == "invalid_api_key"
        status, body = _raw_headers(s, "/v1/models", {})
        assert status == 401 and body["error"]["code"] == "invalid_api_key"
        assert _raw_headers(s, "/health", {})[0] == 200
    with pytest.raises(ValueError):
        server.Server(tiny_model, api_key=" ")


def test_a_host_header_it_does_not_know_is_refused(srv):
    """DNS rebinding: a page whose own name resolves to this machine sends that name as
    Host; only loopback names, IP literals and the names given are served."""
    for host, want in (("evil.example", 421), ("evil.example:80", 421),
                       ("localhost:1234", 200), ("127.0.0.1", 200), ("[::1]:9", 200),
                       ("10.0.0.7:8080", 200)):
        status, body = _raw_headers(srv, "/v1/models", {"Host": host})
        assert status == want, (host, body)
        if want == 421:
            assert body["error"]["code"] == "host_not_allowed"


def test_a_half_sent_body_is_cut_off(srv, monkeypatch):
    """Bodies that stop arriving get 408 once BODY_SECONDS pass, and their places in flight
    are free again."""
    from edge_runtime.server import app
    monkeypatch.setattr(app, "BODY_SECONDS", 1.0)
    host, port = srv.host, srv.port
    n = srv.server.admission.slots + srv.server.admission.queue + app._InFlightLimit.ROOM
    socks = []
    for _ in range(n):
        c = socket.create_connection((host, port), timeout=30)
        c.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"mo")
        socks.append(c)
    try:
        for c in socks:
            reply = b""
            while b"request_timeout" not in reply:
                got = c.recv(4096)
                if not got:
                    break
                reply += got
            assert reply.startswith(b"HTTP/1.1 408") and b"request_timeout" in reply, reply
    finally:
        for c in socks:
            c.close()
    assert _raw(srv, "/v1/models")[0] == 200


def test_a_client_that_gives_up_on_a_non_streamed_reply_stops_its_decode(tiny_model):
    """A non-streamed request whose client times out is noticed while it waits: the decode
    stops at its next piece of text (the turn is never finished nor counted) and the slot
    comes back for the next request."""
    ScriptedAgent.gate = threading.Event()
    try:
        with _start(tiny_model, queue=0) as s:
            quick = openai.OpenAI(base_url=s.url, api_key="x", max_retries=0, timeout=0.5)
            with pytest.raises(openai.APITimeoutError):
                quick.chat.completions.create(model=s.server.name, tools=[WEATHER], messages=[
                    {"role": "user", "content": "a long answer nobody will read"}])
            for _ in range(3000):       # the server notices the client has gone
                if s.server.abandoned == 1:
                    break
                threading.Event().wait(0.01)
            ScriptedAgent.gate.set()
            for _ in range(3000):
                if s.server.admission.active == 0:
                    break
                threading.Event().wait(0.01)
            assert s.server.engine.counters["requests"] == 0     # the turn never finished
            c = openai.OpenAI(base_url=s.url, api_key="x", max_retries=0, timeout=60)
            r = c.chat.completions.create(model=s.server.name, tools=[WEATHER],
                                          messages=[{"role": "user", "content": "next"}])
            assert r.choices[0].message.content == "next"
            assert s.server.engine.counters["requests"] == 1
            assert _raw(s, "/v1/edge/stats")[2]["abandoned"] == 1
    finally:
        ScriptedAgent.gate = None



def test_the_access_log_has_a_line_per_request(tiny_model, capfd):
    """One line per request: time, method, path, status, the tokens it used, milliseconds."""
    line = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (GET|POST) (\S+) (\d{3}) "
                      r"(-|prompt=(\d+) cached=(\d+) completion=(\d+)) (\d+)ms$")
    with _start(tiny_model, access_log=True) as s:
        capfd.readouterr()
        assert _raw(s, "/v1/models")[0] == 200
        assert _raw(s, "/v1/nope")[0] == 404
        status, _, body = _raw(s, "/v1/chat/completions", {
            "model": s.server.name, "max_tokens": 3, "temperature": 0,
            "messages": [{"role": "user", "content": "hello"}]})
        assert status == 200
        # the server writes a request's line once the reply is sent: the client may be first
        out, deadline = [], time.monotonic() + 10
        while len(out) < 3 and time.monotonic() < deadline:
            out += capfd.readouterr().out.splitlines()
            time.sleep(0.02)
    got = [line.match(x) for x in out]
    assert all(got) and len(got) == 3, out
    assert [(m[1], m[2], m[3], m[4]) for m in got[:2]] == [
        ("GET", "/v1/models", "200", "-"), ("GET", "/v1/nope", "404", "-")]
    u = body["usage"]
    assert got[2].group(1, 2, 3) == ("POST", "/v1/chat/completions", "200")
    assert tuple(map(int, got[2].group(5, 6, 7))) == (
        u["prompt_tokens"], u.get("prompt_tokens_details", {}).get("cached_tokens", 0),
        u["completion_tokens"])


def test_cors_only_for_the_origins_named(tiny_model):
    """A browser's preflight from a named origin is allowed, from any other it is not; without
    origins no CORS header is ever sent."""
    def preflight(s, origin):
        req = urllib.request.Request(s.url + "/chat/completions", method="OPTIONS", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.headers.get("Access-Control-Allow-Origin")
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Access-Control-Allow-Origin")

    with _start(tiny_model, cors_origins=("http://localhost:3000",), api_key="k") as s:
        assert preflight(s, "http://localhost:3000") == (200, "http://localhost:3000")
        assert preflight(s, "http://evil.example")[1] is None
        assert _raw_headers(s, "/v1/models", {"Origin": "http://localhost:3000"})[0] == 401
    with _start(tiny_model) as s:
        assert preflight(s, "http://localhost:3000")[1] is None


def test_a_client_rotating_toolsets_cannot_evict_a_reused_agent():
    """A toolset used twice is protected: twenty new toolsets, each sent once, churn only the
    probation place, and the reused toolset's agent is never built again."""
    built = []

    def factory(model, tools, system, cache_dir):
        built.append(tools[0]["function"]["name"])
        return SimpleNamespace(name=built[-1])
    e = Engine(SimpleNamespace(session_pool_size=1), agents=4, agent_factory=factory)

    def tool(name):
        return [{"type": "function", "function": {"name": name, "parameters": {
            "type": "object", "properties": {}}}}]
    fixed = tool("fixed")
    assert e.agent_for("", fixed) is e.agent_for("", fixed)
    for i in range(20):    # five new toolsets between two requests of the fixed client
        e.agent_for("", tool(f"rotating{i}"))
        if i % 5 == 4:
            assert e.agent_for("", fixed).name == "fixed"
    assert built.count("fixed") == 1 and len(built) == 21
    assert len(e._agents) + len(e._probation) <= 4
    # a second client's toolset, reused, is protected too; a third protected one pushes the
    # least recently used protected agent back to probation, never past the four places
    for name in ("b", "c", "d"):
        e.agent_for("", tool(name))
        e.agent_for("", tool(name))
    assert len(e._agents) == 3 and len(e._agents) + len(e._probation) <= 4
