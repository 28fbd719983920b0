"""The page at `/` in a real headless browser (Debian's chromium, which `.ci/run` installs):
it lists the model, streams a reply, shows the calls, the memory plan and RSS from
/v1/edge/stats, asks for the API key the server wants, and shows text as text."""
from __future__ import annotations

import shutil
import subprocess
import urllib.parse

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from edge_runtime import Model, server  # noqa: E402
from edge_runtime.server.engine import Engine  # noqa: E402
from test_server_http import ScriptedAgent, _raw  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt install chromium)")


@pytest.fixture(scope="module")
def tiny_model(tiny_gguf_factory):
    return Model.load(tiny_gguf_factory(), threads=1, max_inference_len=96)


def _page(srv, ask) -> str:
    """The page's DOM once its scripts have run (the request sent with ?ask=)."""
    url = srv.url.removesuffix("/v1") + "/?ask=" + urllib.parse.quote(ask)
    # virtual time runs on while the busy server answers (CI runs other tests beside this one):
    # 30 s of it ran out before the page was ready there; idle, virtual time costs no real time
    r = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                        "--virtual-time-budget=120000", "--dump-dom", url],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'data-ready="1"' in r.stdout, r.stdout[-3000:]
    return r.stdout


def _start(model, **kw):
    return server.start(model, engine=Engine(model, agent_factory=ScriptedAgent), **kw)


def test_the_page_streams_a_reply_and_shows_calls_and_memory(tiny_model):
    with _start(tiny_model) as s:
        status, _, _ = _raw(s, "/v1/models")
        assert status == 200
        dom = _page(s, "call two tools")
        assert f'<small id="model">{s.server.name}</small>' in dom
        assert '<div class="call">-&gt; toggle_light({"city": "Paris"})</div><div class="call">' \
               '-&gt; toggle_light({"minutes": 3})</div>' in dom        # the scripted two calls
        assert "memory plan " in dom and "peak RSS " in dom and "requests 1" in dom
        dom = _page(s, "hello <b>there</b>")     # echoed back by the scripted agent, streamed
        assert '<div class="assistant">hello &lt;b&gt;there&lt;/b&gt;</div>' in dom
        assert "<b>there</b>" not in dom


def test_the_page_loads_without_the_key_and_asks_for_it(tiny_model):
    with _start(tiny_model, api_key="secret") as s:
        dom = _page(s, "hi")
        assert 'class="error">models: a valid API key is needed' in dom
        assert "stats: a valid API key is needed" in dom
