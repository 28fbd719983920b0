"""`edge-runtime serve`: an OpenAI-compatible HTTP server over one model (the [server] extra).

    srv = start(model)            # in a background thread, on a free loopback port
    srv.url                       # "http://127.0.0.1:PORT/v1"
    srv.stop()
    serve(model, port=8080)       # the same, in the foreground until interrupted

Modules: openai_shapes (wire format), admission (slots and queue), engine (agents, sessions),
app (routes, SSE).
"""
from __future__ import annotations

import sys
import threading
import time

from .app import LOOPBACK_NAMES, Server, model_id

__all__ = ["LOOPBACK_NAMES", "Server", "serve", "start", "Running", "model_id"]


def _uvicorn_server(model, host, port, access_log=False, **kw):
    import uvicorn
    srv = Server(model, access_log=sys.stdout if access_log else None, **kw)
    # No limit_concurrency: uvicorn's own 503 is plain text without Retry-After and counts
    # idle keep-alive connections; the app bounds requests in flight itself (_InFlightLimit).
    config = uvicorn.Config(srv.app, host=host, port=port, log_level="warning",
                            access_log=False, lifespan="off", timeout_keep_alive=30)
    return srv, uvicorn.Server(config)


def serve(model, host="127.0.0.1", port=8080, access_log=False, **kw):
    """Serve until interrupted (Ctrl-C). access_log: a line per request on stdout (method,
    path, status, prompt/cached/completion tokens, milliseconds). kw: queue,
    cache_dir, budget, engine, api_key, hosts (see Server)."""
    _srv, server = _uvicorn_server(model, host, port, access_log, **kw)
    server.run()


class Running:
    """A server in a background thread (tests, notebooks): .url, .port, .server, .stop()."""

    def __init__(self, srv, server, thread):
        self.server, self._uv, self._thread = srv, server, thread
        sock = server.servers[0].sockets[0]
        self.host, self.port = sock.getsockname()[:2]
        self.url = f"http://{self.host}:{self.port}/v1"

    def stop(self, timeout=30.0):
        self._uv.should_exit = True
        self._thread.join(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start(model, host="127.0.0.1", port=0, timeout=30.0, **kw) -> Running:
    """Start serving in a daemon thread; returns once the socket listens (port 0: a free one)."""
    srv, server = _uvicorn_server(model, host, port, **kw)
    t = threading.Thread(target=server.run, name="edge-runtime-serve", daemon=True)
    t.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not t.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start on {host}:{port}")
        time.sleep(0.01)
    return Running(srv, server, t)
