"""Shared fixtures: the real default model, and a factory of tiny random Gemma 3 GGUF files."""
from __future__ import annotations

import os
import re

import numpy as np
import pytest

try:   # property tests judge outcomes only: no per-example deadline, no "too slow" check
    from hypothesis import HealthCheck, settings
    settings.register_profile("outcomes-only", deadline=None,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile("outcomes-only")
except ImportError:
    pass

# With EDGE_RUNTIME_NO_SKIPS=1 (.ci/run sets it) a skip is a failure unless its reason is about
# the machine (a kernel this CPU lacks, no /proc, no privileges): `pytest -q` reports skips only
# as a count, so a missing model, oracle or extra would otherwise leave CI green with whole
# modules unrun.
MACHINE_SKIPS = re.compile(r"this CPU does not offer|fewer than two x86 kernels|needs Linux /proc|"
                           r"needs /proc|no RssAnon|needs privileges|cgroup|emulation")


def _unexcused(report) -> str | None:
    if not (report.skipped and os.environ.get("EDGE_RUNTIME_NO_SKIPS")):
        return None
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return None if MACHINE_SKIPS.search(reason) else reason


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    reason = _unexcused(report)
    if reason is not None and not hasattr(report, "wasxfail"):
        report.outcome, report.longrepr = "failed", f"skipped, not allowed in CI: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    report = (yield).get_result()
    reason = _unexcused(report)
    if reason is not None:      # a module-level importorskip
        report.outcome, report.longrepr = "failed", f"skipped, not allowed in CI: {reason}"


# Plain SentencePiece-style pieces ("▁" marks a word start), most-preferred merge first.
_PIECES = ("▁t in ▁a re he ▁th ▁the on er ▁s ▁o ing at ▁c en ▁w ▁f ▁p is ▁b ed or ▁m an ▁h ▁to ▁d "
           "ou le ▁in ▁of ▁and it ar ▁I ▁on ▁tu ▁tur ▁turn ▁li ▁lig ▁light ▁lights ▁k ▁ki "
           "▁kit ▁kitc ▁kitch ▁kitche ▁kitchen ▁he ▁hel ▁hell ▁hello ▁wo ▁wor ▁worl ▁world").split()
# No capitals: they (and anything else missing) take the byte-fallback path.
_CHARS = list("▁abcdefghijklmnopqrstuvwxyz0123456789.,!?:;'\"(){}[]<>_-=+/")
# llama.cpp token types
NORMAL, CONTROL, USER_DEFINED, BYTE = 1, 3, 4, 6


def tiny_vocab(n_vocab, function_tokens=True):
    """(tokens, scores, token_types) laid out like Gemma 3's, scaled down.

    ids 0..3 <pad> <eos> <bos> <unk>; when n_vocab leaves room for 256 byte tokens and 32 pieces
    after them: 4 <mask>, 5 [multimodal], <unusedN> fillers, FunctionGemma's 7 tokens at 46..52,
    (or, with function_tokens=False, <unused40..46> as in base Gemma 3),
    then (if there is room) <start_of_turn>=105, <end_of_turn>=106, "\\n"=107 (user-defined).
    Then <0x00>..<0xFF> (BYTE) and plain pieces with falling scores (characters, then merges).
    """
    from edge_runtime.convert import FUNCTION_TOKENS

    special = ["<pad>", "<eos>", "<bos>", "<unk>"]
    for head in (108, 53):
        if n_vocab >= head + 256 + 32:
            special += ["<mask>", "[multimodal]"] + [f"<unused{i - 6}>" for i in range(6, head)]
            if function_tokens:
                for i, name in FUNCTION_TOKENS.items():
                    special[i] = name
            if head == 108:
                special[105:108] = ["<start_of_turn>", "<end_of_turn>", "\n"]
            break
    n_plain = n_vocab - len(special) - 256
    if n_plain < 1:
        raise ValueError(f"n_vocab {n_vocab} leaves no room for byte tokens and pieces")
    plain = list(dict.fromkeys(_CHARS + _PIECES))
    plain += [f"▁w{i}" for i in range(max(0, n_plain - len(plain)))]
    plain = plain[:n_plain]
    tokens = special + [f"<0x{b:02X}>" for b in range(256)] + plain
    types = [CONTROL] * len(special) + [BYTE] * 256 + [NORMAL] * n_plain
    if len(special) > 107:
        types[5] = types[107] = USER_DEFINED
    elif len(special) > 5:
        types[5] = USER_DEFINED
    # like Gemma's: -rank (the SentencePiece merge loop prefers the higher score)
    scores = [-1000.0] * len(special) + [0.0] * 256 + [-float(i) for i in range(n_plain)]
    assert len(tokens) == n_vocab and len(set(tokens)) == n_vocab
    return tokens, scores, types


def write_tiny_gguf(path, *, n_layer=6, n_embd=64, n_head=4, n_head_kv=1, head_dim=32, n_ff=128,
                    n_vocab=512, sliding_window=8, context_length=256, weight_type="Q8_0",
                    tied=True, function_tokens=True, seed=0, rope_freq_base=1e6, eps=1e-6):
    """Write a tiny random Gemma 3 GGUF with the metadata keys and tensor names of the real one.

    weight_type: "Q8_0" (default) | "F32" | "F16" for every 2-D weight (norms are always F32);
        also "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1" (source files for the converter's tests).
    tied: True shares token_embd.weight as the output head; False adds a separate output.weight.
    function_tokens: name ids 46..52 as FunctionGemma does (else <unused40..46>; see tiny_vocab).
    Weights: embedding N(0, 0.25) (so logits spread ~±2 and greedy picks are decisive), other
    matrices N(0, 1/fan_in); norms uniform in [0.5, 1.5]. Same arguments -> same bytes.
    """
    import gguf

    qtype = gguf.GGMLQuantizationType[weight_type]
    file_type = {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9,
                 "BF16": 32}[weight_type]
    rng = np.random.default_rng(seed)
    tokens, scores, types = tiny_vocab(n_vocab, function_tokens)

    w = gguf.GGUFWriter(str(path), arch="gemma3")
    w.add_type("model")
    w.add_name("Tiny Gemma 3")
    w.add_basename("tiny-gemma-3")
    w.add_size_label("tiny")
    w.add_license("gemma")
    w.add_tags(["gemma3", "gemma", "test"])
    w.add_context_length(context_length)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_layer_norm_rms_eps(eps)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_rope_freq_base(rope_freq_base)
    w.add_sliding_window(sliding_window)
    w.add_head_count_kv(n_head_kv)
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(2)
    w.add_eos_token_id(1)
    w.add_unk_token_id(3)
    w.add_pad_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_sep_token(False)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(False)
    w.add_quantization_version(2)
    w.add_file_type(file_type)

    def matrix(name, n_in, n_out, std=None):  # ggml shape [n_in, n_out]: numpy [n_out, n_in]
        x = rng.normal(0.0, std or n_in ** -0.5, size=(n_out, n_in)).astype(np.float32)
        if weight_type in ("F32", "F16"):
            w.add_tensor(name, x.astype(np.float16 if weight_type == "F16" else np.float32))
        else:
            w.add_tensor(name, gguf.quants.quantize(x, qtype), raw_dtype=qtype)

    def norm(name, n):
        w.add_tensor(name, rng.uniform(0.5, 1.5, size=n).astype(np.float32))

    q_dim, kv_dim = n_head * head_dim, n_head_kv * head_dim
    matrix("token_embd.weight", n_embd, n_vocab, std=0.25)
    norm("output_norm.weight", n_embd)
    if not tied:
        matrix("output.weight", n_embd, n_vocab, std=0.25)
    for il in range(n_layer):
        p = f"blk.{il}."
        norm(p + "attn_norm.weight", n_embd)
        matrix(p + "attn_q.weight", n_embd, q_dim)
        matrix(p + "attn_k.weight", n_embd, kv_dim)
        matrix(p + "attn_v.weight", n_embd, kv_dim)
        norm(p + "attn_q_norm.weight", head_dim)
        norm(p + "attn_k_norm.weight", head_dim)
        matrix(p + "attn_output.weight", q_dim, n_embd)
        norm(p + "post_attention_norm.weight", n_embd)
        norm(p + "ffn_norm.weight", n_embd)
        matrix(p + "ffn_gate.weight", n_embd, n_ff)
        matrix(p + "ffn_up.weight", n_embd, n_ff)
        matrix(p + "ffn_down.weight", n_ff, n_embd)
        norm(p + "post_ffw_norm.weight", n_embd)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return str(path)


@pytest.fixture(scope="session")
def tiny_gguf_factory(tmp_path_factory):
    """make(**kwargs) -> path of a tiny Gemma 3 GGUF; see write_tiny_gguf for the arguments.

    Files are cached per argument set for the session, so calling it repeatedly is free;
    treat the returned file as read-only.
    """
    pytest.importorskip("gguf")
    made = {}

    def make(**kwargs):
        key = tuple(sorted(kwargs.items()))
        if key not in made:
            path = tmp_path_factory.mktemp("tiny") / "tiny.gguf"
            made[key] = write_tiny_gguf(path, **kwargs)
        return made[key]

    return make


@pytest.fixture(scope="session", autouse=True)
def _no_index_left_in_the_user_cache():
    """Every GGUF a test writes (tiny models, converter outputs, each at a new temporary path)
    gets a vocabulary index, and its masks, in the cache directory: left there, a run of the
    suite would add ~80 files to the user's cache for good. The ones this session made are
    removed at its end; the default model's own index stays, as the main command would make
    it too. Only rebuildable cache files go (a process still mapping one keeps its pages)."""
    from edge_runtime import models

    def indexes():
        d = models.cache_dir()
        return {p for pattern in ("*.idx", "*.masks") for p in d.glob(pattern)}

    before = indexes()
    yield
    for path in indexes() - before:
        if not path.name.startswith(models.MODEL_FILE + "-"):
            path.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def default_model():
    """Path of the real default Q8_0 model (built once into the cache by edge_runtime.models)."""
    from edge_runtime import models

    try:
        return models.default()
    except models.DefaultModelUnavailable as e:
        pytest.skip(f"default model unavailable: {e}")
