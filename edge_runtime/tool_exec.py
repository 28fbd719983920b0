"""Running the agent's tools so that the outcome is never lost.

A tool is user code: it may raise, hang, or return anything (objects whose __str__ raises,
cycles, bytes, a 10 MB string, NaN). Whatever happens, `ToolRunner.call` returns a record
{"name", "arguments", "result", "status"} whose result is a plain, text-safe value:

- "ok": result is the return value made plain (`plain`): str, finite int/float, bool, None,
  list, dict with str keys. Non-finite floats become the strings "NaN"/"Infinity"/"-Infinity",
  bytes are decoded as UTF-8 (invalid bytes replaced), other objects become their str() (else
  repr(), else "<Type object>"); a cycle becomes "<cycle>", nesting past MAX_DEPTH "<...>",
  containers keep MAX_ITEMS items, and after MAX_NODES values the rest reads "<...>". If the JSON text of the whole result is longer than
  MAX_RESULT_CHARS, the result becomes that text cut at MAX_RESULT_CHARS plus TRUNCATED.
- "error": the tool raised; result is {"error": "Type: message"} (never None, even when the
  exception's own __str__ raises).
- "timeout": the tool did not return within `timeout` seconds. Python cannot stop a thread, so
  it may still be running and may still act. Rule: within one run (one ToolRunner) a call that
  timed out is never started again with the same arguments (same name, equal JSON arguments);
  such a repeat gets status "skipped" and an error result saying so, without running.
The conversion runs in the tool's worker thread, so a __str__ that hangs counts as the tool
hanging.
"""
from __future__ import annotations

import itertools
import json
import math
import threading

MAX_RESULT_CHARS = 4096     # JSON text of one result
MAX_ITEMS = 64              # items of one list / dict in a result
MAX_DEPTH = 8               # nesting of a result
MAX_NODES = 512             # values read from one result (shared sub-objects count each time)
TRUNCATED = " ...[truncated]"


def safe_text(obj) -> str:
    """str(obj), else repr(obj), else "<Type object>": never raises."""
    for show in (str, repr):
        try:
            text = show(obj)
            if isinstance(text, str):
                return _clean(text)
        except BaseException:      # noqa: BLE001 - user code failing to print itself
            pass
    return f"<{type(obj).__name__} object>"


def _clean(s: str) -> str:
    """An exact str, valid UTF-8 (lone surrogates replaced), cut at MAX_RESULT_CHARS."""
    s = str.__str__(s)
    if len(s) > MAX_RESULT_CHARS:
        s = s[:MAX_RESULT_CHARS] + TRUNCATED
    return s.encode("utf-8", "replace").decode("utf-8")


def error_text(e: BaseException) -> str:
    return f"{type(e).__name__}: {safe_text(e)}"


def plain(value):
    """value as a JSON-safe plain value within the caps above; never raises."""
    try:
        out = _plain(value, MAX_DEPTH, set(), [MAX_NODES])
        text = json.dumps(out, ensure_ascii=False, allow_nan=False)
    except BaseException as e:    # noqa: BLE001 - a container that breaks while being read
        return f"<unreadable {type(value).__name__}: {error_text(e)}>"
    if isinstance(out, (list, dict)) and len(text) > MAX_RESULT_CHARS:
        return text[:MAX_RESULT_CHARS] + TRUNCATED      # (a str is already cut to size)
    return out


def _plain(v, depth, seen, budget):
    budget[0] -= 1
    if budget[0] < 0:
        return "<...>"
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, int):
        v = int.__int__(v)
        return v if v.bit_length() <= 64 else safe_text(v) if v.bit_length() < 10000 \
            else f"<int of {v.bit_length()} bits>"
    if isinstance(v, float):
        v = float.__float__(v)
        return v if math.isfinite(v) else "NaN" if v != v else \
            ("Infinity" if v > 0 else "-Infinity")
    if isinstance(v, str):
        return _clean(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return _clean(bytes(v[:MAX_RESULT_CHARS * 4]).decode("utf-8", "replace"))
    if not isinstance(v, (dict, list, tuple, set, frozenset)):
        return safe_text(v)
    if id(v) in seen:
        return "<cycle>"
    if depth <= 0:
        return "<...>"
    seen.add(id(v))
    try:
        n = len(v)
        if isinstance(v, dict):
            out = {_key(k): _plain(x, depth - 1, seen, budget)
                   for k, x in itertools.islice(dict.items(v), MAX_ITEMS)}
            if n > MAX_ITEMS:
                out[TRUNCATED.strip()] = f"{n - MAX_ITEMS} more keys"
            return out
        out = [_plain(x, depth - 1, seen, budget) for x in itertools.islice(v, MAX_ITEMS)]
        if n > MAX_ITEMS:
            out.append(f"{TRUNCATED.strip()} {n - MAX_ITEMS} more items")
        return out
    finally:
        seen.discard(id(v))


def _key(k) -> str:
    return _clean(k) if isinstance(k, str) else safe_text(k)


def _call_key(name, args) -> str:
    try:
        return name + json.dumps(args, sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError):
        return name + safe_text(args)


class ToolRunner:
    """Executes tools for one agent run: ToolRunner({name: callable}, timeout).call(name, args)."""

    def __init__(self, functions: dict, timeout: float):
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ValueError("timeout must be a positive number of seconds")
        self.functions, self.timeout = functions, float(timeout)
        self.timed_out = set()       # call keys that timed out in this run

    def call(self, name: str, args: dict) -> dict:
        key = _call_key(name, args)
        if key in self.timed_out:
            return self._record(name, args, "skipped", {
                "error": "not run: the same call timed out earlier in this run"})
        box = {}

        def work():
            try:
                value = self.functions[name](**args)
            except BaseException as e:     # noqa: BLE001 - the tool's failure is data
                box["error"] = error_text(e)
                return
            box["value"] = plain(value)

        try:
            worker = threading.Thread(target=work, daemon=True, name=f"tool {name}")
            worker.start()
        except RuntimeError as e:          # no thread could be started: nothing ran
            return self._record(name, args, "error", {"error": error_text(e)})
        worker.join(self.timeout)
        if worker.is_alive():
            self.timed_out.add(key)
            return self._record(name, args, "timeout",
                                {"error": f"timed out after {self.timeout:g} s"})
        if "error" in box or "value" not in box:
            return self._record(name, args, "error",
                                {"error": box.get("error", "the tool ended without a result")})
        return self._record(name, args, "ok", box["value"])

    @staticmethod
    def _record(name, args, status, result):
        return {"name": name, "arguments": args, "result": result, "status": status}
