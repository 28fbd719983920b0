"""Tool-calling accuracy on the Berkeley Function Calling Leaderboard (BFCL), AST checker.

    python tools/bench_tools.py [--category simple_python[,multiple,...]] [--limit N] [--every K]
                                [--tool-choice auto|required] [--configs a,b,...]
                                [--out docs/TOOL_CALLING.md]

Categories (--category, a comma list): simple_python, multiple, parallel, parallel_multiple,
live_simple, live_multiple, live_parallel, live_parallel_multiple (scored by BFCL's AST checker
with the category's name, which compares a list of calls without regard to order in the
parallel ones), irrelevance, live_irrelevance (right when the reply has no call) and
live_relevance (right when it has at least one call, whatever its arguments). The last three
follow BFCL's eval_runner (relevance_file_runner): "no call" there is any output that does not
decode to a call, so a toolset our agent refuses or a call it cannot read counts as no call too
(they are also counted in the "errors" column). A question is a list of turns: the first turn's
user messages are the request (a system message of the live categories is left out).
--every K takes every K-th case (0, K, 2K, ...), then --limit N the first N of those.
--tool-choice (default auto) is what our configs pass to Agent.respond: "auto" lets the model
decline to call, which the irrelevance categories need; "required" always calls.

Data and checker come from the `bfcl-eval` wheel on PyPI, fetched once (without its ~30
dependencies, which the AST checker does not need) into the cache; only its model registry is
stubbed (the checker asks it whether a model renames dots in function names: ours do not).

Configs (greedy, 1 thread, the default model unless --model):
  default           our agent, the format it picks for the model itself (format=None)
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
import subprocess
import sys
import time
import types
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import edge_runtime as er  # noqa: E402
from edge_runtime.calls.formats import python as P  # noqa: E402
from edge_runtime.calls.formats import PythonFormat  # noqa: E402
from edge_runtime.calls.schema import normalize_tool  # noqa: E402
from edge_runtime.calls.syntax import ParseFailure  # noqa: E402
from bench import cpu_name  # noqa: E402,F401  (tools/ is on sys.path when run as a script)

BFCL = "bfcl-eval==2026.3.23"
CONFIGS = ("python", "python-noground", "python-nodemo", "functiongemma", "default",
           "llama-free", "llama-json")
# category -> how a case is scored: "ast" (BFCL's ast_checker), "no_call", "any_call"
CATEGORIES = {
    "simple_python": "ast", "multiple": "ast", "parallel": "ast", "parallel_multiple": "ast",
    "live_simple": "ast", "live_multiple": "ast", "live_parallel": "ast",
    "live_parallel_multiple": "ast",
    "irrelevance": "no_call", "live_irrelevance": "no_call", "live_relevance": "any_call",
}
TOOL_CHOICES = ("auto", "required")


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


def categories_of(text: str) -> list:
    """The categories of a --category value (a comma list; "all" = every known category)."""
    names = [c.strip() for c in text.split(",") if c.strip()]
    if names == ["all"]:
        return list(CATEGORIES)
    bad = [c for c in names if c not in CATEGORIES]
    if bad or not names:
        raise SystemExit(f"unknown category {', '.join(bad) or text!r} "
                         f"(known: {', '.join(CATEGORIES)})")
    return names


def load_cases(category: str, limit: int | None, every: int = 1):
    """[(case, ground truth or None)]: every `every`-th case, then the first `limit` of them.
    The relevance categories have no possible_answer file (their answer is None)."""
    data = bfcl_root() / "bfcl_eval" / "data"
    cases = [json.loads(x) for x in open(data / f"BFCL_v4_{category}.json") if x.strip()]
    answer_file = data / "possible_answer" / f"BFCL_v4_{category}.json"
    answers = {}
    if CATEGORIES.get(category, "ast") == "ast":
        answers = {(d := json.loads(x))["id"]: d["ground_truth"]
                   for x in open(answer_file) if x.strip()}
    picked = cases[::max(1, every)][:limit]
    return [(c, answers.get(c["id"])) for c in picked]


def request_of(case) -> str:
    return " ".join(m["content"] for m in case["question"][0] if m["role"] == "user")


# ---- ours ---------------------------------------------------------------------------------

def run_ours(model, cases, fmt, grounding=True, demos=True, tool_choice="auto"):
    """[(calls as [{name: arguments}], seconds, error or None)] per case; fmt None = the
    agent's own choice for the model."""
    out = []
    for case, _ in cases:
        t0 = time.perf_counter()
        try:
            agent = er.Agent(model, tools=case["function"], format=fmt, grounding=grounding,
                             demonstrations=demos)
            turn = agent.respond([{"role": "user", "content": request_of(case)}],
                                 tool_choice=tool_choice)
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

def case_right(check, case, answer, calls, category) -> bool:
    """One case, by BFCL's rule for its category (calls: [{name: arguments}, ...])."""
    kind = CATEGORIES.get(category, "ast")
    if kind == "no_call":
        return not calls
    if kind == "any_call":
        return bool(calls)
    if not calls:
        return False
    try:
        return bool(check(case["function"], calls, answer, category)["valid"])
    except Exception:   # noqa: BLE001 - the checker's own failure is a miss
        return False


def score(check, cases, results, category):
    ok = sum(case_right(check, case, answer, calls, category)
             for (case, answer), (calls, _, _) in zip(cases, results))
    times = sorted(t for _, t, _ in results)
    return ok, times[len(times) // 2] if times else 0.0


def file_sha(path, n: int = 12) -> str:
    """The first n hex digits of the file's sha256."""
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()[:n]


def git_commit() -> str:
    """The checkout's short commit (with "+dirty" when it has uncommitted changes)."""
    here = Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here,
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=here, capture_output=True, text=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def ordinal(k: int) -> str:
    return f"{k}" + ("th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th"))


def run_config(cfg, model, path, cases, tool_choice):
    if cfg == "python":
        return run_ours(model, cases, "python", tool_choice=tool_choice)
    if cfg == "python-noground":
        return run_ours(model, cases, "python", grounding=False, tool_choice=tool_choice)
    if cfg == "python-nodemo":
        return run_ours(model, cases, "python", demos=False, tool_choice=tool_choice)
    if cfg == "functiongemma":
        return run_ours(model, cases, "functiongemma", tool_choice=tool_choice)
    if cfg == "default":
        return run_ours(model, cases, None, tool_choice=tool_choice)
    if cfg in ("llama-free", "llama-json"):
        return run_llama(path, cases, model.tokenizer, grammar=cfg == "llama-json")
    raise SystemExit(f"unknown config {cfg!r}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--category", default="simple_python",
                    help="comma list of: " + ", ".join(CATEGORIES) + " (or all)")
    ap.add_argument("--limit", type=int, default=None, help="first N cases only (per category)")
    ap.add_argument("--every", type=int, default=1, help="every K-th case only (before --limit)")
    ap.add_argument("--tool-choice", default="auto", choices=TOOL_CHOICES,
                    help="what our configs pass to Agent.respond (default auto)")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--model", default=None, help="GGUF (default: the default model)")
    ap.add_argument("--out", default=None, help="append a markdown table to this file")
    args = ap.parse_args(argv)
    if args.every < 1:
        raise SystemExit("--every must be at least 1")
    categories = categories_of(args.category)
    configs = [c for c in args.configs.split(",") if c]
    for cfg in configs:
        if cfg not in CONFIGS:
            raise SystemExit(f"unknown config {cfg!r} (known: {', '.join(CONFIGS)})")
    check = checker()
    cases = {cat: load_cases(cat, args.limit, args.every) for cat in categories}
    path = args.model or er.models.default()
    model = er.Model.load(path, max_inference_len=4096, threads=1)
    rows = []     # (config, category, ok, n, median s, errors)
    for cfg in configs:
        for cat in categories:
            t0 = time.time()
            res = run_config(cfg, model, path, cases[cat], args.tool_choice)
            ok, med = score(check, cases[cat], res, cat)
            n = len(cases[cat])
            errors = sum(1 for _, _, e in res if e)
            rows.append((cfg, cat, ok, n, med, errors))
            print(f"{cfg:16s} {cat:24s} {ok}/{n} = {100 * ok / max(n, 1):.1f}%  median "
                  f"{med:.2f} s/case  errors {errors}  ({time.time() - t0:.0f} s)", flush=True)
    sampling = (f"every {ordinal(args.every)} case" if args.every > 1 else "all cases") + \
        (f", first {args.limit}" if args.limit is not None else "")
    table = [f"BFCL {', '.join(f'`{c}`' for c in categories)} ({sampling}: "
             + ", ".join(f"{len(cases[c])} {c}" for c in categories)
             + f"), tool_choice `{args.tool_choice}`, greedy, 1 thread", "",
             f"CPU: {cpu_name()}; date: {time.strftime('%Y-%m-%d')}; model: "
             f"`{Path(path).name}` (sha256 {file_sha(path)}); commit: {git_commit()}", "",
             "| config | category | accuracy | median s/case | errors |",
             "|---|---|---:|---:|---:|"]
    for cfg, cat, ok, n, med, errors in rows:
        table.append(f"| {cfg} | {cat} | {100 * ok / max(n, 1):.1f}% ({ok}/{n}) | {med:.2f} "
                     f"| {errors} |")
    if len(categories) > 1:
        for cfg in configs:
            mine = [r for r in rows if r[0] == cfg]
            ok, n = sum(r[2] for r in mine), sum(r[3] for r in mine)
            table.append(f"| {cfg} | **all** | {100 * ok / max(n, 1):.1f}% ({ok}/{n}) | | "
                         f"{sum(r[5] for r in mine)} |")
    print("\n".join(table))
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n" + "\n".join(table) + "\n")


if __name__ == "__main__":
    main()
