"""HTTP side: routes, JSON and server-sent events (Starlette on uvicorn).

A request is checked (openai_shapes), admitted (admission: a slot = a session), then run by the
engine in a worker thread. Its slot is given back when the worker finishes, whatever happened
to the connection meanwhile, so a client that goes away never leaks a session. A streamed reply
starts only once the worker has produced something: errors before the first token (a prompt
that does not fit, a bad schema) are still plain 4xx responses; an error after it becomes an
error event in the stream, never a silently cut connection.
"""
from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from . import openai_shapes as S
from .admission import Admission, Busy
from .engine import Engine
from .memory_plan import server_plan

MAX_BODY = 1 << 20          # bytes of a request body
DRAIN_LIMIT = 16 * MAX_BODY
BODY_SECONDS = 10.0         # to send a whole request body: a half-sent one must not hold a place
DEFAULT_QUEUE = 8
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
PAGE = Path(__file__).with_name("page.html")


def model_id(model) -> str:
    name = os.path.basename(getattr(model.gguf, "path", "") or "model")
    return name[:-5] if name.endswith(".gguf") else name


class _Cancelled(Exception):
    """Raised inside a worker's on_text when its client has gone: stops the decode early."""


class Server:
    """The application state: engine, admission, counters. `app` is the ASGI app."""

    def __init__(self, model, queue=DEFAULT_QUEUE, cache_dir=None, engine=None, name=None,
                 budget=None, api_key=None, hosts=LOOPBACK_NAMES, cors_origins=(),
                 access_log=None):
        """budget: bytes the whole server may use (a board's); the plan is checked against
        it here, before anything is served (MemoryBudgetError).
        api_key: when set, every route but /health needs "Authorization: Bearer <api_key>".
        hosts: the names the Host header may give (any IP address literal is also accepted),
        or None for any: a page on another site whose name is made to resolve to this
        machine (DNS rebinding) sends its own name, and is refused.
        cors_origins: web origins whose pages may call the API from a browser (none by
        default: a browser then refuses them every cross-origin request with a JSON body).
        access_log: a text stream that gets one line per request (method, path, status,
        prompt/cached/completion tokens, milliseconds), or None."""
        if api_key is not None and (not isinstance(api_key, str) or not api_key.strip()):
            raise ValueError("api_key must be a non-empty string")
        self.model = model
        self.name = name or model_id(model)
        self.engine = engine or Engine(model, cache_dir=cache_dir)
        sessions = self.engine.sessions

        def plan(n):
            return server_plan(model.plan, model.config, n, queue, self.engine.max_agents)
        # The pool was sized for the model alone; serving needs room too: fewer sessions
        # then, down to one (and if one does not fit, MemoryBudgetError).
        while budget is not None and sessions > 1 and not plan(sessions).fits(budget):
            sessions -= 1
        self.plan = plan(sessions)
        self.budget = budget
        if budget is not None:
            self.plan.check(budget)
        self.admission = Admission(sessions, queue)
        self.abandoned = 0      # non-streamed requests whose client left before the reply
        self.started = S.now()
        self._pool = ThreadPoolExecutor(max_workers=sessions, thread_name_prefix="er-decode")
        middleware = [Middleware(CORSMiddleware, allow_origins=list(cors_origins),
                                 allow_methods=["GET", "POST"],
                                 allow_headers=["Authorization", "Content-Type"])] \
            if cors_origins else []
        self.app = _InFlightLimit(Starlette(middleware=middleware, routes=[
            Route("/", self.page, methods=["GET"]),
            Route("/health", self.health, methods=["GET"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/edge/stats", self.stats, methods=["GET"]),
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
            Route("/v1/completions", self.completions, methods=["POST"]),
        ], exception_handlers={HTTPException: _http_error, Exception: _internal_error}),
            self.admission, api_key, hosts, access_log)

    # ---- simple routes ---------------------------------------------------------------------

    async def page(self, request):
        """A page to try the model in a browser (static, shipped in the package)."""
        return HTMLResponse(PAGE.read_bytes(), headers={
            "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline' 'self'; "
                                       "style-src 'unsafe-inline'"})

    async def health(self, request):
        return JSONResponse({"status": "ok", "model": self.name})

    async def models(self, request):
        return JSONResponse(S.models_list(self.name, self.started))

    async def stats(self, request):
        self.model.tracker.mark("serve")   # vm_hwm: the process's peak since it started
        body = {"model": self.name, "admission": self.admission.snapshot(),
                "abandoned": self.abandoned,
                "prefix_reuse": self.engine.stats(), "rss": self.model.tracker.summary()}
        body["memory_plan"] = self.plan.to_dict(self.budget)
        return JSONResponse(body)

    def _gone(self):
        self.abandoned += 1

    # ---- completions -----------------------------------------------------------------------

    async def chat(self, request):
        return await self._serve(request, S.parse_chat, self.engine.chat, self._chat_reply)

    async def completions(self, request):
        return await self._serve(request, S.parse_completion, self.engine.complete,
                                 self._completion_reply)

    async def _serve(self, request, parse, work, reply):
        try:
            p = parse(await _json_body(request))
            if p["model"] != self.name:
                raise S.RequestError(f"the model {p['model']!r} does not exist; this server "
                                     f"serves {self.name!r}", 404, "model", "model_not_found")
            since = await self.admission.acquire()
        except S.RequestError as e:
            return JSONResponse(e.body(), e.status)
        except Busy as e:
            return _busy(e)
        run = _Run(asyncio.get_running_loop(), request, self._gone)
        fut = run.start(self._pool, work, p)
        fut.add_done_callback(lambda f: self.admission.release(since))
        fut.add_done_callback(lambda f: _note_usage(request.scope, f))
        return await reply(p, run)

    async def _chat_reply(self, p, run):
        cid, created = S.new_id("chatcmpl"), S.now()
        if not p["stream"]:
            res, answered = await _whole(run)
            if answered is not None:
                return answered
            text, calls, reason, u = res
            return JSONResponse(S.chat_completion(cid, self.name, created, text,
                                                  S.wire_calls(calls), reason, u))

        def chunk(**kw):
            return S.chat_chunk(cid, self.name, created, **kw)

        def head():
            yield chunk(delta={"role": "assistant", "content": ""})

        def tail(res):
            _text, calls, reason, u = res
            for d in S.tool_call_deltas(S.wire_calls(calls)):
                yield chunk(delta=d)
            yield chunk(finish_reason=reason)
            if p["include_usage"]:
                yield chunk(u=u)

        return await run.stream(head, lambda piece: chunk(delta={"content": piece}), tail)

    async def _completion_reply(self, p, run):
        cid, created = S.new_id("cmpl"), S.now()
        if not p["stream"]:
            res, answered = await _whole(run)
            if answered is not None:
                return answered
            text, reason, u = res
            return JSONResponse(S.text_completion(cid, self.name, created, text, reason, u))

        def tail(res):
            _text, reason, u = res
            yield S.text_completion(cid, self.name, created, "", reason,
                                    u if p["include_usage"] else None)

        return await run.stream(lambda: iter(()),
                                lambda piece: S.text_completion(cid, self.name, created, piece,
                                                                None), tail)


async def _whole(run):
    """(result, None) of a non-streamed request, or (None, the response that answers instead):
    its error, or 499 when the client went away (nobody to answer)."""
    try:
        res = await run.result()
    except S.RequestError as e:
        return None, JSONResponse(e.body(), e.status)
    return (res, None) if res is not None else (None, Response(status_code=499))


class _Run:
    """One request's work in a worker thread, with its text pieces passed to the event loop."""

    WATCH_SECONDS = 0.25     # how often a waiting non-streamed request looks for its client

    def __init__(self, loop, request, on_gone):
        self.loop, self.request, self.on_gone = loop, request, on_gone
        self.events: asyncio.Queue = asyncio.Queue()
        self.cancelled = threading.Event()
        self.fut = None

    def start(self, pool, work, p):
        def on_text(piece):
            if self.cancelled.is_set():
                raise _Cancelled
            self.loop.call_soon_threadsafe(self.events.put_nowait, piece)

        self.fut = asyncio.wrap_future(pool.submit(_guarded, work, p, on_text), loop=self.loop)
        self.fut.add_done_callback(lambda f: self.events.put_nowait(None))   # None: finished
        return self.fut

    async def result(self):
        """The work's result; None if the client went away first (the decode then stops at
        its next piece of text instead of running to max_tokens for nobody)."""
        while not self.fut.done():
            await asyncio.wait({self.fut}, timeout=self.WATCH_SECONDS)
            if not self.fut.done() and await self.request.is_disconnected():
                self.cancelled.set()
                self.on_gone()
                break
        return await self.fut

    async def stream(self, head, piece_chunk, tail):
        first = await self.events.get()
        if first is None and self.fut.exception() is not None:
            e = self.fut.exception()
            if isinstance(e, S.RequestError):
                return JSONResponse(e.body(), e.status)
            raise e

        async def events():
            try:
                for c in head():
                    yield _sse(c)
                item = first
                while item is not None:
                    yield _sse(piece_chunk(item))
                    item = await self.events.get()
                try:
                    res = await self.fut
                except S.RequestError as e:
                    yield _sse(e.body())
                    return
                except Exception as e:   # after the headers: tell the client in the stream
                    yield _sse(S.error_body(f"{type(e).__name__}: {e}", "server_error"))
                    return
                for c in tail(res):
                    yield _sse(c)
                yield b"data: [DONE]\n\n"
            finally:
                self.cancelled.set()   # a client gone mid-stream stops the decode

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})


def _guarded(work, p, on_text):
    """work(p, on_text) with the runtime's bad-input errors as RequestError (400)."""
    from ..errors import ContextLengthError, NonFiniteLogitsError, SessionBusyError
    try:
        return work(p, on_text)
    except SessionBusyError as e:   # admission should prevent it; still an answer, not a 500
        raise S.RequestError(str(e), 503, None, "server_busy", "server_error") from None
    except ContextLengthError as e:
        raise S.RequestError(str(e), 400, None, "context_length_exceeded") from None
    except NonFiniteLogitsError:
        raise   # the model's fault, not the request's: a 500
    except ValueError as e:   # what the runtime refuses in a request (messages it cannot render)
        raise S.RequestError(str(e)) from None
    except _Cancelled:
        return None


def _sse(obj) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n"


def _note_usage(scope, fut):
    """Keep a finished request's token counts where the access log finds them."""
    if not fut.cancelled() and fut.exception() is None and fut.result() is not None:
        scope[_USAGE] = fut.result()[-1]


_USAGE = "edge_runtime.usage"


def _access_line(scope, status, ms) -> str:
    u = scope.get(_USAGE) or {}
    tokens = " ".join(f"{k}={int(u.get(k + '_tokens', 0))}"
                      for k in ("prompt", "cached", "completion")) if u else "-"
    return f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {scope['method']} " \
           f"{scope['path']} {status} {tokens} {ms:.0f}ms"


class _InFlightLimit:
    """In front of the routes: the Host and API key checks (before anything is read), then a
    bound on the requests being read or answered at once (each may hold a body of up to
    MAX_BODY): past slots + queue + ROOM a request is answered at once, before its body is
    read, with the same 503 + Retry-After as a full queue. /health is answered whatever the
    load, so a monitor sees a busy server as up."""
    ROOM = 8

    def __init__(self, app, admission, api_key=None, hosts=LOOPBACK_NAMES, access_log=None):
        self.app, self.admission, self.active, self.log = app, admission, 0, access_log
        self.key = None if api_key is None else api_key.encode()
        self.hosts = None if hosts is None else {h.lower() for h in hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.log is None:
            return await self._limited(scope, receive, send)
        t0, status = time.monotonic(), [499]   # 499 unless a response starts

        async def sent(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)
        try:
            await self._limited(scope, receive, sent)
        finally:
            print(_access_line(scope, status[0], 1000 * (time.monotonic() - t0)),
                  file=self.log, flush=True)

    async def _limited(self, scope, receive, send):
        refused = self._refused(scope)
        if refused is not None:
            return await refused(scope, receive, send)
        if scope["path"] == "/health":
            return await self.app(scope, receive, send)
        if self.active >= self.admission.slots + self.admission.queue + self.ROOM:
            self.admission.rejected += 1
            msg = f"{self.active} requests are already in flight"
            return await _busy(Busy(msg, self.admission.retry_after()))(scope, receive, send)
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1

    def _refused(self, scope):
        headers = dict(scope["headers"])
        if self.hosts is not None and not _host_ok(headers.get(b"host", b""), self.hosts):
            return JSONResponse(S.error_body(
                "the Host header names none of this server's hosts (serve --allow-host adds "
                "one)", "invalid_request_error", None, "host_not_allowed"), 421)
        if self.key is None or scope["path"] in ("/health", "/") or scope["method"] == "OPTIONS":
            return None     # (the page asks for the key; a CORS preflight never carries it)
        given = headers.get(b"authorization", b"")
        if not hmac.compare_digest(given, b"Bearer " + self.key):
            return JSONResponse(S.error_body(
                "a valid API key is needed (Authorization: Bearer <key>)",
                "invalid_request_error", None, "invalid_api_key"), 401,
                headers={"WWW-Authenticate": "Bearer"})
        return None


def _host_ok(raw: bytes, hosts) -> bool:
    """The Host header's name (port dropped) is an IP address literal or one of hosts."""
    try:
        host = raw.decode("ascii").strip().lower()
    except UnicodeDecodeError:
        return False
    name = host[1:host.index("]")] if host.startswith("[") and "]" in host else \
        host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return name in hosts


def _busy(e: Busy) -> JSONResponse:
    return JSONResponse(S.error_body(str(e), "server_error", None, "server_busy"), 503,
                        headers={"Retry-After": str(e.retry_after)})


async def _json_body(request: Request):
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":   # a form or text/plain post from a web page: not ours
        raise S.RequestError(f"the request body must be application/json, not "
                             f"{ctype or 'untyped'}", 415, code="unsupported_media_type")
    raw, size = bytearray(), 0

    async def read():
        nonlocal size
        async for part in request.stream():
            size += len(part)
            if size <= MAX_BODY:
                raw.extend(part)
            elif size > DRAIN_LIMIT:   # not worth reading on to answer politely
                break
    try:
        await asyncio.wait_for(read(), BODY_SECONDS)
    except asyncio.TimeoutError:
        raise S.RequestError(f"the request body did not arrive within {BODY_SECONDS:.0f} s",
                             408, code="request_timeout") from None
    if size > MAX_BODY:   # read to the end (up to DRAIN_LIMIT) so the client sees the 413
        raise S.RequestError(f"request body over {MAX_BODY} bytes", 413)
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise S.RequestError(f"the request body is not valid JSON: {e}") from None
    except RecursionError:
        raise S.RequestError("the request body is nested too deeply") from None


async def _http_error(request, exc):
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    return JSONResponse(S.error_body(f"{request.method} {request.url.path}: {exc.detail}",
                                     "invalid_request_error", None, code), exc.status_code)


async def _internal_error(request, exc):
    """A bug of ours: the client gets a reference, the log gets the traceback (the exception
    text may hold what another request sent)."""
    ref = uuid.uuid4().hex[:12]
    logging.getLogger("edge_runtime.server").error("internal error %s on %s %s", ref,
                                                    request.method, request.url.path,
                                                    exc_info=exc)
    return JSONResponse(S.error_body(f"internal error {ref} (the server log has the details)",
                                     "server_error"), 500)
