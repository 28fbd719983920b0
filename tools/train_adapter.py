"""Train the shipped tool-calling adapter (torch: pip install "edge_runtime[tune]").

    python tools/train_adapter.py [--examples 4000] [--steps 300] [--seed 1]
                                  [--generator-version 3] [--init ADAPTER]
                                  [--out edge_runtime/adapters/default.adapter]

The shipped adapter was made in two stages (docs/TOOL_CALLING.md has both commands): one
from scratch on generator version 2, then one from that adapter (--init) on version 3.

The base is the default model's own source, the Q4_K_M Gemma 3 270M of the [model] extra,
dequantized; the examples come from edge_runtime.tune.data (our generator, train split only).
Interrupted, the same command resumes from OUT.ckpt. The adapter's manifest records the
generator version, seed, steps, hashes and this command.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_runtime import adapter, models  # noqa: E402
from edge_runtime.tune import data, train  # noqa: E402


def main(argv=None):
    s = train.Settings()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=4000)
    ap.add_argument("--out", default=str(ROOT / "edge_runtime" / "adapters" / "default.adapter"))
    for f in dataclasses.fields(s):
        ap.add_argument("--" + f.name.replace("_", "-"), type=type(f.default) if
                        not isinstance(f.default, bool) else int, default=f.default)
    ap.add_argument("--generator-version", type=int, default=data.GENERATOR_VERSION)
    ap.add_argument("--init", default=None, help="an adapter to start from")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    settings = train.Settings(**{f.name: type(f.default)(getattr(args, f.name))
                                 for f in dataclasses.fields(s)})
    base = models.source()
    examples = data.generate(args.examples, settings.seed, "train", args.generator_version)
    init = adapter.read(args.init) if args.init else None
    t0 = time.time()
    manifest = train.train(base, examples, args.out, settings, init=init, threads=args.threads,
                           record={
        "generator_version": args.generator_version, "data_seed": settings.seed,
        "split": "train", "command": "python tools/train_adapter.py " + " ".join(argv or sys.argv[1:])})
    print(f"wrote {args.out} in {time.time() - t0:.0f} s: {manifest['training']['tokens']} tokens, "
          f"{manifest['training']['examples']} examples")


if __name__ == "__main__":
    main()
