"""Memory: the planner's rows against their formulas, auto-context, budgets, RSS tracking, page
release, cgroup emulation; and (marked `model`) the plan and RSS budgets against measurement."""
import json
import mmap
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edge_runtime import boards, cli, emulate
from edge_runtime.config import Config
from edge_runtime.emulate import EmulationUnavailable
from edge_runtime.errors import InvalidArgumentError, MemoryBudgetError
from edge_runtime.memory import RssTracker, WeightLayout, advise, plan, plan_for_model
from edge_runtime.memory.pages import PAGE_SIZE, page_range
from edge_runtime.memory.rss import read_status

MIB = 1 << 20
HERE = Path(__file__).resolve().parent

# Gemma 3 270M as its GGUF describes it (llama.cpp's layer rule: il % 6 == 5 is global).
REAL = Config(n_vocab=262144, n_embd=640, n_layer=18, n_head=4, n_head_kv=1, head_dim_k=256,
              head_dim_v=256, n_ff=2048, eps=1e-6, context_length=32768, sliding_window=512,
              rope_base_global=1e6, swa_layers=tuple(i for i in range(18) if i % 6 != 5))
TINY = Config(n_vocab=512, n_embd=64, n_layer=6, n_head=4, n_head_kv=2, head_dim_k=32,
              head_dim_v=32, n_ff=96, eps=1e-6, context_length=2048, sliding_window=16,
              rope_base_global=1e6, swa_layers=(0, 1, 2, 3, 4))


def row(p, prefix):
    """Sum of the rows whose name starts with prefix (a formula below names exactly one set)."""
    hits = [b for n, b, _ in p.rows if n.startswith(prefix)]
    assert hits, f"no row {prefix!r} in {[n for n, _, _ in p.rows]}"
    return sum(hits)


# ---- planner formulas ------------------------------------------------------------------------

@pytest.mark.parametrize("cfg", [REAL, TINY], ids=["real", "tiny"])
@pytest.mark.parametrize("ctx", [8, 512, 2048])
@pytest.mark.parametrize("kv_dtype,kvb", [("f16", 2), ("f32", 4)])
def test_rows_follow_formulas(cfg, ctx, kv_dtype, kvb):
    T, threads = 32, 3
    p = plan(cfg, ctx, prefill_chunk=T, threads=threads, kv_dtype=kv_dtype)
    E, D, H, Hkv, F, V = cfg.n_embd, cfg.head_dim_k, cfg.n_head, cfg.n_head_kv, cfg.n_ff, cfg.n_vocab
    kv = Hkv * D
    n_local = len(cfg.swa_layers)
    local_len = min(ctx, cfg.sliding_window)
    assert p.ring_lens == tuple(local_len if i in cfg.swa_layers else ctx for i in range(cfg.n_layer))
    assert row(p, "KV cache: %d local" % n_local) == n_local * 2 * local_len * kv * kvb
    assert row(p, "KV cache: %d global" % (cfg.n_layer - n_local)) == \
        (cfg.n_layer - n_local) * 2 * ctx * kv * kvb
    assert row(p, "scratch: hidden") == 4 * T * (E + max(E, H * D))
    assert row(p, "scratch: q, k, v") == 4 * T * (2 * H * D + 2 * kv)
    assert row(p, "scratch: ffn") == 4 * T * 2 * F
    assert row(p, "scratch: RoPE") == 4 * 2 * 2 * T * D // 2
    assert row(p, "scratch: quantized") == T * max(E, H * D, F) // 32 * 48
    assert row(p, "scratch: K/V chunk staging") == 2 * T * kv * kvb
    assert row(p, "attention scores") == 4 * threads * (H // Hkv) * ctx
    assert row(p, "logits") == 4 * V
    assert p.total_anon == sum(b for _, b, k in p.rows if k == "anon")
    assert p.total_resident == sum(b for _, b, _ in p.rows)


def test_local_layers_stop_growing_at_the_window():
    a, b = plan(REAL, 512), plan(REAL, 4096)
    n_global = REAL.n_layer - len(REAL.swa_layers)
    assert n_global == 3
    kv_growth = n_global * 2 * (4096 - 512) * REAL.kv_dim * 2
    scores_growth = 4 * (REAL.n_head // REAL.n_head_kv) * (4096 - 512)   # threads=1
    assert b.total_anon - a.total_anon == kv_growth + scores_growth
    assert row(a, "KV cache: 15 local") == row(b, "KV cache: 15 local")
    assert b.total_resident - a.total_resident == kv_growth + scores_growth


def test_default_and_clamped_max_inference_len():
    assert plan(REAL).max_inference_len == 4096
    assert plan(TINY).max_inference_len == 2048
    with pytest.warns(UserWarning, match="above the model's context_length 32768"):
        assert plan(REAL, 100000).max_inference_len == 32768
    for bad in (0, -1, "x", 1.5, True):
        with pytest.raises(ValueError, match="max_inference_len"):
            plan(REAL, bad)


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="kv_dtype must be one of f16, f32"):
        plan(REAL, 512, kv_dtype="q8")
    with pytest.raises(ValueError, match="pages must be one of keep, release"):
        plan(REAL, 512, pages="drop")
    with pytest.raises(ValueError, match="needs a budget"):
        plan(REAL, "auto")


def test_page_policy_resident_weights():
    lay = WeightLayout(file_size=1000 * MIB, header=6 * MIB, layers=(5 * MIB, 7 * MIB, 6 * MIB),
                       token_embd=170 * MIB, token_embd_row=680, output=0, globals_=2560)
    keep, rel = (row(plan(REAL, 512, pages=p, weights=lay), "weights resident") for p in
                 ("keep", "release"))
    assert keep == 18 * MIB + 170 * MIB + 2560          # every layer + tied lm_head + norms
    assert rel == 7 * MIB + 170 * MIB + 2560            # the largest layer only
    untied = WeightLayout(file_size=0, header=0, layers=(5 * MIB,), token_embd=170 * MIB,
                          token_embd_row=680, output=170 * MIB, globals_=0)
    # untied: the embedding contributes at most one page per position of context
    assert row(plan(REAL, 512, weights=untied), "weights resident") == \
        5 * MIB + 170 * MIB + 512 * PAGE_SIZE


def test_estimated_layout_is_a_q8_0_file():
    lay = WeightLayout.estimate(REAL)
    per_layer = (2 * 640 * 1024 + 2 * 640 * 256 + 3 * 640 * 2048) // 32 * 34 + 4 * (4 * 640 + 512)
    assert lay.layers == (per_layer,) * 18
    assert lay.token_embd == 262144 * 640 // 32 * 34
    sized = WeightLayout.estimate(REAL, file_size=lay.file_size + 1000)
    assert sized.header == lay.header + 1000


def test_agent_rows():
    from edge_runtime.memory.plan import snapshot_bytes
    base, agent = plan(REAL, 2048), plan(REAL, 2048, agent=True, snapshot_tokens=713)
    V = REAL.n_vocab
    extra = {n: (b, k) for n, b, k in agent.rows if n not in {r[0] for r in base.rows}}
    assert extra == {
        "prefix snapshot: 713 tokens": (snapshot_bytes(agent.ring_lens, REAL, 713), "anon"),
        "agent: grammar vocabulary index (mapped file)": (25 * V, "file"),
        "agent: string-content masks (32 states)": (32 * V // 8, "anon"),
        "agent: per-step allowed ids and their logits": (13 * V, "anon"),
        "agent: allowed sets kept by grammar state": (4 * 65536 + 2048 * 256, "anon")}
    # local layers hold at most their 512-position window, global ones every position
    assert row(agent, "prefix snapshot: 713") == 16 + 4 * 18 + 2 * (15 * 512 + 3 * 713) * 256 * 2
    assert agent.settings["agent"] and not base.settings["agent"]
    # kept in its file, the snapshot is page cache: shown, not counted as resident
    in_file = plan(REAL, 2048, agent=True, snapshot_tokens=713, snapshot_file=True)
    assert row(in_file, "prefix snapshot: 713 tokens (its file") == row(agent, "prefix snapshot")
    assert agent.total_resident - in_file.total_resident == row(agent, "prefix snapshot")
    assert agent.total_anon - in_file.total_anon == row(agent, "prefix snapshot")
    with pytest.raises(InvalidArgumentError, match="snapshot_tokens"):
        plan(REAL, 2048, agent=True)            # no stale default: the real prefix is needed
    with pytest.raises(MemoryBudgetError, match="^the agent's memory plan for"):
        agent.check(agent.total_resident - 1, what="the agent's memory plan")


# ---- auto-context and budgets ----------------------------------------------------------------

@pytest.mark.parametrize("cfg", [REAL, TINY], ids=["real", "tiny"])
def test_auto_picks_the_largest_fitting_multiple_of_256(cfg):
    small, large = plan(cfg, 256).total_resident, plan(cfg, cfg.context_length).total_resident
    for budget in np.linspace(small, large + MIB, 9).astype(int):
        n = plan(cfg, "auto", budget=int(budget)).max_inference_len
        assert n % 256 == 0 and n <= cfg.context_length
        assert plan(cfg, n).fits(budget)
        if n + 256 <= cfg.context_length:
            assert not plan(cfg, n + 256).fits(budget)
    exact = plan(REAL, 2048).total_resident
    assert plan(REAL, "auto", budget=exact).max_inference_len == 2048
    assert plan(REAL, "auto", budget=exact - 1).max_inference_len == 1792


def test_auto_with_no_room_raises_with_the_rows():
    with pytest.raises(MemoryBudgetError, match="max_inference_len 256 needs"):
        plan(REAL, "auto", budget=100 * MIB)
    short = Config(**{**TINY.__dict__, "context_length": 200})
    assert plan(short, "auto", budget=1 << 40).max_inference_len == 200


def test_budget_error_lists_rows_and_overage():
    p = plan(REAL, 4096)
    budget = p.total_resident - 3 * MIB
    assert not p.fits(budget) and p.fits(p.total_resident)
    with pytest.raises(MemoryBudgetError) as e:
        p.check(budget)
    msg = str(e.value)
    assert "\n" not in msg
    assert "over by 3.0 MiB" in msg
    for name, _, _ in p.rows:
        assert name in msg


def test_table_and_json():
    p = plan(REAL, 4096, threads=2)
    t = p.table(budget=352 * MIB).splitlines()
    assert [len(line) for line in t[1:len(p.rows) + 1]] == [len(t[1])] * len(p.rows)  # aligned
    assert t[-2].startswith("headroom") and t[-2].split()[2] == f"{(352 * MIB - p.total_resident):,}"
    d = p.to_dict(budget=352 * MIB)
    assert d["headroom"] == 352 * MIB - p.total_resident and d["fits"] == p.fits(352 * MIB)
    assert json.loads(json.dumps(d))["total_anon"] == p.total_anon


def test_plan_for_model_reads_the_file(tiny_gguf_factory):
    gguf = pytest.importorskip("gguf")
    path = tiny_gguf_factory(n_layer=6, context_length=256, sliding_window=8)
    r = gguf.GGUFReader(path)
    tensor_bytes = sum(int(t.n_bytes) for t in r.tensors)
    p = plan_for_model(path, 128)
    assert p.mapped == os.path.getsize(path)
    assert row(p, "weights resident (pages=keep)") == tensor_bytes
    assert row(p, "gguf header") == min(int(t.data_offset) for t in r.tensors)
    assert p.ring_lens == (8, 8, 8, 8, 8, 128)


def test_native_session_allocates_what_the_plan_says(tiny_gguf_factory):
    from edge_runtime.decoder import Model
    path = tiny_gguf_factory(n_layer=6, context_length=256, sliding_window=8)
    for n, threads, kv_dtype, chunk in ((256, 2, "f16", 64), (40, 1, "f32", 16)):
        m = Model.load(path, max_inference_len=n, threads=threads, kv_dtype=kv_dtype,
                       prefill_chunk=chunk)
        p = plan_for_model(path, n, threads=threads, kv_dtype=kv_dtype, prefill_chunk=chunk)
        st = m.stats()
        assert st["kv"] == row(p, "KV cache")
        assert st["scratch"] == row(p, "scratch:")
        assert st["scores"] == row(p, "attention scores")


def test_cli_plan(tiny_gguf_factory, capsys):
    path = tiny_gguf_factory(n_layer=6, context_length=256, sliding_window=8)
    assert cli.main(["plan", "--model", path, "--board", "rpi-zero-2w"]) == 0
    out = capsys.readouterr().out
    assert "max_inference_len 256" in out and "headroom" in out
    assert cli.main(["plan", "--model", path, "--max-inference-len", "auto", "--json",
                     "--board", "sl2610"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["max_inference_len"] == 256 and d["board"] == "sl2610" and d["fits"]
    assert d["budget"] == boards.get("sl2610").budget
    for argv in (["--max-inference-len", "auto"], ["--board", "nope"]):
        assert cli.main(["plan", "--model", path] + argv) == 2
    with pytest.raises(SystemExit, match="2"):      # argparse's usage error
        cli.main(["plan", "--model", path, "--max-inference-len", "0"])
    assert cli.main(["plan", "--model", path + ".missing"]) == 2
    assert cli.main(["plan", "--model", path, "--agent", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["agent"] and any(r["name"].startswith("agent: grammar") for r in d["rows"])
    # the snapshot row is the built-in toolset's real prefix on this model, anonymous unless
    # the snapshot stays in its file
    n = len(_agent_on(path, None).prefix_ids())
    (snap,) = [r for r in d["rows"] if r["name"].startswith("prefix snapshot")]
    assert snap["name"] == f"prefix snapshot: {min(n, d['max_inference_len'])} tokens"
    assert snap["kind"] == "anon"
    assert cli.main(["plan", "--model", path, "--agent", "--snapshot-file", "--json"]) == 0
    in_file = json.loads(capsys.readouterr().out)
    assert in_file["total_resident"] == d["total_resident"] - snap["bytes"]


def _agent_on(path, budget):
    from edge_runtime.agent import Agent
    from edge_runtime.decoder import Model
    from edge_runtime.tools_builtin import TOOLS
    return Agent(Model.load(path, max_inference_len=128, threads=1, budget=budget), TOOLS)


def test_agent_is_refused_when_its_plan_does_not_fit(tiny_gguf_factory, tmp_path, monkeypatch):
    from edge_runtime.memory import agent_plan
    monkeypatch.setenv("EDGE_RUNTIME_CACHE", str(tmp_path))
    path = tiny_gguf_factory(n_vocab=600)
    roomy = _agent_on(path, 1 << 30)
    need = agent_plan(roomy.model, len(roomy.prefix_ids())).total_resident
    session = roomy.model.plan.total_resident
    assert session < need
    assert list(tmp_path.glob("*.vocab-*.idx"))       # constructing it mapped the index
    with pytest.raises(MemoryBudgetError) as e:
        _agent_on(path, need - 1)                      # the session fits, the agent does not
    msg = str(e.value)
    assert msg.startswith("the agent's memory plan") and "over by 0.0 MiB" in msg
    assert "agent: grammar vocabulary index" in msg and "prefix snapshot" in msg
    assert _agent_on(path, need).model.plan.budget == need


def test_auto_context_counts_the_agent(tiny_gguf_factory, tmp_path, monkeypatch):
    """Model.load(agent=True) plans the agent's rows and real prefix, so "auto" leaves room
    for them: with a budget that holds the agent at 2048 positions, the session alone would
    take a longer context and the agent would then be refused."""
    from edge_runtime.agent import Agent
    from edge_runtime.memory import agent_plan
    from edge_runtime.decoder import Model
    from edge_runtime.tools_builtin import TOOLS
    monkeypatch.setenv("EDGE_RUNTIME_CACHE", str(tmp_path))
    path = tiny_gguf_factory(n_vocab=600, context_length=4096)
    probe = Agent(Model.load(path, max_inference_len=2048, threads=1), TOOLS)
    budget = agent_plan(probe.model, len(probe.prefix_ids())).total_resident
    plain = Model.load(path, max_inference_len="auto", budget=budget, threads=1)
    assert plain.max_inference_len > 2048
    with pytest.raises(MemoryBudgetError, match="the agent's memory plan"):
        Agent(plain, TOOLS)
    m = Model.load(path, max_inference_len="auto", budget=budget, threads=1, agent=True)
    assert m.max_inference_len == 2048
    assert Agent(m, TOOLS).model is m                  # not refused
    with pytest.raises(MemoryBudgetError, match="^the agent's memory plan"):
        Model.load(path, max_inference_len=2048, budget=budget - 1, threads=1, agent=True)
    with pytest.raises(InvalidArgumentError):
        Model.load(path, agent="yes")
    with pytest.raises(MemoryBudgetError, match="no room for a request"):
        Model.load(path, max_inference_len=len(probe.prefix_ids()), threads=1, agent=True)


def test_agent_first_run_index_build_is_checked(tiny_gguf_factory, tmp_path, monkeypatch):
    from edge_runtime.memory import agent_budget as agent_mem
    monkeypatch.setenv("EDGE_RUNTIME_CACHE", str(tmp_path))
    monkeypatch.setattr(agent_mem, "INDEX_BUILD_BYTES_PER_TOKEN", 1 << 20)   # 600 MiB to build
    path = tiny_gguf_factory(n_vocab=600)
    with pytest.raises(MemoryBudgetError, match="^the agent's first run .index build."):
        _agent_on(path, 512 * MIB)
    assert not list(tmp_path.glob("*.vocab-*.idx"))   # refused before building
    _agent_on(path, 1 << 40)                           # builds it
    _agent_on(path, 512 * MIB)                         # the file is there: nothing to build


# ---- RSS tracking and page release -------------------------------------------------------------

needs_proc = pytest.mark.skipif("anon" not in read_status(), reason="no RssAnon in /proc/self/status")


@needs_proc
def test_rss_tracker_sees_a_64_mib_allocation_between_samples():
    t = RssTracker()
    with t.phase("idle"):
        time.sleep(0.02)
    with t.phase("alloc"):
        # fresh pages from the kernel (malloc could hand back memory that is already resident)
        a = mmap.mmap(-1, 64 * MIB, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        np.frombuffer(a, dtype=np.uint8)[::PAGE_SIZE] = 1   # touch every page
        # only the background sampler can see it; give it time even on a loaded machine
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and \
                t.peak["alloc"].anon - t.peak["idle"].anon < 60 * MIB:
            time.sleep(0.01)
        del a
    idle, alloc = t.peak["idle"], t.peak["alloc"]
    assert alloc.anon - idle.anon >= 60 * MIB
    assert alloc.rss - idle.rss >= 60 * MIB
    assert t.sample().anon < alloc.anon - 32 * MIB     # freed again; the peak remembers
    assert alloc.uss is not None and alloc.hwm >= alloc.rss
    s = t.summary()
    assert s["peak_anon"] == alloc.anon and s["alloc_peak_anon"] == alloc.anon


@needs_proc
def test_advise_dontneed_drops_a_mapped_files_pages(tmp_path):
    f = tmp_path / "blob"
    f.write_bytes(os.urandom(16 * MIB))
    with open(f, "rb") as fh:
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    view = np.frombuffer(mm, dtype=np.uint8)
    before = read_status()["file"]
    int(view[::PAGE_SIZE].sum())   # touch every page
    touched = read_status()["file"]
    assert touched - before >= 15 * MIB
    assert advise(view.ctypes.data, view.nbytes, "dontneed")
    assert touched - read_status()["file"] >= 15 * MIB
    assert advise(view.ctypes.data, view.nbytes, "willneed")
    del view
    mm.close()


def test_page_range_alignment():
    P = PAGE_SIZE
    assert page_range(P + 10, 3 * P, inward=True) == (2 * P, 2 * P)
    assert page_range(P + 10, 3 * P, inward=False) == (P, 4 * P)
    assert page_range(P + 10, 100, inward=True) == (2 * P, 0)
    assert not advise(P + 10, 100, "dontneed")   # no whole page inside: nothing to do
    with pytest.raises(ValueError, match="page policy must be one of"):
        advise(0, P, "forget")


# ---- board emulation ---------------------------------------------------------------------------

def _group_or_skip():
    try:
        emulate._remove(emulate.make_group(64 * MIB))
    except EmulationUnavailable as e:
        pytest.skip(str(e))


ALLOC = "import numpy as np; a = np.ones({} << 20, np.uint8); print(int(a[::4096].sum()))"


def test_emulate_limits_memory_and_reports_oom():
    _group_or_skip()
    ok = emulate.run([sys.executable, "-c", ALLOC.format(32)], 160 * MIB, cores=1,
                     drop_caches=False)
    assert ok.returncode == 0 and ok.oom_kills == 0 and len(ok.cpus) == 1
    assert 32 * MIB <= ok.peak <= 160 * MIB
    killed = emulate.run([sys.executable, "-c", ALLOC.format(256)], 96 * MIB, drop_caches=False)
    assert killed.returncode == -9 and killed.oom_kills >= 1 and killed.peak <= 96 * MIB


def test_emulate_reports_hitting_the_limit_without_an_oom_kill(tmp_path):
    _group_or_skip()
    big = tmp_path / "big"
    big.write_bytes(os.urandom(160 * MIB))
    fd = os.open(big, os.O_RDONLY)
    os.fsync(fd)                                          # dirty pages cannot be evicted
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)   # our own file: the group will read it
    os.close(fd)
    # reading 160 MiB through a 64 MiB group: the page cache is reclaimed at the limit
    hit = emulate.run(["sh", "-c", f"cat '{big}' > /dev/null"], 64 * MIB)
    assert hit.returncode == 0 and hit.oom_kills == 0
    assert hit.limit_hit and hit.peak <= 64 * MIB
    calm = emulate.run([sys.executable, "-c", "0"], 256 * MIB)
    assert calm.returncode == 0 and not calm.limit_hit and calm.failcnt == 0


def _cached_kib():
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Cached:"))


def test_emulate_keeps_the_page_cache_unless_asked(tmp_path, monkeypatch, capsys):
    _group_or_skip()
    mine = tmp_path / "cached"
    mine.write_bytes(os.urandom(96 * MIB))
    assert len(mine.read_bytes()) == 96 * MIB           # in the page cache now
    before = _cached_kib()
    assert cli.main(["emulate", "--limit", "128M", "--", sys.executable, "-c", "0",
                     str(mine)]) == 0
    assert "page cache kept" in capsys.readouterr().err
    # a drop (machine-wide) or an eviction of the named file would take our 96 MiB with it
    assert _cached_kib() > before - 48 * 1024
    dropped = []
    monkeypatch.setattr(emulate, "_drop_caches", lambda evict, notes: dropped.append(evict))
    assert cli.main(["emulate", "--limit", "128M", "--drop-caches", "--", sys.executable, "-c",
                     "0", str(mine)]) == 0
    assert len(dropped) == 1 and str(mine) in dropped[0]


def test_emulate_limit_option(capsys):
    assert emulate.parse_size("352M") == 352 * MIB and emulate.parse_size("1.5G") == 1536 * MIB
    assert emulate.parse_size("300MiB") == 300 * MIB and emulate.parse_size("4096") == 4096
    for bad in ("", "12X", "-5M", "0"):
        with pytest.raises(ValueError, match="not a memory size"):
            emulate.parse_size(bad)
    assert cli.main(["emulate", "--limit", "lots", "--", "true"]) == 2
    assert "--limit: not a memory size" in capsys.readouterr().err
    assert cli.main(["emulate", "--", "true"]) == 2
    assert "give --board NAME or --limit SIZE" in capsys.readouterr().err


def test_cli_emulate_honours_the_limit(capsys):
    _group_or_skip()
    assert cli.main(["emulate", "--limit", "96M", "--", sys.executable, "-c",
                     ALLOC.format(32)]) == 0
    assert "limit 96 MiB" in capsys.readouterr().err
    assert cli.main(["emulate", "--limit", "96M", "--", sys.executable, "-c",
                     ALLOC.format(256)]) == 128 + 9
    err = capsys.readouterr().err
    assert "oom kills 1" in err and "limit hit yes" in err


def test_cli_emulate_without_cgroups_exits_2(monkeypatch, capsys):
    def unavailable(limit):
        raise EmulationUnavailable("no writable memory cgroup: test")
    monkeypatch.setattr(emulate, "make_group", unavailable)
    assert cli.main(["emulate", "--board", "rpi-zero-2w", "--", sys.executable, "-c", "0"]) == 2
    assert "cannot emulate here: no writable memory cgroup" in capsys.readouterr().err
    assert cli.main(["emulate", "--board", "rpi-zero-2w", "--"]) == 2


def test_cli_emulate_runs_a_command(capsys):
    _group_or_skip()
    rc = cli.main(["emulate", "--board", "rpi-zero-2w", "--", sys.executable, "-c",
                   "import sys; sys.exit(3)"])
    assert rc == 3
    err = capsys.readouterr().err
    assert "emulate rpi-zero-2w: limit 352 MiB" in err and "oom kills 0" in err
    assert "limit hit no (failcnt 0)" in err


# ---- against the real model (need the Model and the default model) -----------------------------

def probe(model, n, prompt_tokens=128, decode=32, pages="keep"):
    out = subprocess.run(
        [sys.executable, str(HERE / "rss_probe.py"), model, "--max-inference-len", str(n),
         "--prompt-tokens", str(prompt_tokens), "--decode", str(decode), "--pages", pages,
         "--threads", "2"],
        capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(HERE.parent)})
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def probes(default_model):
    """One fresh-process measurement per max_inference_len, shared by the tests below."""
    cache = {}

    def get(n):
        if n not in cache:
            cache[n] = probe(default_model, n)
        return cache[n]
    return get


@pytest.mark.model
def test_plan_within_10_percent_of_measured(default_model):
    # A full context (480 + 32 = 512 positions), so every KV page the plan counts is touched.
    d = probe(default_model, 512, prompt_tokens=480, decode=32)
    assert d["n_prompt"] == 480
    assert abs(d["peak_anon"] - d["plan_anon"]) <= 0.10 * d["plan_anon"]
    assert abs(d["peak_rss"] - d["plan_resident"]) <= 0.10 * d["plan_resident"]


@pytest.mark.model
@pytest.mark.parametrize("n", [512, 4096, 32768])
def test_rss_budget(probes, n):
    budgets = boards.parse_flat_toml((HERE / "rss_budgets.toml").read_text())
    d = probes(n)
    assert d["max_inference_len"] == n
    assert d["peak_anon"] <= budgets[f"anon_mib_{n}"] * MIB
    assert d["peak_rss"] <= budgets[f"total_mib_{n}"] * MIB
    assert d["peak_anon"] <= 1.10 * d["plan_anon"]   # never more than the plan


@pytest.mark.model
def test_anon_grows_with_context_only_as_planned(probes):
    lo, hi = probes(512), probes(32768)
    planned = hi["plan_anon"] - lo["plan_anon"]
    # the plan's growth is the global layers' KV (and scores: 2 threads x 4 heads) alone ...
    assert planned == 3 * 2 * (32768 - 512) * 256 * 2 + 2 * 4 * 4 * (32768 - 512)
    # ... and the measured growth does not exceed it
    assert hi["peak_anon"] - lo["peak_anon"] <= planned + 2 * MIB


def _evict(paths):
    """Drop these files' pages from the page cache (nobody maps them): the next reader is
    charged for them, without touching the rest of the machine's cache."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


@pytest.fixture(scope="module")
def private_model(default_model, tmp_path_factory):
    """A private copy of the default model and a cache of its own (index, masks, snapshots,
    built by a first run), so a test can evict their pages and be charged for every one."""
    d = tmp_path_factory.mktemp("private")
    model = d / "model.gguf"
    shutil.copyfile(default_model, model)
    env = {**os.environ, "EDGE_RUNTIME_CACHE": str(d / "cache")}
    first = subprocess.run(_agent_cmd(model, d, "x86-generic"), capture_output=True, text=True,
                           timeout=1800, env=env)
    assert first.returncode == 0, first.stderr
    yield model, d, json.loads(first.stdout)["calls"]
    model.unlink()                               # pytest keeps tmp dirs: not 278 MB of them


def _agent_cmd(model, d, board, *extra):
    return [sys.executable, "-m", "edge_runtime", "agent", "--model", str(model), "--board",
            board, "--cache-dir", str(d / "kv"), "--max-steps", "1", "--json", "--stats",
            *extra, "turn on the kitchen lights"]


@pytest.mark.model
@pytest.mark.parametrize("name", sorted(boards.all_boards()))
def test_agent_runs_inside_every_board_with_default_settings(private_model, name, capfd,
                                                             monkeypatch):
    """Under each shipped profile's budget, its pages evicted so the group pays for every one
    it reads, the agent with default settings makes the right call without touching the
    limit; the plan it chose is within 5% of the group's peak (the run's own positions; the
    rest of the KV cache is never touched). The 512 MB board gets at least 1024 positions."""
    _group_or_skip()
    model, d, calls = private_model
    monkeypatch.setenv("EDGE_RUNTIME_CACHE", str(d / "cache"))
    board = boards.get(name)
    _evict([model, *(d / "cache").iterdir(), *(d / "kv").glob("*.kvs")])
    capfd.readouterr()
    r = emulate.run_board(board, _agent_cmd(model, d, name))
    out = json.loads(capfd.readouterr().out.strip().splitlines()[-1])
    assert r.returncode == 0 and r.oom_kills == 0, r
    assert out["calls"] == calls and [c["name"] for c in calls] == ["toggle_light"]
    assert r.failcnt == 0 and not r.limit_hit, r
    st = out["stats"]
    assert os.path.getsize(model) < r.peak <= board.budget    # the model's pages were charged
    if name == "rpi-zero-2w":
        assert st["max_inference_len"] >= 1024 and st["pages"] == "keep"
    else:
        assert st["max_inference_len"] == 4096 and st["pages"] == "keep"
    used = plan_for_model(str(model), st["prefill_tokens"] + st["decode_tokens"],
                          threads=st["threads"], agent=True, snapshot_file=True)
    assert abs(r.peak - used.total_resident) <= 0.05 * r.peak, (r.peak, used.total_resident)


@pytest.mark.model
def test_agent_refused_on_the_smallest_board_names_what_fits(private_model, capfd,
                                                               monkeypatch):
    """A context whose plan does not fit the 512 MB board with pages kept is refused (exit 2,
    the rows and the least it runs in named), never killed; with pages auto the same context
    runs, its pages released."""
    _group_or_skip()
    model, d, calls = private_model
    monkeypatch.setenv("EDGE_RUNTIME_CACHE", str(d / "cache"))
    board = boards.get("rpi-zero-2w")
    capfd.readouterr()
    r = emulate.run_board(board, _agent_cmd(model, d, board.name, "--max-inference-len", "4096",
                                            "--pages", "keep"))
    assert r.returncode == 2 and r.oom_kills == 0, r
    err = capfd.readouterr().err
    assert "the agent's memory plan for max_inference_len 4096 needs" in err
    assert "but the budget is 352.0 MiB" in err
    assert 'It fits with pages="release" and max_inference_len 4096' not in err
    assert 'It fits with pages="release" and max_inference_len 512' in err
    r = emulate.run_board(board, _agent_cmd(model, d, board.name, "--max-inference-len", "4096"))
    out = json.loads(capfd.readouterr().out.strip().splitlines()[-1])
    assert r.returncode == 0 and r.oom_kills == 0 and out["calls"] == calls, r
    assert out["stats"]["pages"] == "release" and out["stats"]["max_inference_len"] == 4096


def agent_probe(model, n, cache):
    out = subprocess.run(
        [sys.executable, str(HERE / "rss_probe.py"), model, "--max-inference-len", str(n),
         "--threads", "2", "--agent", "turn on the kitchen lights", "--cache-dir",
         str(cache / "kv")],
        capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(HERE.parent), "EDGE_RUNTIME_CACHE": str(cache)})
    return json.loads(out.stdout)


@pytest.mark.model
def test_agent_rss_against_plan_and_budget(default_model, tmp_path):
    first = agent_probe(default_model, 2048, tmp_path)        # builds the index and snapshot
    assert len(list(tmp_path.glob("*.vocab-*.idx"))) == 1 and list(tmp_path.glob("kv/*.kvs"))
    d = agent_probe(default_model, 2048, tmp_path)            # a cold start with both present
    assert d["calls"] and d["calls"] == first["calls"]
    budgets = boards.parse_flat_toml((HERE / "rss_budgets.toml").read_text())
    assert d["peak_anon"] <= budgets["agent_anon_mib_2048"] * MIB
    assert d["peak_rss"] <= budgets["agent_total_mib_2048"] * MIB
    # never above the plan for the full context ...
    assert d["peak_anon"] <= d["plan_anon"] and d["peak_rss"] <= d["plan_resident"]
    # ... and within 10% of the plan for the positions the run used (the rest of the KV cache
    # is calloc'ed and never touched)
    assert abs(d["peak_anon"] - d["plan_used_anon"]) <= 0.10 * d["plan_used_anon"]
    assert abs(d["peak_rss"] - d["plan_used_resident"]) <= 0.10 * d["plan_used_resident"]
