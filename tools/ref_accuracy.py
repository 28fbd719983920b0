"""How close edge_runtime's and llama.cpp's logits are to an exact float64 forward pass.

Both engines approximate the same computation over the dequantized Q8_0 weights; the float64
reference (tests/reference_f64.py) performs it without their shortcuts. For each prompt of a fixed
set (short ones, one near 128 tokens, one past the 512-position sliding window) this prints the
last-position error of edge_runtime and of llama.cpp (flash attention off and on): RMS over the
vocabulary, max over the reference's top 20, top-20 overlap and top-1 agreement.

    python tools/ref_accuracy.py [--model PATH] [--write docs/PARITY.md]

--write replaces the table between the ref-accuracy markers of that file. Takes ~3 minutes and
~3 GB (the float64 weights).
"""
import argparse
import os
import platform
import re
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from reference_f64 import Reference, logit_errors  # noqa: E402

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
ENGINES = ("edge_runtime", "llama.cpp fa off", "llama.cpp fa on")


def cpu_name():
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    m = re.search(r"Model name:\s*(.+)", out)
    return m.group(1).strip() if m else platform.processor()


def llama_last_logits(llm, ids):
    """Last-position logits after evaluating ids from an empty cache."""
    import llama_cpp

    llm.reset()
    llm.eval(ids)
    ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).astype(np.float64)


def measure(model_path, prompts=PROMPTS, threads=2):
    """{prompt name: {engine: logit_errors(...)}} plus the token count under "_tokens"."""
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
        exact = ref.forward(ids, last_only=True)
        ours.reset()
        row = {"_tokens": len(ids), "edge_runtime": logit_errors(ours.eval(ids), exact)}
        for engine, llm in llms.items():
            row[engine] = logit_errors(llama_last_logits(llm, ids), exact)
        results[name] = row
    return results


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
    a = ap.parse_args()
    if a.model is None:
        from edge_runtime import models
        a.model = models.default()
    text = f"CPU: {cpu_name()}, {a.threads} threads.\n\n" + table(measure(a.model, threads=a.threads))
    print(text)
    if a.write:
        doc = open(a.write).read()
        begin, end = "<!-- ref-accuracy -->", "<!-- /ref-accuracy -->"
        if begin not in doc:
            raise SystemExit(f"{a.write} has no {begin} ... {end} markers")
        head, rest = doc.split(begin, 1)
        doc = head + begin + "\n" + text + "\n" + end + rest.split(end, 1)[1]
        open(a.write, "w").write(doc)


if __name__ == "__main__":
    main()
