"""`edge-runtime agent` refuses bad input with exit status 2 and one message (a JSON object on
stdout with --json) before any model is loaded."""
from __future__ import annotations

import json

import pytest

from edge_runtime import cli


@pytest.fixture(autouse=True)
def no_model(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the model must not be loaded for bad input")
    monkeypatch.setattr(cli, "_load_model", refuse)


def run(capsys, *argv):
    code = cli.main(["agent", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _module(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize("argv,message", [
    (["turn on the lights", "--max-steps", "0"], "--max-steps must be at least 1"),
    (["turn on the lights", "--max-steps", "-3"], "--max-steps must be at least 1"),
    ([""], "request is empty"),
    (["  \n\t "], "request is empty"),
    (["hi", "--tools", "/etc/passwd"], "not a Python module"),
    (["hi", "--tools", "/nonexistent/tools.py"], "no such file"),
    (["hi", "--tools", "/etc"], "no such file"),
])
def test_refused_with_exit_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert out == ""


def test_bad_tool_modules(capsys, tmp_path):
    cases = {
        "notes.txt": ("def f(x: int):\n    return x\n", "not a Python module"),
        "broken.py": ("def f(:\n", "cannot import"),
        "exits.py": ("import sys\nsys.exit(5)\n", "cannot import"),
        "empty.py": ("X = 1\n", "no TOOLS list"),
    }
    for name, (text, message) in cases.items():
        code, out, err = run(capsys, "hi", "--tools", _module(tmp_path, name, text))
        assert code == 2 and message in err, (name, err)


@pytest.mark.parametrize("argv,message", [
    (["hi", "--max-steps", "0"], "--max-steps"),
    (["", "--max-steps", "2"], "request is empty"),
    (["hi", "--tools", "/etc/passwd"], "not a Python module"),
])
def test_json_error_object(capsys, argv, message):
    code, out, err = run(capsys, *argv, "--json")
    assert code == 2
    obj = json.loads(out)
    assert obj["command"] == "agent" and message in obj["error"]
