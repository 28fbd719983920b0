"""README.md's Python snippets run as written (on the real default model): the library one
in-process, the `openai` one against `edge-runtime serve`'s app started on a free port (its
URL is the only thing changed)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.model
README = Path(__file__).resolve().parents[1] / "README.md"


def _snippets() -> list:
    return re.findall(r"^```python\n(.*?)^```$", README.read_text(), re.M | re.S)


def test_the_readme_has_the_snippets_this_test_runs():
    got = _snippets()
    assert len(got) == 2 and "er.Model.load" in got[0] and "from openai import" in got[1]


def test_the_library_snippet_runs(default_model, capsys):
    exec(compile(_snippets()[0], "README.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0].strip() and "'peak_rss'" in out[1]


def test_the_openai_snippet_runs_against_the_server(default_model, capsys):
    pytest.importorskip("openai")
    pytest.importorskip("uvicorn")
    from edge_runtime import Model, server
    code = _snippets()[1]
    assert "http://localhost:8080/v1" in code
    m = Model.load(default_model, max_inference_len=1024, threads=1)
    with server.start(m) as s:
        exec(compile(code.replace("http://localhost:8080/v1", s.url), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "name='toggle_light'" in out and '"room": "kitchen"' in out, out
