"""Fuzzing the GGUF loading path: parser, config, tokenizer (C vocabulary index) and model bind.

Two fuzzers:
- a seeded, structure-aware mutation fuzzer (`fuzz`) over real and synthetic files. Seeds are a
  tiny Q8_0 model, a tiny F32 model with a separate output head, a file holding every metadata
  type, and the real default model's header (vocabulary arrays cut to 400 entries, tensor data
  left as a sparse hole). A case applies 1-3 mutations aimed at the fields gguf_craft.fields maps
  (lengths, counts, value/array/tensor types, dims, offsets, string sizes), or flips, inserts,
  deletes or truncates bytes. The test runs a fixed number of cases (TEST_CASES, in worker
  subprocesses with an address space limit); the 100,000-case run whose result is in
  docs/RELIABILITY.md is the same fuzzer by hand:
  `python tests/test_fuzz_gguf.py --cases 100000 --seed 1 --real MODEL`.
- a hypothesis property over generated headers: what was written is what is read back, and
  any single corruption of the bytes is either still a valid file or a GGUFError.

The rule checked on every case: open_gguf raises nothing but GGUFError; Model.load nothing but
GGUFError (UnsupportedModelError is one) or TokenizerError; an accepted tiny model evaluates two
tokens to finite-or-not logits without crashing; no case hangs (HANG_SECONDS, an alarm far
above any real case, so a loaded machine cannot trip it); the address space limit (1.5 GiB
over the start) is never hit; resident memory does not creep. Only outcomes are asserted:
how long the run takes is printed, never checked.
"""
from __future__ import annotations

import gc
import json
import random
import os
import resource
import signal
import struct
import subprocess
import sys
import time
import traceback
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_craft as craft  # noqa: E402

TEST_CASES = int(os.environ.get("ER_FUZZ_CASES", "20000"))
HANG_SECONDS = 60.0
AS_HEADROOM = 1 << 30
RSS_CREEP = 64 << 20
REAL_KEEP = 400   # vocabulary entries kept from the real header
_HERE = os.path.dirname(os.path.abspath(__file__))


# ---- seeds ---------------------------------------------------------------------------------

class Seed:
    def __init__(self, name, parts, tail=b"", total=None, runnable=True):
        self.parts, head = parts, craft.header(parts)
        self.name, self.head, self.tail = name, head, tail
        self.total = total if total is not None else len(head) + len(tail)
        self.fields, self.header_end = craft.fields(head)
        self.sections = [p for p, w, k in self.fields if k == "section"]
        self.fields = [f for f in self.fields if f[1]]
        self.runnable = runnable   # accepted models may be evaluated (their weights are real bytes)


def _tiny_seed(workdir, name, **kw):
    from conftest import write_tiny_gguf
    path = os.path.join(workdir, name + ".gguf")
    write_tiny_gguf(path, n_layer=1, n_embd=32, n_head=2, n_head_kv=1, head_dim=16, n_ff=64,
                    n_vocab=300, context_length=64, sliding_window=8, **kw)
    with open(path, "rb") as f:
        buf = f.read()
    os.unlink(path)
    p = craft.parse(buf)
    return Seed(name, p, p.data)


def _types_seed():
    """Every scalar type, every array element type (one empty), a 64-byte alignment, and a
    partial gemma3 config so the loader goes past the parser."""
    kvs = [craft.KV("general.alignment", 4, craft.scalar(4, 64)),
           craft.KV("general.architecture", 8, craft.string("gemma3")),
           craft.KV("gemma3.block_count", 4, craft.scalar(4, 1)),
           craft.KV("gemma3.embedding_length", 5, craft.scalar(5, 32)),
           craft.KV("gemma3.attention.head_count", 10, craft.scalar(10, 2)),
           craft.KV("x.empty", 9, craft.array(4, []))]
    for vt, v in ((0, 7), (1, -7), (2, 7), (3, -7), (4, 7), (5, -7), (6, 0.5), (7, True),
                  (10, 7), (11, -7), (12, 0.25)):
        kvs.append(craft.KV(f"x.s{vt}", vt, craft.scalar(vt, v)))
        kvs.append(craft.KV(f"x.a{vt}", 9, craft.array(vt, [v, v])))
    kvs.append(craft.KV("x.str", 8, craft.string("h\u00e9llo")))
    kvs.append(craft.KV("x.strs", 9, craft.array(8, ["", "a", "\u2581b"])))
    tensors = [craft.TensorInfo("token_embd.weight", [32, 4], 8, 0),
               craft.TensorInfo("f", [4, 2], 0, 192)]
    p = craft.Parts(3, kvs, tensors, alignment=64, data=bytes(range(256)) * 1)
    return Seed("types", p, p.data)


def _real_seed(path):
    import mmap
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        p = craft.parse(mm, keep_data=False)
    p = craft.shrink_arrays(p, REAL_KEEP)
    return Seed("real", p, b"", total=len(craft.header(p)) + p.data_size, runnable=False)


def make_seeds(workdir, real_path=None):
    seeds = [_tiny_seed(workdir, "tiny-q8"),
             _tiny_seed(workdir, "tiny-f32", weight_type="F32", tied=False),
             _types_seed()]
    if real_path and os.path.exists(real_path):
        seeds.append(_real_seed(real_path))
    return seeds


# ---- mutations -----------------------------------------------------------------------------

_BIG = [0, 1, 2, 3, 4, 7, 8, 13, 31, 32, 33, 63, 64, 255, 256, 4095, 4096, 65535, 65536,
        2**24, 2**24 + 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**40, 2**62, 2**63 - 1, 2**63,
        2**64 - 1]
_TYPE_VALUES = list(range(0, 46)) + [255, 2**16, 2**31, 2**32 - 1]


def _field_value(rng, kind, cur, seed):
    r = rng.random()
    if kind in ("vtype", "atype", "ttype", "version"):
        return rng.choice(_TYPE_VALUES) if r < 0.9 else rng.getrandbits(32)
    width_max = 2**32 - 1 if kind == "ndims" else 2**64 - 1
    if r < 0.4:
        v = rng.choice(_BIG)
    elif r < 0.7:   # near the current value: off by a little
        v = cur + rng.randint(-3, 3)
    elif r < 0.85:  # tied to the file: its size, or where the header ends
        v = rng.choice([seed.total, seed.header_end, len(seed.head)]) + rng.randint(-2, 2)
    else:
        v = rng.getrandbits(63) >> rng.randrange(63)
    return min(max(v, 0), width_max)


def _random_value(rng):
    """(value type, payload) of a random but well-encoded metadata value."""
    vt = rng.choice(list(craft.VT_CODE) + [craft.VT_STRING, craft.VT_ARRAY])
    if vt == craft.VT_STRING:
        return vt, craft.string(rng.randbytes(rng.randrange(9)))
    if vt == craft.VT_ARRAY:
        et = rng.choice(list(craft.VT_CODE) + [craft.VT_STRING])
        vals = [_random_value_of(rng, et) for _ in range(rng.randrange(4))]
        return vt, craft.array(et, vals)
    return vt, craft.scalar(vt, _random_value_of(rng, vt))


def _random_value_of(rng, vt):
    if vt == craft.VT_STRING:
        return "".join(chr(rng.randrange(32, 0x2600)) for _ in range(rng.randrange(5)))
    if vt in (6, 12):
        return rng.choice([0.0, -1.0, 1e-6, 1e30, np.inf, -np.inf, np.nan, 10000.0])
    if vt == 7:
        return bool(rng.getrandbits(1))
    bits = {0: 8, 1: 8, 2: 16, 3: 16, 4: 32, 5: 32, 10: 64, 11: 64}[vt]
    v = rng.choice(_BIG + [rng.getrandbits(16)]) % (1 << bits)
    return v - (1 << bits) if vt in (1, 3, 5, 11) and v >= 1 << (bits - 1) else v


def _edit(rng, seed):
    """One well-encoded change to the parts: retype or drop a kv, drop or repeat an entry,
    move a tensor, change its type or shape. The header stays parseable byte-wise."""
    p = seed.parts.copy()
    op = rng.random()
    if op < 0.4:
        k = rng.choice(p.kvs)
        k.vtype, k.payload = _random_value(rng)
    elif op < 0.55:
        del p.kvs[rng.randrange(len(p.kvs))]
    elif op < 0.65:
        del p.tensors[rng.randrange(len(p.tensors))]
    elif op < 0.75:
        p.kvs.insert(rng.randrange(len(p.kvs)), rng.choice(p.kvs))
    else:
        t = rng.choice(p.tensors)
        r = rng.random()
        if r < 0.3:
            t.offset = rng.choice(p.tensors).offset
        elif r < 0.6:
            t.ttype = rng.choice([0, 1, 8, 30, 2, 12, 14, 24, 26, 39, 41])
        else:
            dims = t.dims + [1] * rng.randrange(2)
            t.dims = rng.sample(dims, len(dims))
    head = craft.header(p)
    return bytearray(head), seed.total - len(seed.head) + len(head)


def mutate(rng, seed):
    """(header bytes, tail bytes, total file size) for one case."""
    head, tail, total = bytearray(seed.head), seed.tail, seed.total
    n_ops = rng.choice([1, 1, 1, 2, 2, 3])
    if rng.random() < 0.35:
        head, total = _edit(rng, seed)
        n_ops -= 1
    base = len(head)
    for _ in range(n_ops):
        op = rng.random()
        if op < 0.5:        # set one mapped field
            pos, width, kind = rng.choice(seed.fields)
            if pos + width > len(head):
                continue
            fmt = "<I" if width == 4 else "<Q"
            cur = struct.unpack_from(fmt, head, pos)[0]
            struct.pack_into(fmt, head, pos, _field_value(rng, kind, cur, seed))
        elif op < 0.7:      # overwrite a few bytes
            at = rng.randrange(len(head))
            n = rng.randint(1, 8)
            head[at:at + n] = rng.randbytes(n)
        elif op < 0.8:      # cut the file at (or near) a section boundary, or anywhere
            if rng.random() < 0.7:
                at = rng.choice(seed.sections) + rng.randint(-2, 2)
            else:
                at = rng.randrange(total)
            at = max(0, min(at, len(head)))
            return bytes(head[:at]), b"", at
        elif op < 0.9:      # insert or delete bytes: every later field shifts
            at = rng.randrange(len(head))
            n = rng.randint(1, 16)
            if rng.random() < 0.5:
                head[at:at] = rng.randbytes(n)
            else:
                del head[at:at + n]
        else:               # copy one section over another
            a, b = rng.choice(seed.sections), rng.choice(seed.sections)
            n = rng.randint(1, 63)
            head[b:b + n] = head[a:a + n]
    return bytes(head), tail, total - base + len(head)


def write_case(path, head, tail, total):
    with open(path, "wb") as f:
        f.write(head)
        f.write(tail)
        if total > len(head) + len(tail):
            f.truncate(total)   # a sparse hole stands in for the real model's weights


# ---- one case ------------------------------------------------------------------------------

class CaseTimeout(BaseException):
    """Raised from the alarm: not an Exception, so no handler in the code under test eats it."""


def _alarm(signum, frame):
    raise CaseTimeout()


def check_case(path, runnable):
    """Outcome of loading one file: "parse-reject", "load-reject", "eval-reject" (NaN/Inf weights
    reached the logits), "ok". Anything else raises."""
    from edge_runtime.errors import NonFiniteLogitsError
    from edge_runtime.gguf import GGUFError, StringArray, open_gguf
    from edge_runtime.decoder import Model
    from edge_runtime.tokenizer import TokenizerError
    try:
        g = open_gguf(path)
        try:
            for key in g.metadata:
                v = g.metadata[key]
                if isinstance(v, StringArray) and len(v):
                    v[len(v) - 1]
            for t in g.tensors.values():
                t.data
        finally:
            g.close()
    except GGUFError:
        return "parse-reject"
    try:
        m = Model.load(path, threads=1, max_inference_len=16, prefill_chunk=4)
    except (GGUFError, TokenizerError):
        return "load-reject"
    if runnable:
        ids = m.tokenizer.encode("hi", add_bos=False)[:min(2, m.max_inference_len)] or [0]
        try:
            m.eval(ids)
        except NonFiniteLogitsError:   # mutated weight bytes that are NaN/Inf: documented
            return "eval-reject"
    return "ok"


def fuzz(n_cases, seed, workdir, real_path=None):
    """Run n_cases; returns a summary dict. A failing case's file is kept in workdir."""
    seeds = make_seeds(workdir, real_path)
    rng = random.Random(seed)
    case_path = os.path.join(workdir, "case.gguf")
    counts, failures = {}, []
    slowest, unmapped = 0.0, 0
    signal.signal(signal.SIGALRM, _alarm)
    rss0 = _rss()
    t_start = time.perf_counter()
    for i in range(n_cases):
        s = seeds[i % len(seeds)]
        head, tail, total = mutate(rng, s)
        write_case(case_path, head, tail, total)
        t0 = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
        try:
            out = check_case(case_path, s.runnable)
        except CaseTimeout:
            out = "hang"
        except Exception as e:   # a finding: keep the file and the stack
            out = "crash"
            kept = os.path.join(workdir, f"crash-{len(failures)}.gguf")
            os.replace(case_path, kept)
            failures.append({"case": i, "seed": s.name, "file": kept, "error": repr(e)[:300],
                             "where": traceback.format_exc().splitlines()[-3:]})
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        slowest = max(slowest, time.perf_counter() - t0)
        if not s.runnable and out != "parse-reject":
            unmapped += 1
            if unmapped % 3 == 0:   # a loaded Model is a reference cycle: its 290 MB mapping
                gc.collect()        # goes only when the collector runs; keep few alive
        counts[out] = counts.get(out, 0) + 1
        if i == 999:
            gc.freeze()     # warm-up done: later collections scan only new objects
            rss0 = _rss()   # ...and imports and caches are in
    return {"cases": sum(counts.values()), "outcomes": counts, "failures": failures[:20],
            "n_failures": len(failures), "slowest_case_s": round(slowest, 4),
            "seconds": round(time.perf_counter() - t_start, 1),
            "rss_growth": _rss() - rss0,
            "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10,
            "seeds": [s.name for s in seeds]}


def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _limit_address_space():
    """Cap the address space at 1.5 GiB over what is mapped now (1 GiB of headroom, 0.5 GiB for
    the real seed's sparse mapping): a crafted length that makes us allocate gigabytes becomes a
    MemoryError (a finding) instead of swapping the box."""
    if "asan" in os.environ.get("LD_PRELOAD", ""):
        return None   # ASan reserves terabytes of shadow address space; it checks allocations
    with open("/proc/self/statm") as f:
        vm = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limit = vm + AS_HEADROOM + (512 << 20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return limit


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(description="Mutation-fuzz the GGUF loading path.")
    ap.add_argument("--cases", type=int, default=100000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--real", default=None, help="a real GGUF whose header seeds the fuzzer")
    args = ap.parse_args(argv)
    import tempfile
    sys.path.insert(0, os.path.dirname(_HERE))
    import edge_runtime.decoder  # noqa: F401  (imports before the address-space cap)
    warnings.simplefilter("error")   # deprecated conversions etc. count as findings
    # ...except the documented clamp of the max_inference_len check_case asks for
    warnings.filterwarnings("ignore", "max_inference_len .* context_length", UserWarning)
    workdir = args.workdir or tempfile.mkdtemp(prefix="er-fuzz-", dir="/dev/shm"
                                               if os.path.isdir("/dev/shm") else None)
    limit = _limit_address_space()
    summary = fuzz(args.cases, args.seed, workdir, args.real)
    summary["address_space_limit"] = limit
    summary["workdir"] = workdir
    print(json.dumps(summary))
    return 1 if summary["n_failures"] or summary["outcomes"].get("hang") else 0


if __name__ == "__main__":
    sys.exit(main())


# ---- the tests -----------------------------------------------------------------------------

import pytest  # noqa: E402

WORKERS = 2        # this box has 2 cores; each worker fuzzes its own seed stream


def _real_model():
    from edge_runtime import models
    try:
        return models.default()
    except models.DefaultModelUnavailable:
        return None


def test_fuzz_fixed_cases(tmp_path):
    """TEST_CASES mutated files through the whole loading path: every case ends in one of the
    specified outcomes (no crash, no hang, no big allocation: the address space is capped) and
    resident memory does not creep. The run's length is printed, never asserted."""
    real = _real_model()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(_HERE)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    shares = [TEST_CASES // WORKERS + (w < TEST_CASES % WORKERS) for w in range(WORKERS)]
    t0 = time.perf_counter()
    procs = []
    for w, share in enumerate(shares):
        d = tmp_path / f"w{w}"
        d.mkdir()
        cmd = [sys.executable, __file__, "--cases", str(share), "--seed", str(w + 1),
               "--workdir", str(d)]
        cmd += ["--real", real] if real else []
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, env=env))
    results = []
    for pr in procs:
        out, err = pr.communicate(timeout=4 * 3600)   # a hang detector, not a speed limit
        assert out.strip(), f"fuzz worker died (exit {pr.returncode}): {err[-2000:]}"
        results.append(json.loads(out.splitlines()[-1]))
    print(f"fuzz: {sum(r['cases'] for r in results)} cases in {time.perf_counter() - t0:.0f} s "
          f"over {WORKERS} workers; outcomes {[r['outcomes'] for r in results]}; slowest case "
          f"{max(r['slowest_case_s'] for r in results)} s; rss growth "
          f"{[r['rss_growth'] >> 10 for r in results]} KiB")
    for r, share in zip(results, shares):
        assert r["n_failures"] == 0, r["failures"]
        assert r["cases"] == share
        assert set(r["outcomes"]) <= {"parse-reject", "load-reject", "eval-reject", "ok"}, \
            r["outcomes"]   # no "hang", no "crash"
        assert r["rss_growth"] < RSS_CREEP
        assert r["outcomes"].get("ok", 0) > 0, "no case got past the loader: the mutator is too blunt"


# ---- crashers the fuzzer found, kept as regression tests -------------------------------------

def _retype(key, vtype, payload):
    def edit(p):
        k = p.kv(key)
        k.vtype, k.payload = vtype, payload
    return edit


def _set_dim(name, i, value):
    def edit(p):
        p.tensor(name).dims[i] = value
    return edit


_U32 = 4
# Crashers the fuzzer found (an exception other than GGUFError/TokenizerError), each as an
# edit of a valid tiny model; what they raised before the fix is in the comment.
REGRESSIONS = {
    # OverflowError from the C bind: config passed 3184984096 on as a C int
    "embedding_length u32 3184984096": _retype("gemma3.embedding_length", _U32,
                                               craft.scalar(_U32, 3184984096)),
    # TypeError: object of type 'float' has no len()  (config counting the vocabulary)
    "tokenizer.ggml.tokens as f32": _retype("tokenizer.ggml.tokens", 6, craft.scalar(6, 1.5)),
    # ValueError: the truth value of an empty array is ambiguous  (config)
    "general.architecture as empty array": _retype("general.architecture", 9, craft.array(4, [])),
    # ValueError: ...array with more than one element is ambiguous  (tokenizer flags)
    "add_bos_token as array": _retype("tokenizer.ggml.add_bos_token", 9, craft.array(7, [1, 0])),
    # ...and `model != "llama"` in the tokenizer
    "tokenizer.ggml.model as array": _retype("tokenizer.ggml.model", 9, craft.array(5, [1, 2])),
    # ValueError from the C vocabulary index, not a TokenizerError
    "duplicate token": lambda p: p.kv("tokenizer.ggml.tokens").__setattr__(
        "payload", craft.array(8, ["<pad>", "<pad>"] + [f"t{i}" for i in range(298)])),
    # ValueError: invalid literal for int() with base 16 (at decode time; checked at load now)
    "malformed byte token": lambda p: p.kv("tokenizer.ggml.tokens").__setattr__(
        "payload", craft.array(8, _tokens(p)[:4] + ["<0xZZ>"] + _tokens(p)[5:])),
}
# Accepted before, refused now: values of the wrong type or range that used to be coerced.
HARDENING = {
    "bos id as string": _retype("tokenizer.ggml.bos_token_id", 8, craft.string("2")),
    "block_count as string": _retype("gemma3.block_count", 8, craft.string("1")),
    "NaN rms epsilon": _retype("gemma3.attention.layer_norm_rms_epsilon", 6,
                               craft.scalar(6, float("nan"))),
}


def _tokens(p):
    c = craft._Cursor(p.kv("tokenizer.ggml.tokens").payload, 12)
    n = struct.unpack_from("<Q", p.kv("tokenizer.ggml.tokens").payload, 4)[0]
    return [c.raw_string().decode() for _ in range(n)]


@pytest.fixture(scope="module")
def tiny_parts(tiny_gguf_factory):
    path = tiny_gguf_factory(n_layer=1, n_embd=32, n_head=2, n_head_kv=1, head_dim=16, n_ff=64,
                             n_vocab=300, context_length=64, sliding_window=8)
    with open(path, "rb") as f:
        return craft.parse(f.read())


@pytest.mark.parametrize("case", sorted(REGRESSIONS) + sorted(HARDENING))
def test_fuzz_regression(case, tiny_parts, tmp_path):
    from edge_runtime.gguf import GGUFError
    from edge_runtime.decoder import Model
    from edge_runtime.tokenizer import TokenizerError
    p = tiny_parts.copy()
    if case == "malformed byte token":   # the byte token must stay a BYTE-typed entry
        assert _tokens(p)[4] == "<0x00>"
    {**REGRESSIONS, **HARDENING}[case](p)
    path = tmp_path / "bad.gguf"
    path.write_bytes(craft.build(p))
    with pytest.raises((GGUFError, TokenizerError)) as e:
        Model.load(path, threads=1, max_inference_len=16)
    assert "\n" not in str(e.value) and len(str(e.value)) < 300


# ---- hypothesis: generated headers read back exactly; corruptions are GGUFErrors -------------

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

_key = st.text(st.characters(min_codepoint=32, max_codepoint=0x24FF, blacklist_categories=("Cs",)),
               min_size=1, max_size=12)
_ints = {0: (0, 255), 1: (-128, 127), 2: (0, 2**16 - 1), 3: (-2**15, 2**15 - 1),
         4: (0, 2**32 - 1), 5: (-2**31, 2**31 - 1), 10: (0, 2**64 - 1), 11: (-2**63, 2**63 - 1)}


def _scalar_of(vt):
    if vt in _ints:
        return st.integers(*_ints[vt])
    if vt == 6:
        return st.floats(width=32, allow_nan=False)
    if vt == 12:
        return st.floats(allow_nan=False)
    if vt == 7:
        return st.booleans()
    return st.text(max_size=8)


@st.composite
def _value(draw):
    vt = draw(st.sampled_from(sorted(craft.VT_CODE) + [craft.VT_STRING, craft.VT_ARRAY]))
    if vt == craft.VT_ARRAY:
        et = draw(st.sampled_from(sorted(craft.VT_CODE) + [craft.VT_STRING]))
        vals = draw(st.lists(_scalar_of(et), max_size=5))
        return vt, (et, vals), craft.array(et, vals)
    v = draw(_scalar_of(vt))
    return vt, v, craft.string(v) if vt == craft.VT_STRING else craft.scalar(vt, v)


@st.composite
def _file(draw):
    keys = draw(st.lists(_key, max_size=6, unique=True))
    values = [draw(_value()) for _ in keys]
    kvs = [craft.KV(k, vt, payload) for k, (vt, _, payload) in zip(keys, values)]
    tensors, off = [], 0
    for i in range(draw(st.integers(0, 3))):
        ttype = draw(st.sampled_from([0, 1, 8]))
        per_block = craft.BLOCK[ttype][0]
        dims = [per_block * draw(st.integers(1, 3))] + draw(st.lists(st.integers(1, 3), max_size=2))
        t = craft.TensorInfo(f"t{i}", dims, ttype, off)
        tensors.append(t)
        off += -(-craft.nbytes(t) // 32) * 32
    data = bytes(draw(st.integers(0, 255)) for _ in range(4)) * (off // 4)
    p = craft.Parts(draw(st.sampled_from([2, 3])), kvs, tensors, data=data)
    return p, dict(zip(keys, values))


def _same(got, want, vt):
    if vt == 6:
        return np.float32(got) == np.float32(want)
    return got == want


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(_file())
def test_generated_headers_read_back(tmp_path, gen):
    from edge_runtime.gguf import open_gguf
    p, expect = gen
    path = tmp_path / "g.gguf"
    path.write_bytes(craft.build(p))
    g = open_gguf(path)
    assert set(g.metadata) == set(expect)
    for key, (vt, value, _) in expect.items():
        got = g.metadata[key]
        if vt == craft.VT_ARRAY:
            et, vals = value
            got = list(got)
            assert len(got) == len(vals) and all(_same(a, b, et) for a, b in zip(got, vals)), key
        else:
            assert _same(got, value, vt), key
    for t in p.tensors:
        have = g.tensors[t.name]
        assert list(have.shape) == t.dims and have.nbytes == craft.nbytes(t)
        assert bytes(g.view[have.offset:have.offset + have.nbytes]) == \
            p.data[t.offset:t.offset + craft.nbytes(t)]
    g.close()


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(_file(), st.data())
def test_corrupted_headers_are_gguf_errors(tmp_path, gen, data):
    """Overwrite, cut or extend a generated file anywhere: a valid file or a GGUFError."""
    from edge_runtime.gguf import GGUFError, open_gguf
    buf = bytearray(craft.build(gen[0]))
    how = data.draw(st.sampled_from(["overwrite", "cut", "extend"]))
    at = data.draw(st.integers(0, len(buf) - 1))
    if how == "overwrite":
        n = data.draw(st.integers(1, 8))
        buf[at:at + n] = data.draw(st.binary(min_size=n, max_size=n))
    elif how == "cut":
        del buf[at:]
    else:
        buf[at:at] = data.draw(st.binary(min_size=1, max_size=16))
    path = tmp_path / "c.gguf"
    path.write_bytes(bytes(buf))
    try:
        g = open_gguf(path)
    except GGUFError:
        return
    for key in g.metadata:
        try:
            g.metadata[key]
        except GGUFError:   # a string value decoded on access
            pass
    for t in g.tensors.values():
        assert t.offset + t.nbytes <= len(buf)
    g.close()


# ---- the C tokenizer over arbitrary bytes (invalid UTF-8, truncated sequences, NULs) ----------

@pytest.fixture(scope="module")
def tiny_tokenizer(tiny_gguf_factory):
    from edge_runtime.gguf import open_gguf
    from edge_runtime.tokenizer import Tokenizer
    return Tokenizer.from_gguf(open_gguf(tiny_gguf_factory(n_vocab=600)))


_utf8_edges = st.sampled_from([b"\xf0", b"\xf0\x9f", b"\xf0\x9f\xa4", b"\xe6\x97", b"\xc3", b"\x80",
                               b"\xff", b"\x00", b" ", b"\xe2\x96\x81", b"<0x41>", b"ab"])


@settings(max_examples=500, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=6) | _utf8_edges, max_size=24).map(b"".join), st.booleans())
def test_tokenizer_takes_any_bytes(tiny_tokenizer, data, special):
    """Every byte string encodes to in-range ids; valid UTF-8 decodes back to itself (byte
    fallback covers what no piece does; as in SentencePiece, U+2581 is the escaped space)."""
    tok = tiny_tokenizer
    ids = tok.encode(data, add_bos=False, special=special)
    assert all(0 <= i < tok.n_vocab for i in ids)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return   # split like llama.cpp (lead byte decides the length), checked below
    if not special:
        assert tok.decode_bytes(ids) == data.replace("\u2581".encode(), b" ")


@pytest.mark.llama
@pytest.mark.model
def test_tokenizer_on_any_bytes_matches_llama_cpp(default_model):
    """Invalid UTF-8 has no right answer but llama.cpp's: same ids for arbitrary bytes."""
    llama_cpp = pytest.importorskip("llama_cpp")
    from edge_runtime.gguf import open_gguf
    from edge_runtime.tokenizer import Tokenizer
    tok = Tokenizer.from_gguf(open_gguf(default_model))
    ref = llama_cpp.Llama(default_model, vocab_only=True, verbose=False)

    @settings(max_examples=400, deadline=None, derandomize=True, database=None)
    @given(st.lists(st.binary(max_size=6) | _utf8_edges, max_size=24).map(b"".join),
           st.booleans())
    def check(data, special):
        assert tok.encode(data, special=special) == ref.tokenize(data, add_bos=True,
                                                                 special=special)

    check()
