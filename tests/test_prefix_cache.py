"""Prefix reuse (the tool declarations' KV state) in memory and on disk.

The reference for every reuse check is the same agent run with reuse_prefix=False, which
prefills the whole prompt in one go: calls and text must be identical, and the number of
tokens evaluated must drop by exactly the prefix that was not recomputed.
"""
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

import edge_runtime as er
from edge_runtime import prefix_cache
from edge_runtime.agent import Agent
from edge_runtime.decoder import KVSnapshot
from edge_runtime.prefix_cache import HASHES, FileSnapshot, PrefixCache, PrefixCacheWarning

HERE = os.path.dirname(os.path.abspath(__file__))
REQUESTS = ["beep twice", "note that the door is open", "beep twice"]
CTX = 4096


def beep(pattern: str) -> dict:
    """Beep in a pattern."""
    return {"beeped": pattern}


def note(text: str) -> str:
    """Keep a note."""
    return f"noted {len(text)} chars"


TOOLS = [beep, note]


def make_agent(model, **kw):
    return Agent(model, TOOLS, system="use the tools", max_tokens=12, tool_choice="required", **kw)


def outcome(agent, request):
    r = agent.run(request, max_steps=2)
    return {"calls": r.calls, "text": r.text}


def evaluated(model):
    st = model.stats()
    return st["prefill_tokens"] + st["decode_tokens"]


def tiny(factory, window=8, seed=0, kv_dtype="f16"):
    path = factory(context_length=4096, sliding_window=window, seed=seed)
    return er.Model.load(path, max_inference_len=CTX, threads=1, kv_dtype=kv_dtype)


def baseline(model, request):
    """Output of a run that prefills everything, on a fresh session of the same model."""
    fresh = er.Model.load(model.gguf.path, max_inference_len=CTX, threads=1,
                          kv_dtype=model.kv_dtype)
    return outcome(make_agent(fresh, reuse_prefix=False), request), evaluated(fresh)


# ---- in memory ------------------------------------------------------------------------------

@pytest.mark.parametrize("window", [8, 4096])   # the prefix is longer / shorter than it
def test_reuse_gives_the_same_calls_and_text_and_skips_the_prefix(tiny_gguf_factory, window):
    reuse_model, full_model = tiny(tiny_gguf_factory, window), tiny(tiny_gguf_factory, window)
    reuse, full = make_agent(reuse_model), make_agent(full_model, reuse_prefix=False)
    n_prefix = len(reuse.prefix_ids())
    assert (n_prefix > window) == (window == 8)
    for request in REQUESTS:       # the state wanders off between requests: rings move on
        got, want = outcome(reuse, request), outcome(full, request)
        assert got == want
        assert got["calls"], "the forced first reply must hold a call"
    # the prefix was evaluated once instead of once per request
    assert evaluated(reuse_model) == evaluated(full_model) - (len(REQUESTS) - 1) * n_prefix


def test_a_session_used_by_others_in_between_still_reuses_correctly(tiny_gguf_factory):
    m = tiny(tiny_gguf_factory)
    agent = make_agent(m)
    first = outcome(agent, REQUESTS[0])
    m.reset()
    list(m.generate([2, 300, 301, 302] * 10, max_tokens=4))   # someone else uses the session
    assert outcome(agent, REQUESTS[0]) == first == baseline(m, REQUESTS[0])[0]


@pytest.mark.model
def test_reuse_on_the_default_model_with_a_prefix_longer_than_the_window(default_model):
    from edge_runtime.tools_builtin import TOOLS as BUILTIN
    m = er.Model.load(default_model, max_inference_len=2048, threads=1)
    system = "You are a careful home assistant. " * 40       # pushes the prefix past 512
    reuse = Agent(m, BUILTIN, system=system, max_tokens=8)
    full = Agent(m, BUILTIN, system=system, max_tokens=8, reuse_prefix=False)
    assert len(reuse.prefix_ids()) > m.config.sliding_window
    for request in ("set a timer for 10 minutes", "turn on the kitchen lights"):
        # the two agents share one session, so each run also starts from the other's state
        assert reuse.run(request, max_steps=1) == full.run(request, max_steps=1)


# ---- on disk --------------------------------------------------------------------------------

_CHILD = """
import json, sys, warnings
sys.path.insert(0, {here!r})
import edge_runtime as er
from test_prefix_cache import CTX, REQUESTS, evaluated, make_agent, outcome
warnings.simplefilter("error")          # any warning (an ignored snapshot) fails the child
m = er.Model.load({path!r}, max_inference_len=CTX, threads=1)
out = outcome(make_agent(m, cache_dir={cache!r}), REQUESTS[0])
print(json.dumps({{"out": out, "evaluated": evaluated(m)}}))
"""


def test_snapshot_file_is_used_by_a_new_process(tiny_gguf_factory, tmp_path):
    m = tiny(tiny_gguf_factory)
    agent = make_agent(m, cache_dir=tmp_path)
    outcome(agent, REQUESTS[1])
    assert cache_files(tmp_path) == [".kvs", HASHES]      # one snapshot, no temporary left
    want, n_full = baseline(m, REQUESTS[0])
    code = _CHILD.format(here=HERE, path=m.gguf.path, cache=str(tmp_path))
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=120)
    assert child.returncode == 0, child.stderr
    got = json.loads(child.stdout.strip().splitlines()[-1])
    assert got["out"] == json.loads(json.dumps(want))
    assert got["evaluated"] == n_full - len(agent.prefix_ids())   # the prefill came from disk


@pytest.mark.parametrize("window", [8, 4096])
@pytest.mark.parametrize("source", ["memory", "file"])
def test_restoring_after_a_request_matches_a_fresh_prefill(tiny_gguf_factory, tmp_path, window,
                                                           source):
    """A session that holds a snapshot's state plus later positions reads back only the ring
    slots those took over (none when no ring wrapped). After requests shorter than the window,
    as long, longer, and wrapping the ring several times - and after another prefix was
    restored in between (a full read) - the next tokens' logits equal, bit for bit, those of a
    session that prefilled the prefix itself."""
    m = tiny(tiny_gguf_factory, window)
    rng = np.random.default_rng(5)
    ids = lambda n: rng.integers(3, 500, n).tolist()   # noqa: E731
    prefix, other = [2] + ids(21), [2] + ids(9)
    s = m.new_session()
    s.eval(other)
    other_snap = s.snapshot()
    s.reset()
    s.eval(prefix)
    snap = s.snapshot()
    if source == "file":
        cache = PrefixCache(tmp_path, m)
        cache.save(snap)
        snap = cache.load(prefix)
        assert isinstance(snap, FileSnapshot) and snap.nbytes == s.snapshot().nbytes
    fresh = m.new_session()
    for later in ([3], [8], [13], [30], [4, 1, 20], "other"):
        if later == "other":
            s.restore(other_snap)
            s.eval(ids(4))
        else:
            for n in later:          # a request: its prompt, then token by token
                s.eval(ids(n))
        s.restore(snap)
        assert s.history == prefix
        tail = ids(5)
        got = s.eval(tail)
        fresh.reset()
        fresh.eval(prefix)
        np.testing.assert_array_equal(got, fresh.eval(tail))


def _bytes_read():
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("rchar:")).split()[1])


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs /proc/self/io")
def test_a_restore_after_a_short_request_reads_only_the_overwritten_slots(tiny_gguf_factory,
                                                                          tmp_path):
    """From its file, a restore reads the header and, after a request of 3 positions, those 3
    ring slots of each local layer's K and V - not the global layers, not the rest."""
    m = tiny(tiny_gguf_factory)                  # window 8
    cfg = m.config
    s = m.new_session()
    prefix = [2] + list(range(40, 61))           # 22 positions: the rings wrapped
    s.eval(prefix)
    cache = PrefixCache(tmp_path, m)
    cache.save_session(s)
    snap = cache.load(prefix)
    s.restore(snap)                              # the first restore reads everything
    s.eval([70, 71, 72])
    header = 16 + 4 * cfg.n_layer
    row = cfg.kv_dim * 2                         # f16
    n_local = sum(cfg.is_swa(il) for il in range(cfg.n_layer))
    assert 0 < n_local < cfg.n_layer
    b0 = _bytes_read()
    b1 = _bytes_read()                           # reading /proc/self/io counts too: b1 - b0
    s.restore(snap)
    read = _bytes_read() - b1 - (b1 - b0)
    want = header + n_local * 3 * 2 * row
    assert abs(read - want) <= 16 and want < snap.nbytes / 3, (read, want, snap.nbytes)
    fresh = m.new_session()
    fresh.eval(prefix)
    np.testing.assert_array_equal(s.eval([9]), fresh.eval([9]))


def test_a_session_written_straight_to_its_file_equals_a_saved_snapshot(tiny_gguf_factory,
                                                                          tmp_path):
    """save_session writes from the KV buffers (no copy of the state in memory): the file is
    byte for byte the one save() writes from a snapshot."""
    m = tiny(tiny_gguf_factory)
    s = m.new_session()
    s.eval([2] + list(range(40, 75)))            # past the window of 8: rings wrapped
    direct = PrefixCache(tmp_path / "a", m).save_session(s)
    saved = PrefixCache(tmp_path / "b", m).save(s.snapshot())
    assert direct.name == saved.name and direct.read_bytes() == saved.read_bytes()


def test_with_a_cache_dir_the_agent_keeps_its_snapshot_only_in_the_file(tiny_gguf_factory,
                                                                         tmp_path):
    """No anonymous copy of the prefix state: the agent holds a FileSnapshot (read into the
    session at each restore). A file then changed in place is noticed at the next restore:
    a warning, the prefix recomputed, the same outcome."""
    m = tiny(tiny_gguf_factory)
    agent = make_agent(m, cache_dir=tmp_path)
    first = outcome(agent, REQUESTS[0])
    assert isinstance(agent.prefix_snapshot, FileSnapshot)
    assert outcome(agent, REQUESTS[0]) == first == baseline(m, REQUESTS[0])[0]
    later = make_agent(tiny(tiny_gguf_factory), cache_dir=tmp_path)
    assert outcome(later, REQUESTS[0]) == first
    assert isinstance(later.prefix_snapshot, FileSnapshot)
    (path,) = tmp_path.glob("*.kvs")
    _flip_last_byte(path)
    with pytest.warns(PrefixCacheWarning, match="changed in place"):
        assert outcome(agent, REQUESTS[0]) == first


def cache_files(directory):
    """Snapshots by suffix, other files by name: what a cache directory holds."""
    return sorted(f.suffix if f.suffix == ".kvs" else f.name for f in directory.iterdir())


def _flip_last_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x40
    path.write_bytes(bytes(data))


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) - 1000])


def _bad_magic(path):
    data = path.read_bytes()
    path.write_bytes(b"NOTASNAP" + data[8:])


@pytest.mark.parametrize("damage, why", [(_flip_last_byte, "checksum"), (_truncate, "truncated"),
                                         (_bad_magic, "not a prefix snapshot")])
def test_a_damaged_snapshot_is_ignored_with_a_warning_and_rewritten(tiny_gguf_factory, tmp_path,
                                                                    damage, why):
    m = tiny(tiny_gguf_factory)
    outcome(make_agent(m, cache_dir=tmp_path), REQUESTS[0])
    (path,) = tmp_path.iterdir()
    damage(path)
    want, n_full = baseline(m, REQUESTS[1])
    m2 = tiny(tiny_gguf_factory)
    with pytest.warns(PrefixCacheWarning, match=why):
        got = outcome(make_agent(m2, cache_dir=tmp_path), REQUESTS[1])
    assert got == want
    assert evaluated(m2) == n_full                 # recomputed, not taken from the file
    m3 = tiny(tiny_gguf_factory)                   # and the file was rewritten, valid again
    assert make_agent(m3, cache_dir=tmp_path).run(REQUESTS[1], max_steps=2).calls == want["calls"]
    assert evaluated(m3) < n_full


@pytest.mark.parametrize("other", [dict(seed=1), dict(kv_dtype="f32")])
def test_a_snapshot_of_another_model_or_kv_dtype_is_ignored(tiny_gguf_factory, tmp_path, other):
    mine = tiny(tiny_gguf_factory)
    agent = make_agent(mine, cache_dir=tmp_path)
    outcome(agent, REQUESTS[0])
    (written,) = tmp_path.iterdir()
    m = tiny(tiny_gguf_factory, **other)
    target = PrefixCache(tmp_path, m).path_for(agent.prefix_ids())
    assert target != written                       # keyed apart: never even looked up ...
    shutil.copy(written, target)                   # ... unless someone puts it there
    want, n_full = baseline(m, REQUESTS[0])
    with pytest.warns(PrefixCacheWarning, match="another model"):
        assert outcome(make_agent(m, cache_dir=tmp_path), REQUESTS[0]) == want
    assert evaluated(m) == n_full


@pytest.mark.parametrize("case", ["f16 state for f32", "state header damaged"])
def test_a_well_formed_file_the_session_refuses_is_ignored(tiny_gguf_factory, tmp_path, case):
    """Header and checksum fine, but the state inside does not fit: an f16 state for an f32
    session (its size gives it away before it is read), or a damaged state header (the native
    restore refuses it). Either is only a warning."""
    f16 = tiny(tiny_gguf_factory)
    a = make_agent(f16)
    outcome(a, REQUESTS[0])
    snap = a.prefix_snapshot
    if case == "f16 state for f32":
        m, why = tiny(tiny_gguf_factory, kv_dtype="f32"), "a snapshot of this prefix has"
    else:
        m, why = tiny(tiny_gguf_factory), "does not fit"
        snap = KVSnapshot(snap.ids, b"\xff" * 16 + snap.data[16:])
    PrefixCache(tmp_path, m).save(snap)
    want, n_full = baseline(m, REQUESTS[0])
    with pytest.warns(PrefixCacheWarning, match=why):
        assert outcome(make_agent(m, cache_dir=tmp_path), REQUESTS[0]) == want
    assert evaluated(m) == n_full


def test_an_unwritable_cache_dir_only_warns(tiny_gguf_factory, tmp_path):
    m = tiny(tiny_gguf_factory)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.warns(PrefixCacheWarning, match="cannot write"):
        got = outcome(make_agent(m, cache_dir=blocker / "kv"), REQUESTS[0])
    assert got == baseline(m, REQUESTS[0])[0]


# ---- the snapshot table: what else a cache directory may hold ------------------------------

@pytest.fixture
def no_hang():
    """Fail with TimeoutError instead of hanging the suite (SIGALRM interrupts a blocking
    open() of a FIFO)."""
    def expire(signum, frame):
        raise TimeoutError("blocked for 300 s")
    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(300)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def _crafted_size(target, m, ids, good):
    """The right key and prefix, a 3.2 GB state: the file is sparse, so its size matches."""
    head = prefix_cache._HEADER.pack(prefix_cache.MAGIC, prefix_cache.VERSION, len(ids),
                                     3_200_000_000, PrefixCache(target.parent, m).key(ids), 0, 0)
    with open(target, "wb") as f:
        f.write(head + prefix_cache._ids_bytes(ids))
    os.truncate(target, len(head) + 4 * len(ids) + 3_200_000_000)
    return "header says .* 3200000000 bytes of state"


def _fifo(target, m, ids, good):
    os.mkfifo(target)
    return "it is a FIFO"


def _symlink_to_a_good_snapshot(target, m, ids, good):
    os.symlink(good, target)
    return "it is a symbolic link"


def _symlink_to_a_device(target, m, ids, good):
    os.symlink("/dev/zero", target)
    return "it is a symbolic link"


def _device(target, m, ids, good):
    try:
        os.mknod(target, 0o600 | stat.S_IFCHR, os.makedev(1, 5))   # what /dev/zero is
    except PermissionError:
        pytest.skip("creating a device node needs privileges")
    return "it is a device"


def _directory(target, m, ids, good):
    os.mkdir(target)
    return "it is a directory"


@pytest.mark.parametrize("plant", [_crafted_size, _fifo, _symlink_to_a_good_snapshot,
                                   _symlink_to_a_device, _device, _directory],
                         ids=lambda f: f.__name__.strip("_"))
def test_what_is_not_a_good_snapshot_is_ignored_with_a_warning(tiny_gguf_factory, tmp_path,
                                                                no_hang, plant):
    m = tiny(tiny_gguf_factory)
    agent = make_agent(m)
    outcome(agent, REQUESTS[0])
    good = tmp_path / "elsewhere.kvs"
    cache_dir = tmp_path / "cache"
    target = PrefixCache(cache_dir, m).path_for(agent.prefix_ids())
    assert PrefixCache(cache_dir, m).save(agent.prefix_snapshot) == target
    shutil.move(target, good)
    good_bytes = good.read_bytes()
    why = plant(target, m, agent.prefix_ids(), good)
    want, n_full = baseline(m, REQUESTS[0])
    m2 = tiny(tiny_gguf_factory)
    with pytest.warns(PrefixCacheWarning) as caught:
        assert outcome(make_agent(m2, cache_dir=cache_dir), REQUESTS[0]) == want
    said = [str(w.message) for w in caught]
    assert any(re.search(why, s) for s in said), said
    assert (plant is _directory) == any("cannot write" in s for s in said), said
    assert evaluated(m2) == n_full                       # nothing taken from the path
    assert good.read_bytes() == good_bytes               # a symlink's target is left alone
    if plant is _directory:                              # cannot be replaced: it stays
        assert target.is_dir()
    else:                                                # replaced by a good snapshot
        assert stat.S_ISREG(os.lstat(target).st_mode)
        m3 = tiny(tiny_gguf_factory)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert outcome(make_agent(m3, cache_dir=cache_dir), REQUESTS[0]) == want
        assert evaluated(m3) == n_full - len(agent.prefix_ids())


_KILLED_WRITER = """
import os, sys, time
import edge_runtime as er
from edge_runtime.prefix_cache import PrefixCache
m = er.Model.load({path!r}, max_inference_len=64, threads=1)
s = m.new_session()
s.eval([2, 300, 301, 302])
cache = PrefixCache({cache!r}, m)
def stall(fd):          # the data is written; the writer dies before the rename
    print("writing", flush=True)
    time.sleep(600)
os.fsync = stall
cache.save(s.snapshot())
"""


def test_temporary_files_of_killed_writers_are_cleaned(tiny_gguf_factory, tmp_path):
    m = tiny(tiny_gguf_factory)
    child = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER.format(
        path=m.gguf.path, cache=str(tmp_path))], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "writing"
    finally:
        child.kill()
        child.wait(60)
    (killed,) = tmp_path.glob(f".tmp-{child.pid}-*.kvs")
    assert killed.stat().st_size > 0
    me = os.getpid()
    old = tmp_path / f".tmp-{me}-old1.kvs"                # our pid, but two hours old
    live = tmp_path / f".tmp-{me}-live.kvs"               # a writer still at work: kept
    for f in (old, live):
        f.write_bytes(b"partial")
    os.utime(old, (time.time() - 7200,) * 2)
    foreign = [tmp_path / ".tmp-notes.kvs", tmp_path / "keep.txt"]   # not names we make
    for f in foreign:
        f.write_bytes(b"someone else's")
    a_dir = tmp_path / f".tmp-{child.pid}-dir.kvs"       # our name, but not a file we wrote
    a_dir.mkdir()
    want = baseline(m, REQUESTS[0])[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert outcome(make_agent(m, cache_dir=tmp_path), REQUESTS[0]) == want
    left = sorted(f.name for f in tmp_path.iterdir() if f.suffix != ".kvs" or
                  f.name.startswith("."))
    assert left == sorted([a_dir.name, live.name, HASHES] + [f.name for f in foreign])
    assert len(list(tmp_path.glob("[!.]*.kvs"))) == 1   # and the snapshot was written


def test_a_directory_keeps_only_the_newest_snapshots(tiny_gguf_factory, tmp_path, monkeypatch):
    """Every toolset writes a snapshot of its own: a save deletes the oldest beyond
    MAX_SNAPSHOTS, never a file whose name is not one of ours, and a deleted snapshot is
    simply computed again."""
    monkeypatch.setattr(prefix_cache, "MAX_SNAPSHOTS", 3)
    m = tiny(tiny_gguf_factory)
    cache = PrefixCache(tmp_path, m)
    foreign = [tmp_path / "notes.kvs", tmp_path / ("0" * 32 + ".kvs.bak")]
    for f in foreign:
        f.write_bytes(b"someone else's")
    os.utime(foreign[0], (1, 1))                          # older than every snapshot
    s, written = m.new_session(), []
    for i in range(5):
        s.reset()
        s.eval([2, 40 + i, 41, 42])
        written.append(cache.save_session(s))
        os.utime(written[-1], (1000 + i, 1000 + i))     # distinct ages, oldest first
    kept = sorted(f for f in tmp_path.glob("*.kvs") if f not in foreign)
    assert kept == sorted(written[2:])                    # the three newest
    assert all(f.exists() for f in foreign)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.load([2, 40, 41, 42]) is None        # pruned: missing, no warning
    s.reset()
    s.eval([2, 40, 41, 42])
    assert cache.save(s.snapshot()) == written[0]         # computed again, written again
    assert sorted(f for f in tmp_path.glob("*.kvs") if f not in foreign) == \
        sorted([written[0], written[3], written[4]])


def test_a_directory_keeps_its_snapshots_within_a_byte_bound(tiny_gguf_factory, tmp_path,
                                                              monkeypatch):
    """Past MAX_SNAPSHOT_BYTES the oldest go first, whatever their count; the snapshot just
    written always stays (even alone above the bound)."""
    m = tiny(tiny_gguf_factory)
    cache = PrefixCache(tmp_path, m)
    s, written = m.new_session(), []
    for i in range(5):
        s.reset()
        s.eval([2, 40 + i, 41, 42])
        written.append(cache.save_session(s))
        os.utime(written[-1], (1000 + i, 1000 + i))
        if i == 0:
            size = written[0].stat().st_size
            monkeypatch.setattr(prefix_cache, "MAX_SNAPSHOT_BYTES", int(2.5 * size))
    assert sorted(tmp_path.glob("*.kvs")) == sorted(written[3:])     # two fit in 2.5 sizes
    monkeypatch.setattr(prefix_cache, "MAX_SNAPSHOT_BYTES", size // 2)
    s.reset()
    s.eval([2, 50, 41, 42])
    newest = cache.save_session(s)
    assert list(tmp_path.glob("*.kvs")) == [newest]


def test_a_snapshot_of_another_decoder_build_is_not_used(tiny_gguf_factory, tmp_path,
                                                        monkeypatch):
    monkeypatch.setattr(prefix_cache, "decoder_identity", lambda: b"an older build")
    older = tiny(tiny_gguf_factory)
    agent = make_agent(older, cache_dir=tmp_path)
    outcome(agent, REQUESTS[0])
    (written,) = tmp_path.glob("*.kvs")
    monkeypatch.undo()
    m = tiny(tiny_gguf_factory)
    target = PrefixCache(tmp_path, m).path_for(agent.prefix_ids())
    assert target != written                             # keyed apart: never looked up
    want, n_full = baseline(m, REQUESTS[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert outcome(make_agent(m, cache_dir=tmp_path), REQUESTS[0]) == want
    assert evaluated(m) == n_full
    os.unlink(target)
    shutil.copy(written, target)                         # and if put where it is looked up
    m2 = tiny(tiny_gguf_factory)
    with pytest.warns(PrefixCacheWarning, match="another model, decoder"):
        assert outcome(make_agent(m2, cache_dir=tmp_path), REQUESTS[0]) == want
    assert evaluated(m2) == n_full


def test_a_model_rewritten_in_place_gets_a_new_key(tiny_gguf_factory, tmp_path, monkeypatch):
    """One weight byte changed in place, deep in a 2 MiB file, mtime set back (as rsync -t
    --inplace would): the full content hash still tells the files apart. The hash is computed
    once per file version; a new process takes it from the sidecar."""
    path = tmp_path / "model.gguf"
    shutil.copy(tiny_gguf_factory(context_length=4096, sliding_window=8, n_vocab=32768), path)
    cache_dir = tmp_path / "cache"
    hashed = []
    real_hash = prefix_cache._hash_model
    monkeypatch.setattr(prefix_cache, "_hash_model", lambda g: hashed.append(g) or real_hash(g))

    def load():
        return er.Model.load(path, max_inference_len=CTX, threads=1)

    m = load()
    agent = make_agent(m, cache_dir=cache_dir)
    outcome(agent, REQUESTS[0])
    emb = m.gguf.tensors["token_embd.weight"]
    at = emb.offset + (emb.nbytes // 2) // 34 * 34 + 20   # a quant byte, not a block scale
    assert at > 1 << 20 and len(hashed) == 1
    monkeypatch.setattr(prefix_cache, "_DIGESTS", {})      # as in a new process: the sidecar
    assert PrefixCache(cache_dir, m).path_for(agent.prefix_ids()).exists()
    assert len(hashed) == 1
    m.close()
    del m, agent
    before = os.stat(path)
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0x01]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_size == before.st_size
    assert os.stat(path).st_mtime_ns == before.st_mtime_ns
    m2 = load()
    want, n_full = baseline(m2, REQUESTS[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert outcome(make_agent(m2, cache_dir=cache_dir), REQUESTS[0]) == want
    assert evaluated(m2) == n_full                         # the old state was not restored
    assert len(hashed) == 2                                # hashed again: a new version
    assert len(list(cache_dir.glob("*.kvs"))) == 2


# ---- the planner and the command line -------------------------------------------------------

@pytest.mark.parametrize("window", [8, 4096])
def test_the_plan_row_is_the_snapshot_size(tiny_gguf_factory, window):
    m = tiny(tiny_gguf_factory, window)
    agent = make_agent(m)
    outcome(agent, REQUESTS[0])
    n = len(agent.prefix_ids())
    p = er.memory.plan(m.config, CTX, snapshot_tokens=n)
    (row,) = [b for name, b, _ in p.rows if name.startswith("prefix snapshot")]
    assert row == agent.prefix_snapshot.nbytes
    without = er.memory.plan(m.config, CTX)
    assert p.total_anon - without.total_anon == row


def test_cli_agent_cache_dir(tiny_gguf_factory, tmp_path, capsys):
    from edge_runtime.cli import main
    path = tiny_gguf_factory(context_length=4096, sliding_window=8)
    tools = tmp_path / "tools.py"
    tools.write_text("from test_prefix_cache import TOOLS\n")
    cache_dir = tmp_path / "cache"
    argv = ["agent", "--model", path, "--threads", "1", "--max-steps", "1", "--json",
            "--tools", str(tools), "--cache-dir", str(cache_dir), "beep twice"]
    outs = []
    for _ in range(2):
        assert main(argv) == 0
        outs.append(json.loads(capsys.readouterr().out))
    assert cache_files(cache_dir) == [".kvs", HASHES]
    assert outs[0] == outs[1] and outs[0]["calls"]
