"""One loaded model shared by several sessions; the GIL released in native compute; determinism.

All on the real default model (marked `model`): greedy ids of concurrent sessions equal those of
sequential runs; the file is mapped once however many sessions there are; a Python thread runs
while another is in a native step, and two sessions on two threads beat one thread doing both;
a seed fixes sampled output; greedy output does not depend on the thread count.
"""
from __future__ import annotations

import hashlib
import os
import threading
import time

import numpy as np
import pytest

from edge_runtime import Model

pytestmark = pytest.mark.model

PROMPTS = ["The capital of France is", "def fibonacci(n):", "Turn on the kitchen lights",
           "Once upon a time"]
N_NEW = 8


@pytest.fixture(scope="module")
def model(default_model):
    return Model.load(default_model, threads=1, max_inference_len=256)


def _greedy(session, prompt, n=N_NEW):
    return list(session.generate(prompt, max_tokens=n, temperature=0.0))


def _mappings(path):
    """(start, end) of every mapping of path in this process."""
    real = os.path.realpath(path)
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            if len(parts) == 6 and parts[5].strip() == real:
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                out.append((lo, hi))
    return out


def test_concurrent_sessions_match_sequential_and_share_one_mapping(model, default_model):
    maps_before = _mappings(default_model)   # other modules' models may map the file too
    base = model.gguf.address()
    mine = [(lo, hi) for lo, hi in maps_before if lo <= base < hi]
    assert len(mine) == 1 and mine[0][1] - mine[0][0] >= os.path.getsize(default_model)

    sequential = [_greedy(model.new_session(), p) for p in PROMPTS]
    assert len({tuple(s) for s in sequential}) == len(PROMPTS)   # the prompts do differ

    sessions = [model.new_session() for _ in PROMPTS]
    results = [None] * len(PROMPTS)
    errors = []
    start = threading.Barrier(len(PROMPTS))

    def run(i):
        try:
            start.wait()
            results[i] = _greedy(sessions[i], PROMPTS[i])
        except BaseException as e:   # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(PROMPTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert results == sequential
    # each session has its own KV state, and the weights are still the one mapping
    assert len({id(s._handle) for s in sessions}) == len(sessions)
    assert _mappings(default_model) == maps_before
    assert all(s.model.gguf is model.gguf for s in sessions)


def _prefill(session, n_tokens=96):
    session.reset()
    session.eval(list(range(1000, 1000 + n_tokens)))


def test_gil_is_released_during_native_compute(model):
    """A pure-Python counter keeps running while another thread is inside session.eval."""
    session = model.new_session()
    _prefill(session)   # warm the pages

    def count_for(seconds):
        n, end = 0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            n += 1
        return n

    t0 = time.perf_counter()
    _prefill(session)
    eval_s = time.perf_counter() - t0
    alone = count_for(eval_s)

    counted = []
    worker = threading.Thread(target=lambda: _prefill(session))
    worker.start()
    counted.append(count_for(eval_s * 0.8))
    worker.join()
    ratio = counted[0] / (alone * 0.8)
    print(f"counter ran at {ratio:.0%} of its solo rate during a {eval_s:.2f} s native eval")
    # With the GIL held for the whole call the counter would stall (a few switches only).
    assert ratio > 0.3


def _speedup(work_a, work_b):
    """(time of a then b) / (time of a and b on two threads)."""
    t0 = time.perf_counter()
    work_a()
    work_b()
    sequential = time.perf_counter() - t0
    threads = [threading.Thread(target=w) for w in (work_a, work_b)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sequential / (time.perf_counter() - t0)


def test_two_sessions_on_two_threads_are_faster_than_one_thread(model):
    """Sessions of 1 thread each: two in parallel vs the same two in turn. The box is shared, so
    each try is paired with what two GIL-free threads (sha256) get at that moment; tries where
    those do not get two cores' worth say nothing and are skipped."""
    a, b = model.new_session(), model.new_session()
    _prefill(a), _prefill(b)   # warm-up
    blob = os.urandom(8 << 20)

    def sha():
        for _ in range(8):
            hashlib.sha256(blob).digest()

    tries = []
    for _ in range(6):
        tries.append((_speedup(lambda: _prefill(a), lambda: _prefill(b)), _speedup(sha, sha)))
        if tries[-1][0] > 1.3 and tries[-1][1] > 1.4:
            break
    print("2 sessions x 1 thread on 2 threads vs in turn, (sessions, sha256) per try: "
          + ", ".join(f"({s:.2f}x, {h:.2f}x)" for s, h in tries)
          + f"; load average {os.getloadavg()[0]:.1f}")
    free = [s for s, h in tries if h > 1.4]
    if not free:
        pytest.skip("the shared box never had two free cores during the measurement")
    assert max(free) > 1.3


def test_same_seed_same_output(model):
    kw = dict(max_tokens=12, temperature=0.9, top_k=40, top_p=0.95)
    s1, s2 = model.new_session(), model.new_session()
    runs = [list(s.generate(PROMPTS[3], seed=1234, **kw)) for s in (s1, s2, s1)]
    assert runs[0] == runs[1] == runs[2]
    others = {tuple(s1.generate(PROMPTS[3], seed=seed, **kw)) for seed in (1, 2, 3)}
    assert len(others | {tuple(runs[0])}) > 1   # the seed does matter


def test_greedy_output_identical_across_thread_counts(default_model):
    """Each output row is reduced by one thread in a fixed order, so not only the ids but the
    logits are bit-identical for 1, 2 and 3 threads."""
    outs, logits = [], []
    for threads in (1, 2, 3):
        m = Model.load(default_model, threads=threads, max_inference_len=128)
        outs.append(list(m.generate(PROMPTS[0], max_tokens=16)))
        m.reset()
        logits.append(m.eval(m.tokenizer.encode(PROMPTS[1])))
    assert outs[0] == outs[1] == outs[2]
    assert np.array_equal(logits[0], logits[1]) and np.array_equal(logits[0], logits[2])
