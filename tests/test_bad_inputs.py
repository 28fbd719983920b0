"""The table of bad inputs in docs/RELIABILITY.md, one test per row: each through the public API
(the exception type and what its message names) and, where the command line reaches it,
through `python -m edge_runtime` (exit status 2, one line on stderr, no traceback).

Broken files are edits of a valid tiny model made with tests/gguf_craft.py (which does not
share code with the parser under test). The tool-call rows are covered by tests/test_agent.py.
"""
from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gguf_craft as craft
from edge_runtime import ContextLengthError, GGUFError, MemoryBudgetError, Model
from edge_runtime.config import UnsupportedModelError
from edge_runtime.errors import USER_ERRORS, InvalidArgumentError, NonFiniteLogitsError
from edge_runtime.decoder import default_threads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(n_layer=1, n_embd=32, n_head=2, n_head_kv=1, head_dim=16, n_ff=64, n_vocab=300,
            context_length=64, sliding_window=8)


@pytest.fixture(scope="module")
def tiny(tiny_gguf_factory):
    return tiny_gguf_factory(**TINY)


@pytest.fixture(scope="module")
def raw(tiny):
    with open(tiny, "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def model(tiny):
    return Model.load(tiny, threads=1, max_inference_len=32)


def cli(*args, timeout=120):
    """Run the CLI; (exit status, stdout, stderr)."""
    r = subprocess.run([sys.executable, "-m", "edge_runtime", *args], capture_output=True,
                       text=True, cwd=ROOT, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def assert_cli_user_error(args, pattern):
    rc, out, err = cli(*args)
    assert rc == 2, (rc, out, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


# ---- broken files ------------------------------------------------------------------------------

def _edit_parts(edit):
    def make(raw):
        p = craft.parse(raw)
        edit(p)
        return craft.build(p)
    return make


def _del_kv(key):
    return _edit_parts(lambda p: p.kvs.remove(p.kv(key)))


def _del_tensor(name):
    return _edit_parts(lambda p: p.tensors.remove(p.tensor(name)))


def _set_tensor(name, **kw):
    return _edit_parts(lambda p: [setattr(p.tensor(name), k, v) for k, v in kw.items()])


def _last(p):
    return max(p.tensors, key=lambda t: t.offset)


def _grow_vocab(p):
    """One more token (with score and type) than token_embd.weight has rows."""
    for key, etype, extra in (("tokenizer.ggml.tokens", 8, ["extra"]),
                              ("tokenizer.ggml.scores", 6, [-1.0]),
                              ("tokenizer.ggml.token_type", 5, [1])):
        k = p.kv(key)
        n = struct.unpack_from("<Q", k.payload, 4)[0]
        k.payload = struct.pack("<IQ", etype, n + 1) + k.payload[12:] + craft.array(etype, extra)[12:]


def _arch(p):
    k = p.kv("general.architecture")
    k.payload = craft.string("llama")


# name -> (make bytes from the valid file, exception, what the message must name)
BAD_FILES = {
    "wrong magic": (lambda raw: b"GGML" + raw[4:], GGUFError, r"magic"),
    "wrong version": (lambda raw: raw[:4] + struct.pack("<I", 4) + raw[8:], GGUFError,
                      r"version: 4"),
    "empty file": (lambda raw: b"", GGUFError, r"0 bytes"),
    "unknown tensor type": (_set_tensor("blk.0.attn_q.weight", ttype=99), GGUFError,
                            r"attn_q.*unknown GGML type id 99"),
    "unsupported tensor type": (_set_tensor("blk.0.attn_q.weight", ttype=24, dims=[32, 34]),
                                UnsupportedModelError, r"attn_q.*type I8"),
    "tensor offset past the end": (
        _edit_parts(lambda p: setattr(_last(p), "offset", _last(p).offset + 4096)),
        GGUFError, r"run past end of file"),
    "tensor size past the end": (
        _edit_parts(lambda p: _last(p).dims.__setitem__(0, _last(p).dims[0] * 64)),
        GGUFError, r"run past end of file"),
    "misaligned tensor data": (
        _edit_parts(lambda p: setattr(p.tensor("blk.0.attn_k.weight"), "offset",
                                      p.tensor("blk.0.attn_k.weight").offset + 2)),
        GGUFError, r"attn_k.*not aligned to 32"),
    "row not a whole number of blocks": (_set_tensor("blk.0.attn_v.weight", dims=[33, 16]),
                                         GGUFError, r"attn_v.*block size 32"),
    "shape does not match the config": (_set_tensor("blk.0.attn_q.weight", dims=[32, 16]),
                                        UnsupportedModelError,
                                        r"'blk.0.attn_q.weight' has shape \[32, 16\], the config implies"),
    "missing required tensor": (_del_tensor("blk.0.ffn_up.weight"), UnsupportedModelError,
                                r"missing required tensor 'blk.0.ffn_up.weight'"),
    "missing required metadata key": (_del_kv("gemma3.embedding_length"),
                                      UnsupportedModelError, r"gemma3.embedding_length"),
    "wrong architecture": (_edit_parts(_arch), UnsupportedModelError,
                           r"architecture 'llama' is not supported"),
    "vocabulary larger than the embedding": (_edit_parts(_grow_vocab), UnsupportedModelError,
                                             r"vocabulary has 301 tokens .* 300 rows"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_api(case, raw, tmp_path):
    make, exc, pattern = BAD_FILES[case]
    path = tmp_path / "bad.gguf"
    path.write_bytes(make(raw))
    with pytest.raises(exc, match=pattern) as e:
        Model.load(path, threads=1)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_cli(case, raw, tmp_path):
    make, _, pattern = BAD_FILES[case]
    path = tmp_path / "bad.gguf"
    path.write_bytes(make(raw))
    assert_cli_user_error(["run", "--model", str(path), "--threads", "1", "hi"],
                          r"^edge-runtime run: error: .*" + pattern)


def test_missing_file(tmp_path):
    with pytest.raises(GGUFError, match="cannot open"):
        Model.load(tmp_path / "nope.gguf")
    assert_cli_user_error(["run", "--model", str(tmp_path / "nope.gguf"), "hi"], r"cannot open")


def _boundaries(raw):
    """Every header section boundary (each kv, each tensor info, the data start) and, in the
    data section, each tensor's start and middle, plus one byte short of the end."""
    fields, header_end = craft.fields(raw)
    cuts = {pos for pos, width, kind in fields if kind == "section"}
    cuts |= {pos for pos, width, kind in fields if width} | {4, 8, 16, 24}
    p = craft.parse(raw)
    data_at = len(raw) - len(p.data)
    for t in p.tensors:
        cuts |= {data_at + t.offset, data_at + t.offset + craft.nbytes(t) // 2}
    cuts |= {len(raw) - 1, 0, 3}
    return sorted(c for c in cuts if c < len(raw))


def test_truncated_at_every_section_boundary(raw, tmp_path):
    path = tmp_path / "cut.gguf"
    cuts = _boundaries(raw)
    assert len(cuts) > 100   # every field of the header, and each tensor
    for at in cuts:
        path.write_bytes(raw[:at])
        with pytest.raises(GGUFError) as e:
            Model.load(path, threads=1)
        msg = str(e.value)
        assert "\n" not in msg and re.search(r"\d", msg), (at, msg)


def test_truncated_file_cli(raw, tmp_path):
    path = tmp_path / "cut.gguf"
    path.write_bytes(raw[:len(raw) // 2])
    assert_cli_user_error(["run", "--model", str(path), "hi"], r"past end of file")


# ---- weights that are not numbers ----------------------------------------------------------------

def test_nan_inf_weights_are_caught_at_the_first_step(raw, tmp_path):
    """Load does not read the weights (the mapping stays lazy), so NaN or Inf in them is not
    detected there; the first step they reach raises instead of handing out a token chosen
    from garbage. See docs/RELIABILITY.md."""
    p = craft.parse(raw)
    t = p.tensor("blk.0.ffn_norm.weight")   # F32
    data = bytearray(p.data)
    data[t.offset:t.offset + 8] = np.array([np.nan, np.inf], "<f4").tobytes()
    p.data = bytes(data)
    path = tmp_path / "nan.gguf"
    path.write_bytes(craft.build(p))
    m = Model.load(path, threads=1, max_inference_len=32)
    with pytest.raises(NonFiniteLogitsError, match="non-finite logits"):
        m.eval([2, 10, 11])
    m.reset()
    with pytest.raises(NonFiniteLogitsError, match="non-finite logits"):
        list(m.generate([2, 10], max_tokens=4))
    assert_cli_user_error(["run", "--model", str(path), "--max-tokens", "2", "hi"], "non-finite logits")


# ---- bad arguments ------------------------------------------------------------------------------

def test_empty_prompt(model):
    with pytest.raises(ValueError, match="empty prompt"):
        list(model.generate([], max_tokens=1))
    with pytest.raises(ValueError, match="at least one token"):
        model.eval([])
    # An empty string is not an empty prompt: it encodes to BOS, and generation starts there.
    assert model.tokenizer.encode("") == [model.tokenizer.bos_id]
    assert len(list(model.generate("", max_tokens=2))) <= 2


def test_empty_prompt_cli(tiny):
    rc, out, err = cli("run", "--model", tiny, "--threads", "1", "--max-tokens", "2", "")
    assert rc == 0 and "Traceback" not in err


def test_prompt_longer_than_max_inference_len(tiny):
    m = Model.load(tiny, threads=1, max_inference_len=8)
    long = "hello world " * 8
    with pytest.raises(ContextLengthError, match="max_inference_len 8"):
        list(m.generate(long, max_tokens=1))
    with pytest.raises(ContextLengthError, match="max_inference_len 8"):
        m.eval(list(range(3, 12)))
    assert m.n_past == 0   # nothing was evaluated


def test_prompt_longer_than_max_inference_len_cli(tiny):
    assert_cli_user_error(["run", "--model", tiny, "--max-inference-len", "8", "--threads", "1",
                           "hello world " * 8], r"exceed max_inference_len 8")


@pytest.mark.parametrize("n", [0, -1])
def test_max_tokens_not_positive(model, n):
    with pytest.raises(ValueError, match="max_tokens must be positive"):
        model.generate("hi", max_tokens=n)


def test_max_tokens_not_positive_cli(tiny):
    assert_cli_user_error(["run", "--model", tiny, "--max-tokens", "0", "hi"],
                          r"max_tokens must be positive")


@pytest.mark.parametrize("n", [0, -2])
def test_threads_not_positive(tiny, n):
    with pytest.raises(ValueError, match="threads must be positive"):
        Model.load(tiny, threads=n)


def test_threads_not_positive_cli(tiny):
    assert_cli_user_error(["run", "--model", tiny, "--threads", "0", "hi"],
                          r"threads must be positive")


@pytest.mark.parametrize("n", [0, -5])
def test_max_inference_len_not_positive(tiny, n):
    with pytest.raises(ValueError, match="max_inference_len"):
        Model.load(tiny, threads=1, max_inference_len=n)


def test_max_inference_len_above_context_is_clamped(tiny):
    with pytest.warns(UserWarning, match="context_length"):
        m = Model.load(tiny, threads=1, max_inference_len=10_000)
    assert m.max_inference_len == TINY["context_length"]


def test_token_id_out_of_range(model):
    with pytest.raises(ValueError, match="out of range"):
        model.eval([TINY["n_vocab"]])
    with pytest.raises(ValueError, match="out of range"):
        model.eval([-1])


# Each would pass a cast to int32 as a different, valid id: 2**32 + 18 -> 18, 18.9 -> 18,
# True -> 1. They are refused before any conversion, and nothing is evaluated.
NOT_IDS = {
    "int64 above 2**32": (np.array([2, 2**32 + 18], np.int64), "out of range 0..299"),
    "python int above 2**32": ([2, 2**32 + 18], "out of range 0..299"),
    "float": ([2, 18.9], "18.9 is not an integer"),
    "float array": (np.array([2.0, 18.0]), "must be integers, got an array of float64"),
    "bool": ([2, True], "True is not an integer"),
    "bool array": (np.array([True, False]), "must be integers, got an array of bool"),
    "string": ("18", "'1' is not an integer"),
}


@pytest.mark.parametrize("case", list(NOT_IDS))
def test_token_ids_are_checked_before_any_cast(model, case):
    bad, message = NOT_IDS[case]
    model.reset()
    with pytest.raises(InvalidArgumentError, match=message):
        model.eval(bad)
    with pytest.raises(InvalidArgumentError, match=message.replace("token", "row")):
        model.eval([2, 10], rows=bad)
    if case != "string":   # a string prompt is text, not ids
        with pytest.raises(InvalidArgumentError, match=message):
            model.generate(bad, max_tokens=1)
    assert model.n_past == 0


def test_integer_ids_of_any_width_are_accepted(model):
    model.reset()
    want = model.eval([2, 10, 11])
    for ids in (np.array([2, 10, 11], np.int64), np.array([2, 10, 11], np.uint16),
                [np.int64(2), 10, np.uint8(11)]):
        model.reset()
        assert np.array_equal(model.eval(ids), want)


@pytest.mark.parametrize("n", [1000, 2**31, 2**64])
def test_threads_above_the_cpus_are_clamped_with_a_warning(tiny, n):
    cpus = default_threads()
    with pytest.warns(UserWarning, match=f"threads {n} is more than the {cpus} CPUs"):
        m = Model.load(tiny, threads=n, max_inference_len=16)
    assert m.threads == cpus == m.stats()["threads"]


@pytest.mark.parametrize("n", ["2", 2.0, True])
def test_threads_not_an_integer(tiny, n):
    with pytest.raises(InvalidArgumentError, match="threads must be an integer"):
        Model.load(tiny, threads=n)


def test_threads_above_the_cpus_cli(tiny):
    rc, out, err = cli("run", "--model", tiny, "--threads", str(2**31), "--max-tokens", "1", "hi")
    assert rc == 0 and "Traceback" not in err, err
    assert err.strip().splitlines() == [f"edge-runtime: warning: threads {2**31} is more than "
                                        f"the {default_threads()} CPUs this process may run on: "
                                        f"using {default_threads()}"]


def test_temperature_negative_cli(tiny):
    assert_cli_user_error(["run", "--model", tiny, "--temperature", "-1", "--max-tokens", "2", "hi"],
                          r"temperature must be >= 0")


def test_max_inference_len_not_positive_cli(tiny):
    """Refused by the argument parser (exit 2, its usage and one line naming the option), as
    on every command that loads a model."""
    for command in (["run", "--model", tiny, "--max-inference-len", "0", "hi"],
                    ["agent", "--model", tiny, "--max-inference-len", "-3", "hi"],
                    ["plan", "--model", tiny, "--max-inference-len", "many"]):
        rc, out, err = cli(*command)
        assert rc == 2 and "Traceback" not in err, (rc, err)
        assert re.search(r"error: argument --max-inference-len: a positive integer or 'auto'",
                         err.strip().splitlines()[-1]), err


def test_only_named_types_are_user_errors():
    assert ValueError not in USER_ERRORS and Exception not in USER_ERRORS
    assert all(e.__module__.startswith("edge_runtime.") for e in USER_ERRORS)


def test_internal_value_error_keeps_its_traceback(tiny, monkeypatch):
    """A bare ValueError from inside the runtime is a bug: the CLI lets it through (Python
    prints the traceback, exit 1) instead of calling it a user error."""
    from edge_runtime import cli as cli_mod

    def broken(*a, **k):
        raise ValueError("internal: a bug")
    monkeypatch.setattr(cli_mod.Model, "load", broken)
    with pytest.raises(ValueError, match="internal: a bug"):
        cli_mod.main(["run", "--model", tiny, "hi"])


def test_budget_too_small(tiny):
    with pytest.raises(MemoryBudgetError, match="needs") as e:
        Model.load(tiny, threads=1, budget=1 << 20)
    assert "\n" not in str(e.value)


# ---- the model file replaced while mapped ---------------------------------------------------------

def test_file_replaced_by_rename_keeps_serving_the_old_weights(tiny_gguf_factory, tmp_path):
    """Replacing the file by rename (what installers and `cp` to a new name + `mv` do) leaves
    the loaded model on the old inode: same logits after as before."""
    path = tmp_path / "m.gguf"
    with open(tiny_gguf_factory(**TINY), "rb") as f:
        path.write_bytes(f.read())
    m = Model.load(path, threads=1, max_inference_len=16)
    before = m.eval([2, 10, 11])
    other = tmp_path / "other.gguf"
    with open(tiny_gguf_factory(**TINY, seed=7), "rb") as f:
        other.write_bytes(f.read())
    os.replace(other, path)
    m.reset()
    assert np.array_equal(m.eval([2, 10, 11]), before)
    assert not np.array_equal(Model.load(path, threads=1, max_inference_len=16).eval([2, 10, 11]),
                              before)


def test_file_truncated_in_place_while_mapped_kills_the_process(tiny, tmp_path):
    """Documented hazard: truncating or rewriting the mapped file *in place* makes the next read
    of a vanished page raise SIGBUS; no user-space runtime can turn that into an exception.
    Replace model files by rename (previous test)."""
    path = tmp_path / "m.gguf"
    with open(tiny, "rb") as f:
        path.write_bytes(f.read())
    script = textwrap.dedent(f"""
        from edge_runtime import Model
        m = Model.load({str(path)!r}, threads=1, max_inference_len=16)
        m.eval([2, 10])
        with open({str(path)!r}, "r+b") as f:
            f.truncate(0)
        m.reset()
        m.eval([2, 10])
        print("survived")
    """)
    env = dict(os.environ)
    if "ASAN_OPTIONS" in env:   # under tools/sanitize.sh: let the signal through, unreported
        env["ASAN_OPTIONS"] += ":handle_sigbus=0"
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                       timeout=120, env=env)
    assert r.returncode == -7 and "survived" not in r.stdout, (r.returncode, r.stderr[-500:])
