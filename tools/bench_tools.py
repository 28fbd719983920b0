"""Tool-calling accuracy on the Berkeley Function Calling Leaderboard (BFCL), AST checker.

    python tools/bench_tools.py [--category simple_python] [--limit N] [--configs a,b,...]
                                [--out docs/TOOL_CALLING.md]

Data and checker come from the `bfcl-eval` wheel on PyPI, fetched once (without its ~30
dependencies, which the AST checker does not need) into the cache; only its model registry is
stubbed (the checker asks it whether a model renames dots in function names: ours do not).

Configs (greedy, 1 thread, the default model unless --model):
  python            our agent, python call format, demonstrations + grounding (the default)
  python-noground   ... without grounding
  python-nodemo     ... without demonstrations (instructions only)
  functiongemma     our agent in FunctionGemma's format (what the base model got before)
  llama-free        llama.cpp free-running on the python prompt, stopped at the line end
  llama-json        llama.cpp with its JSON-schema grammar over {"name", "arguments"}
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import types
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import edge_runtime as er  # noqa: E402
from edge_runtime.calls import python_format as P  # noqa: E402
from edge_runtime.calls.formats import PythonFormat  # noqa: E402
from edge_runtime.calls.schema import normalize_tool  # noqa: E402
from edge_runtime.calls.syntax import ParseFailure  # noqa: E402

BFCL = "bfcl-eval==2026.3.23"
CONFIGS = ("python", "python-noground", "python-nodemo", "functiongemma", "llama-free",
           "llama-json")


def cache_dir() -> Path:
    return Path(os.environ.get("EDGE_RUNTIME_CACHE", Path.home() / ".cache" / "edge_runtime"))


def bfcl_root() -> Path:
    """The unpacked bfcl-eval wheel (downloaded once, no dependencies)."""
    root = cache_dir() / "bfcl"
    if not (root / "bfcl_eval").is_dir():
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", BFCL,
                        "-d", str(root)], check=True)
        wheel = next(root.glob("bfcl_eval-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            z.extractall(root)
    return root


def checker():
    root = bfcl_root()
    sys.path.insert(0, str(root))

    class _Config:
        underscore_to_dot = False

    registry = types.ModuleType("bfcl_eval.constants.model_config")
    registry.MODEL_CONFIG_MAPPING = type("Any", (dict,), {"__getitem__": lambda s, k: _Config()})()
    sys.modules["bfcl_eval.constants.model_config"] = registry
    from bfcl_eval.constants.enums import Language
    from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker
    return lambda fns, out, answer, cat: ast_checker(fns, out, answer, Language.PYTHON, cat,
                                                      "edge_runtime")


def load_cases(category: str, limit: int | None):
    data = bfcl_root() / "bfcl_eval" / "data"
    cases = [json.loads(x) for x in open(data / f"BFCL_v4_{category}.json")]
    answers = {(d := json.loads(x))["id"]: d["ground_truth"]
               for x in open(data / "possible_answer" / f"BFCL_v4_{category}.json")}
    return [(c, answers[c["id"]]) for c in cases[:limit]]


def request_of(case) -> str:
    return " ".join(m["content"] for m in case["question"][0] if m["role"] == "user")


# ---- ours ---------------------------------------------------------------------------------

def run_ours(model, cases, fmt, grounding=True, demos=True):
    out = []
    for case, _ in cases:
        t0 = time.perf_counter()
        try:
            agent = er.Agent(model, tools=case["function"], format=fmt, grounding=grounding,
                             demonstrations=demos)
            turn = agent.respond([{"role": "user", "content": request_of(case)}],
                                 tool_choice="required")
            calls = [{c["name"]: c["arguments"]} for c in turn.calls]
            err = None
        except (ValueError, RuntimeError) as e:
            calls, err = [], str(e)
        out.append((calls, time.perf_counter() - t0, err))
    return out


# ---- llama.cpp ----------------------------------------------------------------------------

def python_prompt(case, tools) -> str:
    return (P.render_preamble(None) + P.render_functions(tools)
            + f"{P.REQUEST} {request_of(case)}\n{P.CALL} ")


def run_llama(path, cases, tok, grammar: bool):
    from llama_cpp import Llama, LlamaGrammar
    llm = Llama(model_path=str(path), n_ctx=4096, n_threads=1, verbose=False)
    fmt = PythonFormat(tok)
    out = []
    for case, _ in cases:
        t0 = time.perf_counter()
        calls, err = [], None
        try:   # a schema outside our subset cannot be rendered: a miss, as for our agent
            tools = [normalize_tool(f) for f in case["function"]]
            prompt = python_prompt(case, tools)
            if grammar:
                schema = {"type": "object", "properties": {
                    "name": {"enum": [t["name"] for t in tools]},
                    "arguments": {"type": "object", "properties": {
                        k: _json_schema(v) for k, v in
                        tools[0]["parameters"].get("properties", {}).items()},
                        "required": tools[0]["parameters"].get("required", [])}},
                    "required": ["name", "arguments"]}
                g = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
                text = llm(prompt, max_tokens=256, temperature=0.0, grammar=g)["choices"][0]["text"]
                d = json.loads(text)
                calls = [{d["name"]: d["arguments"]}]
            else:
                text = llm(prompt, max_tokens=128, temperature=0.0,
                           stop=["\n"])["choices"][0]["text"]
                c = fmt.parse(text.strip())
                calls = [{c["name"]: c["arguments"]}]
        except (ValueError, ParseFailure, KeyError) as e:
            err = str(e)[:80]
        out.append((calls, time.perf_counter() - t0, err))
    return out


def _json_schema(s: dict) -> dict:
    """Our canonical schema as plain JSON Schema for llama.cpp's converter."""
    s = {k: v for k, v in s.items() if k not in ("description",)}
    if s.get("type") == "any":
        s.pop("type")
    if "items" in s:
        s["items"] = _json_schema(s["items"])
    if "properties" in s:
        s["properties"] = {k: _json_schema(v) for k, v in s["properties"].items()}
    return s


# ---- report -------------------------------------------------------------------------------

def score(check, cases, results, category):
    ok = 0
    for (case, answer), (calls, _, _) in zip(cases, results):
        if calls:
            try:
                ok += bool(check(case["function"], calls, answer, category)["valid"])
            except Exception:   # noqa: BLE001 - the checker's own failure is a miss
                pass
    times = sorted(t for _, t, _ in results)
    return ok, times[len(times) // 2] if times else 0.0


def cpu_name() -> str:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--category", default="simple_python")
    ap.add_argument("--limit", type=int, default=None, help="first N cases only")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--model", default=None, help="GGUF (default: the default model)")
    ap.add_argument("--out", default=None, help="append a markdown table to this file")
    args = ap.parse_args(argv)
    check = checker()
    cases = load_cases(args.category, args.limit)
    path = args.model or er.models.default()
    model = er.Model.load(path, max_inference_len=4096, threads=1)
    rows = []
    for cfg in args.configs.split(","):
        t0 = time.time()
        if cfg == "python":
            res = run_ours(model, cases, "python")
        elif cfg == "python-noground":
            res = run_ours(model, cases, "python", grounding=False)
        elif cfg == "python-nodemo":
            res = run_ours(model, cases, "python", demos=False)
        elif cfg == "functiongemma":
            res = run_ours(model, cases, "functiongemma")
        elif cfg in ("llama-free", "llama-json"):
            res = run_llama(path, cases, model.tokenizer, grammar=cfg == "llama-json")
        else:
            raise SystemExit(f"unknown config {cfg!r}")
        ok, med = score(check, cases, res, args.category)
        refused = sum(1 for _, _, e in res if e)
        rows.append((cfg, ok, len(cases), med, refused))
        print(f"{cfg:16s} {ok}/{len(cases)} = {100 * ok / len(cases):.1f}%  median "
              f"{med:.2f} s/case  errors {refused}  ({time.time() - t0:.0f} s)", flush=True)
    table = [f"BFCL `{args.category}`, {len(cases)} cases, greedy, 1 thread, CPU: {cpu_name()} "
             f"({time.strftime('%Y-%m-%d')})", "",
             "| config | accuracy | median s/case | no call (error) |", "|---|---:|---:|---:|"]
    table += [f"| {c} | {100 * ok / n:.1f}% ({ok}/{n}) | {m:.2f} | {r} |"
              for c, ok, n, m, r in rows]
    print("\n".join(table))
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n" + "\n".join(table) + "\n")


if __name__ == "__main__":
    main()
