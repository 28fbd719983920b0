"""How close edge_runtime's and llama.cpp's logits are to an exact float64 forward pass.

Both engines approximate the same computation over the dequantized Q8_0 weights; the float64
reference (tests/reference_f64.py) performs it without their shortcuts. For each prompt of a fixed
set (short ones, one near 128 tokens, one past the 512-position sliding window) this prints the
last-position error of edge_runtime and of llama.cpp (flash attention off and on): RMS over the
vocabulary, max over the reference's top 20, top-20 overlap and top-1 agreement.

    python tools/ref_accuracy.py [--model PATH] [--write docs/PARITY.md] [--study]

--write replaces the table between the ref-accuracy markers of that file (with --study: the
ref-quant-study markers; with --more, the second prompt set: ref-accuracy-more). Takes ~3
minutes and ~3.5 GB (the float64 weights).

--study is the activation-quantizer design study: the float64 pass is rerun with one rounding
of the matmul inputs put back (VARIANTS: block size, scale choice, a residual second pass or
int16 on selected matmuls), and each variant's RMS error is set beside the two engines'. It also
prints how much smaller blocks shrink the rounding error of the real activations compared with
Gaussian ones of the same shape, and what share of the weight bytes (decode) and of the per-token
multiply-adds (prefill) each selection of matmuls holds. ~35 minutes on 2 shared cores.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from reference_f64 import Reference, fake_quant, logit_errors  # noqa: E402

from doc_section import write_section  # noqa: E402  (tools/, this script's folder)
from bench import cpu_name  # noqa: E402

_STORY = ("The lighthouse keeper climbed the stairs every evening, counted the ships on the "
          "horizon and wrote their names in a worn notebook. ")
PROMPTS = {
    "capital": "The capital of France is",
    "code": "def binary_search(items, target):\n    lo, hi = 0, len(items) - 1\n",
    "chat": "<start_of_turn>user\nName two planets larger than Earth.<end_of_turn>\n"
            "<start_of_turn>model\n",
    "json": '{"device": "thermostat", "temperature": ',
    "story~128": _STORY * 5 + "One night the notebook",
    "story>512": _STORY * 25 + "\nWhat did the keeper write down?",
}
# A second set, written after the activation-block change and never used to choose it: how the
# comparison with llama.cpp holds on prompts the change was not measured on (--more).
MORE_PROMPTS = {
    "recipe": "To make a simple tomato sauce, first",
    "physics": "Newton's second law states that the force acting on an object is",
    "sql": "SELECT name, age FROM users WHERE",
    "weather": "<start_of_turn>user\nWhat is the weather like in Paris in spring?<end_of_turn>\n"
               "<start_of_turn>model\n",
    "list": "Three reasons to learn a second language:\n1.",
    "python": "import numpy as np\n\ndef softmax(x):\n",
    "email": "Dear Ms. Smith,\n\nThank you for your letter of",
    "math": "Question: What is 17 times 23?\nAnswer:",
    "translate": "English: The cat sleeps on the sofa.\nFrench:",
    "history": "The Roman Empire fell in the year",
    "tool": '<start_of_turn>user\nTurn on the kitchen light.<end_of_turn>\n<start_of_turn>model\n'
            '{"name": "',
    "poem": "Roses are red,\nViolets are blue,\n",
}
ENGINES = ("edge_runtime", "llama.cpp fa off", "llama.cpp fa on")

# Which matmuls share one quantized input; a weight's group is read off its GGUF name.
GROUPS = {"q/k/v": ("attn_q.", "attn_k.", "attn_v."), "attn_output": ("attn_output.",),
          "gate/up": ("ffn_gate.", "ffn_up."), "down": ("ffn_down.",),
          "lm_head": ("output.", "token_embd.")}
ALL = tuple(GROUPS)


def group_of(weight_name):
    return next(g for g, keys in GROUPS.items() if any(k in weight_name for k in keys))


def variant(default=None, special=(), **special_kw):
    """A Reference quant hook: fake_quant(**default) on every matmul input, except
    fake_quant(**special_kw) on the groups named in special."""
    default = default or {}

    def quant(x, name):
        return fake_quant(x, **(special_kw if group_of(name) in special else default))
    quant.twice = tuple(special)   # the groups whose integer dots a kernel would run twice
    return quant


def first_row_twice(quant):
    """quant, except that the first position (BOS, whose activations carry Gemma's outlier
    dimensions) gets the residual second pass: one row of a prefill, none of a decode."""
    def q(x, name):
        out = quant(x, name)
        out[:1] = fake_quant(x[:1], passes=2)
        return out
    return q


INT16 = dict(levels=32767, fp16_scale=False)
VARIANTS = {
    "Q8_0 per-32 amax scale (both engines)": variant(),
    "per-32 scale kept in f32": variant(dict(fp16_scale=False)),
    "per-32 least-squares scale": variant(dict(scale="mse")),
    "per-16 scales": variant(dict(block=16)),
    "per-8 scales": variant(dict(block=8)),
    "per-8 lane groups in f32": variant(dict(block=8, lanes=True, fp16_scale=False)),
    "residual pass: lm_head": variant(special=("lm_head",), passes=2),
    "residual pass: q/k/v": variant(special=("q/k/v",), passes=2),
    "residual pass: down": variant(special=("down",), passes=2),
    "residual pass: q/k/v + down": variant(special=("q/k/v", "down"), passes=2),
    "residual pass: all": variant(special=ALL, passes=2),
    "int16: q/k/v + down": variant(special=("q/k/v", "down"), **INT16),
    "per-8 + residual pass: q/k/v + down": variant(dict(block=8), ("q/k/v", "down"), passes=2),
    "residual pass: BOS row": first_row_twice(variant()),
    "per-16 + residual pass: BOS row": first_row_twice(variant(dict(block=16))),
    "per-8 + residual pass: BOS row": first_row_twice(variant(dict(block=8))),
}


def llama_last_logits(llm, ids):
    """Last-position logits after evaluating ids from an empty cache."""
    import llama_cpp

    llm.reset()
    llm.eval(ids)
    ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).astype(np.float64)


def dithered(quant, seed, rel=1e-6):
    """quant applied to inputs nudged by ~rel of their value: another draw of which roundings
    flip, the way two engines' different f32 summation orders draw them."""
    rng = np.random.default_rng(seed)
    return lambda x, name: quant(x * (1 + rel * rng.standard_normal(x.shape)), name)


def measure(model_path, prompts=PROMPTS, threads=2, variants=None, stats=None, draws=1):
    """{prompt name: {engine: logit_errors(...)}} plus the token count under "_tokens".
    variants ({name: quant hook}) adds the float64 pass with that rounding as one more engine,
    as a list of `draws` logit_errors (the first undithered, the others dithered);
    stats (an ActivationStats) watches the exact pass's matmul inputs."""
    import llama_cpp

    import edge_runtime as er

    ref = Reference(model_path)
    ours = er.Model.load(model_path, max_inference_len=1024, threads=threads)
    kw = dict(n_ctx=1024, n_batch=1024, n_ubatch=1024, n_threads=threads,
              n_threads_batch=threads, verbose=False, swa_full=False)
    llms = {"llama.cpp fa off": llama_cpp.Llama(model_path, flash_attn=False, **kw),
            "llama.cpp fa on": llama_cpp.Llama(model_path, flash_attn=True, **kw)}
    results = {}
    for name, text in prompts.items():
        ids = ours.tokenizer.encode(text, add_bos=True, special=True)
        ref.quant = stats
        exact = ref.forward(ids, last_only=True)
        ours.reset()
        row = {"_tokens": len(ids), "edge_runtime": logit_errors(ours.eval(ids), exact)}
        for engine, llm in llms.items():
            row[engine] = logit_errors(llama_last_logits(llm, ids), exact)
        for vname, quant in (variants or {}).items():
            row[vname] = []
            for k in range(draws):
                ref.quant = quant if k == 0 else dithered(quant, k)
                row[vname].append(logit_errors(ref.forward(ids, last_only=True), exact))
        ref.quant = None
        results[name] = row
    return results


class ActivationStats:
    """A pass-through quant hook that measures, per group of matmul inputs, the rounding error
    power (relative to the signal's) of Q8_0 with 32-, 16- and 8-value blocks, on the real
    activations and on Gaussian noise of the same shape."""
    BLOCKS = (32, 16, 8)

    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)
        self.acc = {}   # (group, block, "real"/"gauss") -> [error power, signal power]

    def __call__(self, x, name):
        g = group_of(name)
        if g == "q/k/v" and "attn_q." not in name or g == "gate/up" and "ffn_gate." not in name:
            return x    # the same input again
        for kind, a in (("real", x), ("gauss", self.rng.standard_normal(x.shape))):
            for b in self.BLOCKS:
                acc = self.acc.setdefault((g, b, kind), [0.0, 0.0])
                acc[0] += float(((fake_quant(a, block=b) - a) ** 2).sum())
                acc[1] += float((a * a).sum())
        return x

    def table(self):
        """Relative RMS rounding error per group and block size, real vs Gaussian."""
        head = [f"per-{b}: real / Gaussian" for b in self.BLOCKS]
        head += ["per-16 / per-8 vs per-32, real", "same, Gaussian"]
        lines = ["| matmul input | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
        for g in GROUPS:
            rel = {(b, k): np.sqrt(self.acc[g, b, k][0] / self.acc[g, b, k][1]) * 1e3
                   for b in self.BLOCKS for k in ("real", "gauss")}
            cells = [f"{rel[b, 'real']:.2f} / {rel[b, 'gauss']:.2f}" for b in self.BLOCKS]
            ratios = [" / ".join(f"{rel[b, k] / rel[32, k]:.2f}" for b in (16, 8))
                      for k in ("real", "gauss")]
            lines.append(f"| {g} | " + " | ".join(cells + ratios) + " |")
        return ("\n".join(lines)
                + "\n\n(RMS rounding error per RMS value, ×10⁻³, over all layers and prompts.)")


def group_costs(model_path):
    """{group: (share of the matmul weight bytes read per decoded token, share of the quantized
    multiply-adds per prefilled token)}. The lm_head is read once per token when decoding but
    runs only for the last position of a prefill, so it holds no per-token prefill share."""
    import gguf

    sizes = dict.fromkeys(GROUPS, 0)
    for t in gguf.GGUFReader(model_path).tensors:
        if t.name.endswith(".weight") and len(t.shape) == 2:
            g = next((g for g, keys in GROUPS.items() if any(k in t.name for k in keys)), None)
            if g is not None:
                sizes[g] += int(np.prod([int(d) for d in t.shape]))
    total, layers = sum(sizes.values()), sum(v for g, v in sizes.items() if g != "lm_head")
    return {g: (v / total, 0.0 if g == "lm_head" else v / layers) for g, v in sizes.items()}


def study_table(results, costs):
    """One row per engine and per variant: RMS error per prompt (a variant with several draws:
    mean, and max over the draws), the worst ratio of that to llama.cpp fa off, and the cost
    shares of the matmuls it computes twice."""
    names = list(results)
    rows = [k for k in next(iter(results.values())) if k != "_tokens"]
    lines = ["| | " + " | ".join(names) + " | worst ratio to llama.cpp fa off | "
             "decode weight bytes / prefill MACs done twice |",
             "|---|" + "---|" * (len(names) + 2)]
    for r in rows:
        draws = [results[n][r] if isinstance(results[n][r], list) else [results[n][r]]
                 for n in names]
        rms = [[d["rms"] for d in ds] for ds in draws]
        worst = max(max(v) / results[n]["llama.cpp fa off"]["rms"] for v, n in zip(rms, names))
        cells = [f"{v[0]:.3f}" if len(v) == 1 else f"{np.mean(v):.3f} ({max(v):.3f})" for v in rms]
        heavy = getattr(VARIANTS.get(r), "twice", ())
        cost = (f"{sum(costs[g][0] for g in heavy):.0%} / {sum(costs[g][1] for g in heavy):.0%}"
                if heavy else "")
        lines.append(f"| {r} | " + " | ".join(cells) + f" | {worst:.2f} | {cost} |")
    return "\n".join(lines)


def table(results):
    lines = ["| prompt (tokens) | top-2 gap | " + " | ".join(
                 f"{e}: RMS / max top-20 / top-20 overlap / top-1" for e in ENGINES) + " |",
             "|---|---|" + "---|" * len(ENGINES)]
    for name, row in results.items():
        cells = []
        for e in ENGINES:
            r = row[e]
            cells.append(f"{r['rms']:.3f} / {r['max_top']:.3f} / {r['overlap']:.2f} / "
                         f"{'yes' if r['top1'] else 'NO'}")
        gap = row["edge_runtime"]["gap"]
        lines.append(f"| {name} ({row['_tokens']}) | {gap:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="GGUF path (default: the default model)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--write", help="markdown file whose ref-accuracy table to replace")
    ap.add_argument("--study", action="store_true", help="the activation-quantizer study instead")
    ap.add_argument("--prompts", help="comma-separated subset of the prompt names")
    ap.add_argument("--more", action="store_true",
                    help="the second prompt set (MORE_PROMPTS); --write: its own table")
    ap.add_argument("--variants", help="comma-separated subset of the study's variant names")
    ap.add_argument("--draws", type=int, default=1,
                    help="study: passes per variant, all but the first dithered (see dithered)")
    a = ap.parse_args()
    if a.model is None:
        from edge_runtime import models
        a.model = models.default()
    every = MORE_PROMPTS if a.more else PROMPTS
    prompts = every if a.prompts is None else {n: every[n] for n in a.prompts.split(",")}
    if a.study:
        stats = ActivationStats()
        variants = (VARIANTS if a.variants is None
                    else {n: VARIANTS[n] for n in a.variants.split(",")})
        res = measure(a.model, prompts, a.threads, variants, stats, a.draws)
        text = (f"CPU: {cpu_name()}, {a.threads} threads (engines' rows).\n\nRMS logit error vs "
                f"float64:\n\n{study_table(res, group_costs(a.model))}\n\n{stats.table()}")
        marker = "ref-quant-study"
    else:
        text = (f"CPU: {cpu_name()}, {a.threads} threads.\n\n"
                + table(measure(a.model, prompts, threads=a.threads)))
        marker = "ref-accuracy-more" if a.more else "ref-accuracy"
    print(text)
    if a.write:
        write_section(a.write, marker, text, where=None)


if __name__ == "__main__":
    main()
