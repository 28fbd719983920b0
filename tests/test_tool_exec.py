"""Tool execution that cannot lose the outcome (edge_runtime.tool_exec): hostile results,
hostile exceptions, and the timeout rule, with side-effect counters."""
from __future__ import annotations

import json
import math
import threading

import pytest

from edge_runtime.tool_exec import (MAX_ITEMS, MAX_RESULT_CHARS, TRUNCATED, ToolRunner,
                                    plain)


class BadStr:
    def __str__(self):
        raise RuntimeError("no str")


class BadBoth:
    def __str__(self):
        raise RuntimeError("no str")

    def __repr__(self):
        raise RuntimeError("no repr")


class BadExc(Exception):
    def __str__(self):
        raise RuntimeError("exception cannot print itself")


class BadExcBoth(BadExc):
    def __repr__(self):
        raise RuntimeError("nor repr")


class Weird(str):
    def __str__(self):
        raise RuntimeError("str subclass that cannot print")


def cyclic_list():
    x = [1]
    x.append(x)
    return x


def cyclic_dict():
    d = {"a": 1}
    d["self"] = d
    return d


def wide_dag():
    a = ["x"]
    for _ in range(10):
        a = [a] * 64          # 64**10 paths if expanded
    return a


def is_plain(v) -> bool:
    if v is None or isinstance(v, (bool, str)):
        return type(v) in (type(None), bool, str)
    if isinstance(v, (int, float)):
        return type(v) in (int, float) and math.isfinite(v)
    if isinstance(v, list):
        return type(v) is list and all(is_plain(x) for x in v)
    if isinstance(v, dict):
        return type(v) is dict and all(type(k) is str and is_plain(x) for k, x in v.items())
    return False


RESULTS = [
    ("bad __str__", BadStr(), lambda r: r.startswith("<__main__") or "BadStr" in r),
    ("bad __str__ and __repr__", BadBoth(), lambda r: r == "<BadBoth object>"),
    ("str subclass", Weird("hello"), lambda r: r == "hello"),
    ("cyclic list", cyclic_list(), lambda r: r == [1, "<cycle>"]),
    ("cyclic dict", cyclic_dict(), lambda r: r == {"a": 1, "self": "<cycle>"}),
    ("bytes", b"caf\xc3\xa9 \xff", lambda r: r == "café \ufffd"),
    ("10 MB string", "x" * 10_000_000,
     lambda r: r.endswith(TRUNCATED) and len(r) == MAX_RESULT_CHARS + len(TRUNCATED)),
    ("nan and infinities", [math.nan, math.inf, -math.inf, 1.5],
     lambda r: r == ["NaN", "Infinity", "-Infinity", 1.5]),
    ("lone surrogate", "a\ud800b", lambda r: r == "a?b"),
    ("huge int", 10 ** 5000, lambda r: isinstance(r, str) and "bits" in r),
    ("tuple and set", (1, frozenset([2])), lambda r: r == [1, [2]]),
    ("non-str keys", {1: "a", (2, 3): "b"}, lambda r: r == {"1": "a", "(2, 3)": "b"}),
    ("long list", list(range(1000)),
     lambda r: len(r) == MAX_ITEMS + 1 and r[-1].endswith(f"{1000 - MAX_ITEMS} more items")),
    ("wide shared structure", wide_dag(), lambda r: isinstance(r, (list, str))),
    ("deep nesting", json.loads("[" * 500 + "]" * 500), lambda r: "<...>" in json.dumps(r)),
    ("plain dict", {"ok": True, "n": 3, "s": "x", "none": None},
     lambda r: r == {"ok": True, "n": 3, "s": "x", "none": None}),
]


@pytest.mark.parametrize("what,value,check", RESULTS, ids=[r[0] for r in RESULTS])
def test_results_become_plain(what, value, check):
    calls = []

    def tool():
        calls.append(1)
        return value

    rec = ToolRunner({"t": tool}, timeout=30).call("t", {})
    assert calls == [1]
    assert rec["status"] == "ok" and rec["name"] == "t" and rec["arguments"] == {}
    r = rec["result"]
    assert is_plain(r), r
    assert check(r), (what, str(r)[:200])
    text = r if isinstance(r, str) else json.dumps(r, ensure_ascii=False, allow_nan=False)
    text.encode("utf-8")                               # valid UTF-8 text
    assert len(text) <= MAX_RESULT_CHARS + len(TRUNCATED)


def test_plain_never_raises_on_a_container_that_breaks():
    class BadList(list):
        def __len__(self):
            raise RuntimeError("len")
    r = plain(BadList([1]))
    assert isinstance(r, str) and "unreadable" in r


@pytest.mark.parametrize("exc,expect", [
    (ValueError("bad value"), "ValueError: bad value"),
    (BadExc("x"), "BadExc: "),                       # its repr still works
    (BadExcBoth("x"), "BadExcBoth: <BadExcBoth object>"),
    (KeyboardInterrupt(), "KeyboardInterrupt"),
    (SystemExit(3), "SystemExit: 3"),
])
def test_exception_is_an_error_result(exc, expect):
    def tool(n: int):
        raise exc
    rec = ToolRunner({"t": tool}, timeout=30).call("t", {"n": 1})
    assert rec["status"] == "error"
    assert isinstance(rec["result"], dict) and rec["result"]["error"].startswith(expect)


def test_wrong_arguments_are_an_error_result():
    rec = ToolRunner({"t": lambda a: a}, timeout=30).call("t", {"b": 1})
    assert rec["status"] == "error" and "TypeError" in rec["result"]["error"]


def test_timed_out_call_is_not_run_again_in_the_run():
    started, release = [], threading.Event()

    def slow(room: str):
        started.append(room)
        release.wait(60)
        return "done"

    run = ToolRunner({"slow": slow}, timeout=0.2)
    first = run.call("slow", {"room": "vault"})
    assert first["status"] == "timeout" and "timed out" in first["result"]["error"]
    again = run.call("slow", {"room": "vault"})
    assert again["status"] == "skipped" and again["result"]["error"].startswith("not run")
    assert started == ["vault"]                      # the action happened once
    other = run.call("slow", {"room": "hall"})       # different arguments do run
    assert other["status"] == "timeout" and started == ["vault", "hall"]
    release.set()
    fresh = ToolRunner({"slow": slow}, timeout=30).call("slow", {"room": "vault"})
    assert fresh["status"] == "ok" and fresh["result"] == "done"   # a new run starts clean
    assert started == ["vault", "hall", "vault"]


def test_argument_order_does_not_evade_the_rule():
    count = []
    gate = threading.Event()

    def slow(a: int, b: int):
        count.append((a, b))
        gate.wait(60)

    run = ToolRunner({"slow": slow}, timeout=0.2)
    assert run.call("slow", {"a": 1, "b": 2})["status"] == "timeout"
    assert run.call("slow", {"b": 2, "a": 1})["status"] == "skipped"
    assert count == [(1, 2)]
    gate.set()


def test_hanging_str_counts_as_a_timeout():
    gate = threading.Event()

    class Hangs:
        def __str__(self):
            gate.wait(60)
            return "late"

    rec = ToolRunner({"t": lambda: Hangs()}, timeout=0.2).call("t", {})
    gate.set()
    assert rec["status"] == "timeout"


def test_bad_timeout_refused():
    for t in (0, -1, "1", None):
        with pytest.raises(ValueError):
            ToolRunner({}, timeout=t)
