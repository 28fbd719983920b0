"""The OpenAI wire format: request bodies checked and reduced to plain parameters, results and
errors built as the official client parses them. Pure functions over dicts; no HTTP, no model.

Only what the runtime can honour is accepted: `n` other than 1, logprobs, a logit bias,
presence or frequency penalties, a response format other than text, non-text content parts, an
unknown role or a field this server does not know are refused with a 400 naming the field,
never silently ignored. `user` (an end-user id for the provider's abuse checks) is the one
field accepted and not used: there is nothing here for it to do.
"""
from __future__ import annotations

import json
import math
import time
import uuid

from ..agent import TOOL_CHOICES
from ..calls.content import content_text
from ..calls.json_reply import reply_schema


class RequestError(Exception):
    """A request the server refuses: becomes an OpenAI error object with this HTTP status."""

    def __init__(self, message, status=400, param=None, code=None, type="invalid_request_error"):
        super().__init__(message)
        self.status, self.param, self.code, self.type = status, param, code, type

    def body(self) -> dict:
        return error_body(str(self), self.type, self.param, self.code)


def error_body(message, type="invalid_request_error", param=None, code=None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


ROLES = ("system", "developer", "user", "assistant", "tool")
MAX_STOP = 4   # as the OpenAI API


# ---- request fields ----------------------------------------------------------------------

def _number(body, key, default, lo, hi, integer=False):
    v = body.get(key, default)
    if v is None:
        return default
    kind = int if integer else (int, float)
    if isinstance(v, bool) or not isinstance(v, kind) or not math.isfinite(v) or not lo <= v <= hi:
        what = "an integer" if integer else "a number"
        raise RequestError(f"'{key}' must be {what} between {lo} and {hi}, got {v!r}", param=key)
    return v


def _stop(body):
    stop = body.get("stop")
    if stop is None:
        return None
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop) \
            or len(stop) > MAX_STOP:
        raise RequestError(f"'stop' must be a non-empty string or a list of at most {MAX_STOP} "
                           f"non-empty strings", param="stop")
    return stop


# Per request: a toolset is the model's prefix, computed (and snapshotted) once per agent; these
# keep one request from building an agent that serves nobody else at a cost to everyone.
MAX_TOOLS, MAX_TOOLS_BYTES = 64, 64 << 10
CHAT_FIELDS = {"model", "messages", "tools", "tool_choice", "parallel_tool_calls", "stream",
               "stream_options", "max_tokens", "max_completion_tokens", "temperature", "top_p",
               "seed", "stop", "n", "logprobs", "top_logprobs", "logit_bias", "presence_penalty",
               "frequency_penalty", "response_format", "user"}
COMPLETION_FIELDS = {"model", "prompt", "stream", "stream_options", "max_tokens", "temperature",
                     "top_p", "seed", "stop", "n", "best_of", "logprobs", "echo", "suffix",
                     "logit_bias", "presence_penalty", "frequency_penalty", "user"}
# Values that ask for nothing: a field absent or set to these is honoured by doing nothing.
_NEUTRAL = {"logit_bias": (None, {}), "presence_penalty": (None, 0), "frequency_penalty": (None, 0)}


def _known(body, fields):
    for key in body:
        if key not in fields:
            raise RequestError(f"unknown field {key!r}: this server does not know it",
                               param=str(key), code="unsupported_parameter")


def _unsupported(body, fields):
    for key, ok in fields.items():
        if key in body and body[key] not in ok:
            raise RequestError(f"'{key}'={body[key]!r} is not supported by this server",
                               param=key, code="unsupported_parameter")


def _sampling(body, max_tokens_default):
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    key = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    return {
        "max_tokens": _number({key: max_tokens}, key, max_tokens_default, 1, 1 << 20, True),
        "temperature": float(_number(body, "temperature", 1.0, 0.0, 2.0)),
        "top_p": _top_p(body),
        "seed": _number(body, "seed", None, 0, (1 << 64) - 1, True),
        "stop": _stop(body),
    }


def _top_p(body):
    v = float(_number(body, "top_p", 1.0, 0.0, 1.0))
    if v == 0.0:     # no token has mass within 0: ask for temperature 0 to decode greedily
        raise RequestError("'top_p' must be above 0 (for greedy decoding set 'temperature' to "
                           "0)", param="top_p")
    return v


def _stream(body):
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError("'stream' must be a boolean", param="stream")
    opts = body.get("stream_options") or {}
    if not isinstance(opts, dict):
        raise RequestError("'stream_options' must be an object", param="stream_options")
    return stream, bool(opts.get("include_usage", False))


def _text_content(content, where):
    """Message content as text (calls.content: the rule the formats render by)."""
    try:
        return content_text(content)
    except ValueError as e:
        raise RequestError(f"{where}: {e}", param=where) from None


def _tool_calls(calls, where):
    if not isinstance(calls, list):
        raise RequestError(f"{where}: must be a list", param=where)
    out = []
    for j, c in enumerate(calls):
        here = f"{where}[{j}]"
        fn = c.get("function") if isinstance(c, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) \
                or not isinstance(c.get("id"), str):
            raise RequestError(f"{here}: needs 'id' and 'function' with a 'name'", param=here)
        args = fn.get("arguments", "{}")
        try:
            parsed = json.loads(args) if isinstance(args, str) else args
        except ValueError:
            raise RequestError(f"{here}: 'arguments' is not valid JSON", param=here) from None
        if not isinstance(parsed, dict):
            raise RequestError(f"{here}: 'arguments' must be a JSON object", param=here)
        out.append({"id": c["id"], "type": "function",
                    "function": {"name": fn["name"], "arguments": json.dumps(parsed)}})
    return out


def _messages(body):
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise RequestError("'messages' must be a non-empty list", param="messages")
    out = []
    for i, m in enumerate(msgs):
        where = f"messages[{i}]"
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise RequestError(f"{where}: 'role' must be one of {', '.join(ROLES)}", param=where)
        msg = {"role": m["role"], "content": _text_content(m.get("content"), where + ".content")}
        if m["role"] == "assistant" and m.get("tool_calls"):
            msg["tool_calls"] = _tool_calls(m["tool_calls"], where + ".tool_calls")
        if m["role"] == "tool":
            if not isinstance(m.get("tool_call_id"), str):
                raise RequestError(f"{where}: a tool message needs 'tool_call_id'", param=where)
            msg["tool_call_id"] = m["tool_call_id"]
        out.append(msg)
    return out


def _tools(body):
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list) or not all(isinstance(t, dict) and t.get("type") == "function"
                                              and isinstance(t.get("function"), dict)
                                              for t in tools):
        raise RequestError("'tools' must be a list of {\"type\": \"function\", \"function\": "
                           "{...}} objects", param="tools")
    if len(tools) > MAX_TOOLS:
        raise RequestError(f"{len(tools)} tools: at most {MAX_TOOLS} per request",
                           param="tools")
    size = len(json.dumps(tools))
    if size > MAX_TOOLS_BYTES:
        raise RequestError(f"the tools take {size} bytes as JSON: at most {MAX_TOOLS_BYTES}",
                           param="tools")
    return tools


def _tool_choice(body, tools):
    choice = body.get("tool_choice")
    if choice is None:
        return "auto" if tools else "none"
    if isinstance(choice, str) and choice in TOOL_CHOICES:
        if choice != "none" and not tools:
            raise RequestError(f"tool_choice '{choice}' needs 'tools'", param="tool_choice")
        return choice
    fn = choice.get("function") if isinstance(choice, dict) and choice.get("type") == "function" \
        else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise RequestError("'tool_choice' must be 'auto', 'required', 'none' or "
                           "{\"type\": \"function\", \"function\": {\"name\": ...}}",
                           param="tool_choice")
    if fn["name"] not in {t["function"].get("name") for t in tools}:
        raise RequestError(f"tool_choice names {fn['name']!r}, which is not in 'tools'",
                           param="tool_choice")
    return {"type": "function", "function": {"name": fn["name"]}}


def parse_chat(body) -> dict:
    """A /v1/chat/completions body -> {model, messages, tools, tool_choice,
    parallel_tool_calls, stream, include_usage, max_tokens, temperature, top_p, seed, stop}."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    _known(body, CHAT_FIELDS)
    _unsupported(body, {"n": (1, None), "logprobs": (False, None), "top_logprobs": (None, 0),
                        **_NEUTRAL})
    parallel = body.get("parallel_tool_calls", True)
    if parallel is None:
        parallel = True
    if not isinstance(parallel, bool):
        raise RequestError("'parallel_tool_calls' must be a boolean", param="parallel_tool_calls")
    tools = _tools(body)
    stream, include_usage = _stream(body)
    sampling = _sampling(body, None)
    return {"model": _model(body), "messages": _messages(body), "tools": tools,
            "tool_choice": _tool_choice(body, tools), "parallel_tool_calls": parallel,
            "stream": stream, "include_usage": include_usage,
            "response_format": _response_format(body, tools, sampling["stop"]), **sampling}


def _response_format(body, tools, stop):
    """None (text), or the canonical schema the reply is a JSON value of (json_object: any
    object). The schema is enforced whatever `strict` says: every reply matches it."""
    rf = body.get("response_format")
    if rf is None:
        return None
    kind = rf.get("type") if isinstance(rf, dict) else None
    if kind == "text":
        return None
    if kind not in ("json_object", "json_schema"):
        raise RequestError("'response_format' must be {\"type\": \"text\"}, {\"type\": "
                           "\"json_object\"} or {\"type\": \"json_schema\", \"json_schema\": "
                           "{\"name\": ..., \"schema\": {...}}}", param="response_format")
    if tools:
        raise RequestError("'response_format' JSON and 'tools' together are not supported: "
                           "a reply is either calls or one JSON value", param="response_format",
                           code="unsupported_parameter")
    if stop:
        raise RequestError("'stop' with a JSON 'response_format' is not supported (a stop "
                           "string would cut the JSON short)", param="stop",
                           code="unsupported_parameter")
    schema = None
    if kind == "json_schema":
        spec = rf.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise RequestError("'response_format.json_schema' needs a 'schema' object",
                               param="response_format")
        extra = sorted(map(str, set(spec) - {"name", "schema", "strict", "description"}))
        if extra or not isinstance(spec.get("name", ""), str) or \
                not isinstance(spec.get("strict", False), (bool, type(None))):
            raise RequestError("'response_format.json_schema' has 'name', 'description', "
                               "'schema' and 'strict' (a boolean)" +
                               (f", not {extra[0]!r}" if extra else ""), param="response_format")
        schema = spec["schema"]
    try:
        return reply_schema(schema)
    except ValueError as e:
        raise RequestError(f"response_format: {e}", param="response_format") from None


def parse_completion(body) -> dict:
    """A /v1/completions body -> {model, prompt, stream, include_usage, max_tokens, ...}."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    _known(body, COMPLETION_FIELDS)
    _unsupported(body, {"n": (1, None), "best_of": (1, None), "logprobs": (None, 0),
                        "echo": (False, None), "suffix": (None, ""), **_NEUTRAL})
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise RequestError("'prompt' must be a non-empty string (one prompt per request)",
                           param="prompt")
    stream, include_usage = _stream(body)
    return {"model": _model(body), "prompt": prompt, "stream": stream,
            "include_usage": include_usage, **_sampling(body, 16)}


def _model(body):
    m = body.get("model")
    if not isinstance(m, str) or not m:
        raise RequestError("'model' must be a non-empty string", param="model")
    return m


# ---- responses ---------------------------------------------------------------------------

def new_id(prefix) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def wire_calls(calls) -> list:
    """Agent calls [{"name", "arguments": dict}] as OpenAI tool_calls, each with a fresh id."""
    return [{"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
             "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
            for c in calls]


def usage(u) -> dict:
    p, c = int(u["prompt_tokens"]), int(u["completion_tokens"])
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c,
            "prompt_tokens_details": {"cached_tokens": int(u.get("cached_tokens", 0))}}


def chat_completion(cid, model, created, text, tool_calls, finish_reason, u) -> dict:
    message = {"role": "assistant", "content": text if text or not tool_calls else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"id": cid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason,
                         "logprobs": None}],
            "usage": usage(u)}


def chat_chunk(cid, model, created, delta=None, finish_reason=None, u=None) -> dict:
    """One chat.completion.chunk; with u (and no delta) the usage-only chunk that ends a
    stream when stream_options.include_usage is set."""
    choices = [] if u is not None else [{"index": 0, "delta": delta or {},
                                         "finish_reason": finish_reason, "logprobs": None}]
    chunk = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
             "choices": choices}
    if u is not None:
        chunk["usage"] = usage(u)
    return chunk


def tool_call_deltas(tool_calls) -> list:
    """Streamed form of complete tool calls: one delta per call, with its index."""
    return [{"tool_calls": [{"index": i, **c}]} for i, c in enumerate(tool_calls)]


def text_completion(cid, model, created, text, finish_reason, u=None) -> dict:
    """A text_completion; without u, as one streamed chunk."""
    d = {"id": cid, "object": "text_completion", "created": created, "model": model,
         "choices": [{"index": 0, "text": text, "finish_reason": finish_reason,
                      "logprobs": None}]}
    if u is not None:
        d["usage"] = usage(u)
    return d


def models_list(model_id, created) -> dict:
    return {"object": "list", "data": [{"id": model_id, "object": "model", "created": created,
                                        "owned_by": "edge_runtime"}]}


def now() -> int:
    return int(time.time())
