"""A careless or hostile caller: fork after load, Ctrl-C inside an eval, and arguments handed
straight to the C door (issue 13, items 2, 3 and 6; the rows of docs/RELIABILITY.md).

Every C-door check is hit from Python and must end in a clear exception, never a crash:
tools/sanitize.sh runs this file under ASan/UBSan.
"""
from __future__ import annotations

import gc
import multiprocessing
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import types
import weakref

import numpy as np
import pytest

from edge_runtime import Model, _native
from edge_runtime import decoder as model_mod
from edge_runtime.config import UnsupportedModelError
from edge_runtime.errors import SessionInterruptedError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(n_layer=1, n_embd=32, n_head=2, n_head_kv=1, head_dim=16, n_ff=64, n_vocab=300,
            context_length=64, sliding_window=8)
IDS = [2, 10, 11, 57, 200, 31, 7, 99, 150, 3, 42, 18]


@pytest.fixture(scope="module")
def tiny(tiny_gguf_factory):
    return tiny_gguf_factory(**TINY)


def _run(session, *chunks):
    """Logits after evaluating each chunk in turn on a reset session."""
    session.reset()
    return [session.eval(c) for c in chunks][-1]


# ---- fork -------------------------------------------------------------------------------------

def _read_or_kill(fd, pid, nbytes, seconds=300):
    """nbytes from the child's pipe; a child that hangs is killed and the test fails."""
    data = b""
    while len(data) < nbytes:
        ready, _, _ = select.select([fd], [], [], seconds)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung in eval")
        chunk = os.read(fd, nbytes - len(data))
        if not chunk:
            break
        data += chunk
    os.waitpid(pid, 0)
    return data


def test_forked_child_evaluates_like_the_parent(tiny, monkeypatch):
    """After Model.load(threads=2) and an eval (the pool's workers run), a fork()ed child -
    where those workers do not exist - continues the inherited state and gets the parent's
    logits, on the inherited session and on a new one."""
    monkeypatch.setattr(model_mod, "default_threads", lambda: 4)   # 2 threads even on 1 CPU
    m = Model.load(tiny, threads=2, max_inference_len=32)
    assert m.threads == 2
    m.eval(IDS[:5])
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:   # the child: no pytest from here on, only os._exit
        try:
            os.close(r)
            cont = m.eval(IDS[5:])
            fresh = _run(m.new_session(), IDS[:5], IDS[5:])
            os.write(w, cont.tobytes() + fresh.tobytes())
        finally:
            os._exit(0)
    os.close(w)
    n = TINY["n_vocab"] * 4
    data = _read_or_kill(r, pid, 2 * n)
    os.close(r)
    expected = m.eval(IDS[5:])
    assert len(data) == 2 * n, "the child failed before answering"
    assert np.array_equal(np.frombuffer(data[:n], np.float32), expected)
    assert np.array_equal(np.frombuffer(data[n:], np.float32), expected)


_POOL_MODEL = None


def _pool_eval(ids):
    _POOL_MODEL.reset()   # the default session, its pool inherited from the parent
    return _POOL_MODEL.eval(ids)


def test_multiprocessing_fork_pool_works(tiny, monkeypatch):
    global _POOL_MODEL
    monkeypatch.setattr(model_mod, "default_threads", lambda: 4)
    _POOL_MODEL = m = Model.load(tiny, threads=2, max_inference_len=32)
    prompts = [IDS[:k] for k in (3, 6, 9, 12)]
    expected = [_run(m.new_session(), p) for p in prompts]
    m.eval(IDS[:2])   # the default session's workers have run in the parent
    with multiprocessing.get_context("fork").Pool(2) as pool:
        got = pool.map_async(_pool_eval, prompts).get(timeout=300)   # TimeoutError = a hang
    assert all(np.array_equal(a, b) for a, b in zip(got, expected))


# ---- Ctrl-C during eval ------------------------------------------------------------------------

def _interrupt_after_native(monkeypatch):
    """Make every native eval end as Ctrl-C does: the call completes, then KeyboardInterrupt
    is raised as control comes back to Python."""
    real = _native.session_eval

    def eval_then_interrupt(*args):
        real(*args)
        raise KeyboardInterrupt
    monkeypatch.setattr(_native, "session_eval", eval_then_interrupt)


def test_interrupted_eval_is_undone(tiny, monkeypatch):
    m = Model.load(tiny, threads=1, max_inference_len=32)
    s = m.new_session()
    s.eval(IDS[:3])
    with monkeypatch.context() as mp:
        _interrupt_after_native(mp)
        with pytest.raises(KeyboardInterrupt):
            s.eval(IDS[3:7])   # 7 positions: the window-8 ring has not wrapped, so it rewinds
    assert s.history == IDS[:3] and _native.session_n_past(s._handle) == 3
    assert np.array_equal(s.eval(IDS[3:5]), _run(m.new_session(), IDS[:3], IDS[3:5]))


def test_interrupted_eval_that_cannot_be_undone_refuses_until_reset(tiny, monkeypatch):
    """Past the sliding window the ring has wrapped and cannot be rewound: the session says so
    on every eval until reset(); generate() rebuilds the state it needs and works."""
    m = Model.load(tiny, threads=1, max_inference_len=32)
    s = m.new_session()
    s.eval(IDS[:6])
    with monkeypatch.context() as mp:
        _interrupt_after_native(mp)
        with pytest.raises(KeyboardInterrupt):
            s.eval(IDS[6:])   # 12 positions > window 8
    with pytest.raises(SessionInterruptedError, match="reset"):
        s.eval(IDS[:2])
    fresh = m.new_session()
    assert list(s.generate(IDS, max_tokens=4)) == list(fresh.generate(IDS, max_tokens=4))
    s.reset()
    assert np.array_equal(s.eval(IDS), _run(fresh, IDS))


@pytest.mark.model
def test_sigint_during_a_long_eval_then_reuse_matches_a_fresh_run(default_model, monkeypatch):
    """A real SIGINT, sent from a timer thread once the eval is seen inside the native step
    (its position is between the start and the end), then the session is reused."""
    monkeypatch.setattr(model_mod, "default_threads", lambda: 4)
    # Python's own Ctrl-C handler, even when the runner was started with SIGINT ignored (as
    # background jobs of a non-interactive shell are)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _sigint_then_reuse(Model.load(default_model, threads=2, max_inference_len=512))
    finally:
        signal.signal(signal.SIGINT, previous)


def _sigint_then_reuse(m):
    prefix, long, nxt = [2, 818, 5279], list(range(1000, 1300)), [4117, 563]
    s = m.new_session()
    for _ in range(5):   # retried when the eval ends before the timer thread catches it mid-way
        s.reset()
        s.eval(prefix)
        done, sent, raised = threading.Event(), [], False

        def interrupt():
            while not done.is_set():
                if len(prefix) < _native.session_n_past(s._handle) < len(prefix) + len(long):
                    os.kill(os.getpid(), signal.SIGINT)
                    sent.append(True)
                    return
        timer = threading.Thread(target=interrupt)
        try:
            timer.start()
            try:
                s.eval(long)
            except KeyboardInterrupt:
                raised = True
            finally:
                done.set()
                timer.join()
        except KeyboardInterrupt:   # a signal that came after the eval had returned: retry
            continue
        if raised:
            break
    assert raised, "no try interrupted the eval while it ran"
    assert s.history == prefix and _native.session_n_past(s._handle) == len(prefix)
    fresh = m.new_session()
    fresh.eval(prefix)
    assert np.array_equal(s.eval(nxt), fresh.eval(nxt))


# ---- the C door --------------------------------------------------------------------------------

@pytest.fixture()
def door(tiny):
    """A tiny model and a native session with 5 positions evaluated."""
    m = Model.load(tiny, threads=1, max_inference_len=32, prefill_chunk=4)
    s = m.new_session()
    s.eval(IDS[:5])
    return m, s._handle


def _pair(a):
    return a.ctypes.data, a.nbytes


def test_include_guard_covers_the_whole_header(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    src = tmp_path / "twice.c"
    src.write_text('#include "gemma3.h"\n#include "gemma3.h"\nint main(void) { return 0; }\n')
    r = subprocess.run([cc, "-std=c11", "-fsyntax-only", "-I", os.path.join(ROOT, "native"),
                        str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_eval_buffers_are_checked_against_their_lengths(door):
    m, h = door
    V = m.config.n_vocab
    ids, logits, rows = (np.array([1, 2, 3], np.int32), np.empty(V, np.float32),
                         np.array([4, 5], np.int32))
    cases = [   # (tokens, n, logits, rows, n_rows) -> message
        ((ids.ctypes.data, 8), 3, _pair(logits), None, 0, "tokens: 8 bytes given, 12 needed"),
        (_pair(ids), 3, (logits.ctypes.data, 4), None, 0, "logits: 4 bytes given, at least 1200"),
        (_pair(ids), 3, _pair(logits), (rows.ctypes.data, 4), 2, "rows: 4 bytes given, 8 needed"),
        ((0, 12), 3, _pair(logits), None, 0, "tokens: null address"),
        (_pair(ids), 3, _pair(logits), None, 2, "n_rows is set but no rows"),
        (_pair(ids), 3, _pair(logits), _pair(rows), 0, "needs n_rows >= 1"),
        (_pair(ids), 3, None, _pair(rows), 2, "without a logits buffer"),
        (_pair(ids), 3, _pair(logits), None, -1, "n_rows must not be negative"),
        (_pair(ids), 0, _pair(logits), None, 0, "at least one token"),
    ]
    for tok, n, lg, rw, n_rows, msg in cases:
        with pytest.raises(ValueError, match=msg):
            _native.session_eval(h, tok, n, lg, rw, n_rows)
    with pytest.raises(TypeError, match="pair"):
        _native.session_eval(h, ids.ctypes.data, 3, _pair(logits), None, 0)
    assert _native.session_n_past(h) == 5   # nothing ran


def test_context_check_cannot_overflow(door):
    """n_past + n past INT_MAX: refused before a token is read (the 8 GiB 'buffer' is a lie the
    door cannot see; it must not be touched)."""
    m, h = door
    ids, logits = np.array([1], np.int32), np.empty(m.config.n_vocab, np.float32)
    n = 2**31 - 1
    with pytest.raises(ValueError, match="do not fit after the 5 in context"):
        _native.session_eval(h, (ids.ctypes.data, 4 * n), n, _pair(logits), None, 0)
    assert _native.session_n_past(h) == 5


def test_ids_are_checked_in_c(door):
    m, h = door
    logits = np.empty(m.config.n_vocab, np.float32)
    bad = np.array([1, 300], np.int32)
    with pytest.raises(ValueError, match="token id out of range 0..299"):
        _native.session_eval(h, _pair(bad), 2, _pair(logits), None, 0)
    ok, out = np.array([1], np.int32), np.empty(2, np.float32)
    with pytest.raises(ValueError, match="row id out of range 0..299"):
        _native.session_eval(h, _pair(ok), 1, _pair(out), _pair(np.array([0, -1], np.int32)), 2)
    assert _native.session_n_past(h) == 5


def _bind_with(g, cfg, monkeypatch, **override):
    """model._bind with some of the dimensions it hands the C door replaced."""
    real = _native.model_new

    def patched(owner, mapping, dims, *rest):
        return real(owner, mapping, {**dims, **override}, *rest)
    monkeypatch.setattr(_native, "model_new", patched)
    return model_mod._bind(g, cfg)


def _model_new_args(m):
    """What model._bind hands the C door for model m, as (args, dims, global, layers)."""
    seen = {}

    def spy(*args):
        seen["args"] = args
        raise RuntimeError("seen")
    real, _native.model_new = _native.model_new, spy
    try:
        with pytest.raises(RuntimeError, match="seen"):
            model_mod._bind(m.gguf, m.config)
    finally:
        _native.model_new = real
    return seen["args"]


def test_the_c_door_binds_tensors_and_dimensions_by_name(tiny):
    """Every tensor and dimension crosses under its name: a name the C core does not know,
    or one it needs and is not given, is refused with that name (nothing is bound by
    position, so two same-shaped tensors cannot trade places unnoticed)."""
    m = Model.load(tiny, threads=1, max_inference_len=16)
    owner, mapping, dims, swa, glob, layers = _model_new_args(m)
    assert set(layers[0]) == set(_native.LAYER_TENSORS) and set(dims) == set(_native.DIMS)
    assert _native.model_new(owner, mapping, dims, swa, glob, layers)   # as given: binds
    gate_up = dict(layers[0], ffn_gat=layers[0]["ffn_gate"])
    del gate_up["ffn_gate"]
    no_eps = {k: v for k, v in dims.items() if k != "eps"}
    for bad, message in (
            ((dims, swa, glob, [gate_up] + layers[1:]), "layer tensors: unknown name 'ffn_gat'"),
            ((no_eps, swa, glob, layers), "dims: eps is missing"),
            (({**dims, "n_embed": 64}, swa, glob, layers), "dims: unknown name 'n_embed'"),
            ((dims, swa, {k: v for k, v in glob.items() if k != "output"}, layers),
             "global tensors: output is missing"),
            ((dims, swa, glob, layers[:-1]), "one dict per layer")):
        with pytest.raises(ValueError, match=message):
            _native.model_new(owner, mapping, *bad)
    with pytest.raises(TypeError, match="keyed by name"):
        _native.model_new(owner, mapping, tuple(dims.values()), swa, glob, layers)


def test_python_and_the_c_core_agree_on_the_names_at_import():
    """model.check_door (run when edge_runtime.decoder is imported) refuses a C core whose
    names differ from the ones Python supplies: here one with a tensor renamed."""
    model_mod.check_door()
    renamed = types.SimpleNamespace(
        LAYER_TENSORS=tuple("ffn_gate_up" if n == "ffn_gate" else n
                            for n in _native.LAYER_TENSORS),
        GLOBAL_TENSORS=_native.GLOBAL_TENSORS, DIMS=_native.DIMS)
    with pytest.raises(ImportError, match=r"only in Python \['ffn_gate'\], only in C "
                                          r"\['ffn_gate_up'\]"):
        model_mod.check_door(renamed)
    fewer = types.SimpleNamespace(LAYER_TENSORS=_native.LAYER_TENSORS,
                                  GLOBAL_TENSORS=_native.GLOBAL_TENSORS, DIMS=_native.DIMS[:-1])
    with pytest.raises(ImportError, match="dimensions"):
        model_mod.check_door(fewer)


def test_the_vocabulary_capsule_owns_its_buffers(tiny):
    """The C index points into the offsets and scores arrays: its capsule keeps them alive
    after the Tokenizer lets go of them."""
    m = Model.load(tiny, threads=1, max_inference_len=16)
    tok = m.tokenizer
    before = tok.encode("hello world", add_bos=False)
    arrays = [weakref.ref(tok._offsets), weakref.ref(tok._scores)]
    del tok._offsets, tok._scores
    gc.collect()
    assert all(r() is not None for r in arrays)
    assert tok.encode("hello world", add_bos=False) == before


@pytest.mark.parametrize("override, message", [
    (dict(sliding_window=0), "sliding-window layer needs a window"),
    (dict(n_head=65536, head_dim=65536, n_head_kv=1), "overflow"),
    (dict(n_ff=0), "must be positive"),
    (dict(query_pre_attn_scalar=0.0), "query_pre_attn_scalar"),
    (dict(query_pre_attn_scalar=float("nan")), "query_pre_attn_scalar"),
])
def test_model_dimensions_are_checked_in_c(tiny, monkeypatch, override, message):
    m = Model.load(tiny, threads=1, max_inference_len=16)
    with pytest.raises(UnsupportedModelError, match=message):
        _bind_with(m.gguf, m.config, monkeypatch, **override)


@pytest.mark.parametrize("args, message", [
    ((16, 2**26, 0, 1, 0), "prefill_chunk is too large"),   # chunk * n_ff > INT_MAX
    ((16, 4, 0, 2000, 0), "threads must be in 1..1024"),
    ((0, 4, 0, 1, 0), "must be positive"),
])
def test_session_sizes_are_checked_in_c(door, args, message):
    m, _ = door
    with pytest.raises(ValueError, match=message):
        _native.session_new(m._handle, *args)


_OWNS_MAPPING = r"""
import gc, sys
import numpy as np
from edge_runtime import Model, _native
path = sys.argv[1]
m = Model.load(path, threads=1, max_inference_len=16)
h = _native.session_new(m._handle, 16, 4, 0, 1, 0)
ids, out = np.array([2, 10, 11], np.int32), np.empty(m.config.n_vocab, np.float32)
def run():
    _native.session_truncate(h, 0)
    _native.session_eval(h, (ids.ctypes.data, ids.nbytes), 3, (out.ctypes.data, out.nbytes), None, 0)
    return out.copy()
before = run()
del m
gc.collect()   # the Model, its GGUFFile and their cycle are gone; only the handle remains
mapped = any(line.rstrip().endswith(path) for line in open("/proc/self/maps"))
print(mapped, np.array_equal(run(), before))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs Linux /proc")
def test_model_handle_keeps_the_mapping_alive(tiny):
    """A native session outliving every Python object of its model still reads mapped weights
    (before, the mapping went with the GGUFFile and this read freed memory: SIGSEGV)."""
    r = subprocess.run([sys.executable, "-c", _OWNS_MAPPING, os.path.realpath(tiny)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["True", "True"]

