"""`edge-runtime` command line: argument parsing and printing only; behaviour lives below.

Each subcommand is one `cmd_*` function. User errors (bad files, bad arguments, budgets) print
one line and exit 2; nothing a user can cause ends in a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

from . import boards, emulate
from .agent import TOOL_CHOICES, Agent
from .calls.formats import FORMATS
from .errors import USER_ERRORS
from .gguf import GGUFError
from .memory import AgentSpec, plan_for_model
from .decoder import Model
from . import models
from .prefix_cache import MAX_SNAPSHOTS
from .tools_builtin import TOOLS


class UserError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


# Errors that mean "your input is wrong", whichever module raises them.
def _user_errors():
    return (UserError, GGUFError, FileNotFoundError, IsADirectoryError, PermissionError) + USER_ERRORS


def _print_json(obj):
    print(json.dumps(obj, indent=None, default=str))


# ---- subcommands -----------------------------------------------------------------------

def _model_path(args):
    """--model, else the default model; an --adapter is merged into the base model instead
    (the shipped adapter is already part of the default one)."""
    if args.model:
        return args.model
    return models.source() if getattr(args, "adapter", None) else models.default()


def _context_arg(text):
    """--max-inference-len: a positive integer or 'auto'."""
    if text == "auto":
        return text
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a positive integer or 'auto', not {text!r}")
    return int(text)


def _load_model(args, **kw):
    return Model.load(_model_path(args), threads=args.threads,
                      max_inference_len=getattr(args, "max_inference_len", None),
                      board=args.board, pages=args.pages, adapter=getattr(args, "adapter", None),
                      **kw)


_CONTEXT_HELP = ("context cap: positions, or 'auto' (with --board: the longest whose plan fits "
                 "the budget); default 4096, or with --board the longest up to 4096 that fits")
_PAGES_HELP = ("weight pages: keep (read once), release (dropped after each layer, read again "
               "every token), auto (default: keep unless only release fits --board's budget)")


def _memory_args(p, agent=False):
    """The options every command that loads a model shares: --board, context and pages."""
    p.add_argument("--board", help="board profile: memory budget and threads "
                   "(see `edge-runtime boards`)")
    p.add_argument("--max-inference-len", type=_context_arg, help=_CONTEXT_HELP +
                   ("; the agent's rows included" if agent else ""))
    p.add_argument("--pages", choices=("keep", "release", "auto"), default="auto",
                   help=_PAGES_HELP)


def _format_stats(st):
    mib = lambda b: f"{b / 2**20:.0f} MiB"
    return (f"prefill {st['prefill_tokens']} tok at {st['prefill_tok_s']:.1f} tok/s, "
            f"decode {st['decode_tokens']} tok at {st['decode_tok_s']:.1f} tok/s, "
            f"load {st['load_s']:.2f} s, kernel {st['kernel']}, {st['threads']} threads; "
            f"peak rss {mib(st['peak_rss'])} (anon {mib(st['peak_anon'])}, "
            f"file {mib(st['peak_file'])})")


def cmd_run(args):
    m = _load_model(args)
    tok = m.tokenizer
    ids = tok.encode(args.prompt, add_bos=True, special=True)
    out = []
    stream = not args.json
    printed = b""
    for t in m.generate(ids, max_tokens=args.max_tokens, temperature=args.temperature,
                        seed=args.seed, truncate=args.truncate):
        out.append(t)
        if stream:   # print whole UTF-8 characters only, as they complete
            text = tok.decode_bytes(out)
            new = text[len(printed):]
            cut = len(new.decode("utf-8", errors="ignore").encode())
            sys.stdout.write(new[:cut].decode("utf-8", errors="ignore"))
            sys.stdout.flush()
            printed += new[:cut]
    st = m.stats()
    if args.json:
        _print_json({"prompt_tokens": len(ids), "tokens": out, "text": tok.decode(out),
                     "stats": st if args.stats else None})
        return 0
    print()
    if args.stats:
        print(_format_stats(st), file=sys.stderr)
    return 0


def _load_tools(path):
    """A module's TOOLS list if it has one, else its public functions."""
    import importlib.util
    import inspect
    if not os.path.isfile(path):
        raise UserError(f"--tools: no such file {path!r}")
    # only a .py file has a source loader; anything else is not a Python module
    spec = importlib.util.spec_from_file_location("edge_runtime_user_tools", path) \
        if path.endswith(".py") else None
    if spec is None:
        raise UserError(f"--tools: {path} is not a Python module (give a .py file)")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as e:
        raise UserError(f"--tools: cannot import {path}: {type(e).__name__}: {e}") from None
    tools = getattr(module, "TOOLS", None)
    if tools is None:
        tools = [f for n, f in vars(module).items() if not n.startswith("_")
                 and inspect.isfunction(f) and f.__module__ == module.__name__]
    if not tools:
        raise UserError(f"--tools: {path} has no TOOLS list and no public functions")
    return list(tools)


def cmd_agent(args):
    if args.max_steps < 1:
        raise UserError(f"--max-steps must be at least 1, not {args.max_steps}")
    if not args.request.strip():
        raise UserError("the request is empty")
    tools = _load_tools(args.tools) if args.tools else TOOLS
    spec = AgentSpec(tools=tuple(tools), format=args.format,
                     snapshot_file=args.cache_dir is not None)
    try:   # bad tool declarations or format: ValueError (from the plan's prefix or the agent)
        model = _load_model(args, agent=spec)
        agent = Agent(model, tools, cache_dir=args.cache_dir, format=args.format,
                      tool_choice=args.tool_choice, grounding=not args.no_grounding)
    except ValueError as e:
        raise UserError(str(e)) from None

    def show(event):   # prose mode: stream the turn as it happens
        kind = event["type"]
        if kind == "token":
            sys.stdout.write(event["text"])
        elif kind == "call":
            print(f"-> {event['name']}({json.dumps(event['arguments'], ensure_ascii=False)})")
        elif kind == "result":
            print(f"<- {json.dumps(event['result'], ensure_ascii=False, default=str)}")
        elif kind == "answer":
            print()
        sys.stdout.flush()

    if args.stats and not args.json:
        print(f"[format {agent.format.name}]")
    r = agent.run(args.request, max_steps=args.max_steps, on_event=None if args.json else show)
    if args.json:
        out = {"format": r.format, "calls": r.calls, "text": r.text}
        if args.stats:
            out["stats"] = model.stats()
        _print_json(out)
    elif args.stats:
        print(json.dumps(model.stats(), default=str))
    return 0


def cmd_serve(args):
    try:
        from . import server
    except ImportError as e:
        raise UserError(f"the server needs the [server] extra (pip install "
                        f"'.[server]' in the edge_runtime clone): {e}") from None
    model = _load_model(args, agent=AgentSpec(snapshot_file=args.cache_dir is not None))
    print(f"edge-runtime serve: http://{args.host}:{args.port}/v1 ({server.model_id(model)}, "
          f"max_inference_len {model.max_inference_len}, pages {model.pages})", file=sys.stderr)
    budget = boards.get(args.board).budget if args.board else None
    key = args.api_key or os.environ.get("EDGE_RUNTIME_API_KEY") or None
    if key is None and not _loopback(args.host):
        print("edge-runtime serve: listening beyond this machine without an API key: anyone "
              "who can reach the port can use it (give --api-key)", file=sys.stderr)
    server.serve(model, host=args.host, port=args.port, queue=args.queue,
                 cache_dir=args.cache_dir, budget=budget, api_key=key,
                 hosts=server.LOOPBACK_NAMES + tuple(args.allow_host),
                 access_log=args.access_log, cors_origins=tuple(args.cors_origin))
    return 0


def _loopback(host) -> bool:
    import ipaddress
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def cmd_tune(args):
    try:
        from .tune.user import tune
    except ImportError as e:
        raise UserError(f"tune needs torch: pip install \"edge_runtime[tune]\" ({e})") from None
    if args.minutes <= 0 or args.steps < 1:
        raise UserError("--minutes must be positive and --steps at least 1")
    tools = _load_tools(args.tools)
    try:
        report = tune(tools, args.out, examples_path=args.examples, minutes=args.minutes,
                      steps=args.steps, seed=args.seed, threads=args.threads,
                      low_memory=args.low_memory, log=lambda m: print(m, file=sys.stderr))
    except ValueError as e:
        raise UserError(str(e)) from None
    t = report.manifest["training"]
    if args.json:
        _print_json({"adapter": report.adapter, "complete": t["complete"],
                     "steps": t["steps_done"], "call_bias": report.call_bias,
                     "before": report.before, "after": report.after})
        return 0
    state = "" if t["complete"] else \
        f" (stopped at step {t['steps_done']} by --minutes: run the same command to go on)"
    print(f"wrote {report.adapter}{state} (call bias {report.call_bias:+.2f}, chosen on examples "
          f"held out from training)\nright calls on held-out requests, per tool:")
    print(report.table())
    print(f"use it: edge-runtime agent --tools {args.tools} --adapter {report.adapter} \"...\"")
    return 0


def cmd_plan(args):
    board = boards.get(args.board) if args.board else None
    n = args.max_inference_len
    if n == "auto" and board is None:
        raise UserError("--max-inference-len auto needs --board")
    path = _model_path(args)
    threads = board.default_threads if board else (os.cpu_count() or 1)
    budget = board.budget if board else None
    if args.snapshot_tokens is not None and args.snapshot_tokens < 0:
        raise UserError(f"--snapshot-tokens must be >= 0, not {args.snapshot_tokens}")
    p = plan_for_model(path, n, threads=threads, budget=budget, pages=args.pages,
                       snapshot_tokens=args.snapshot_tokens or 0, agent=args.agent,
                       snapshot_file=args.snapshot_file)
    if args.json:
        _print_json({"model": str(path), "board": board.name if board else None, **p.to_dict(budget)})
        return 0
    where = f" on {board.description}" if board else ""
    print(f"memory plan for {os.path.basename(str(path))}{where}, "
          f"max_inference_len {p.max_inference_len}, pages {p.settings['pages']}")
    print(p.table(budget))
    return 0


def cmd_boards(args):
    rows = [(b.name, f"{b.ram >> 20} MiB", f"{b.os_reserve >> 20} MiB", f"{b.budget >> 20} MiB",
             str(b.cores), str(b.default_threads), ",".join(b.isa), b.description)
            for b in boards.all_boards().values()]
    head = ("name", "ram", "os reserve", "budget", "cores", "threads", "isa", "description")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    for r in [head] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def cmd_convert(args):
    from .convert import convert   # needs the gguf package, which boards do not install
    s = convert(args.input, args.output, type=args.type, progress=sys.stderr.isatty())
    print(f"{args.output}: {s['tensors']} tensors as Q8_0/F32 from {'/'.join(s['source_types'])}, "
          f"{s['bytes'] / 2**20:.1f} MiB in {s['seconds']:.1f} s")


def cmd_emulate(args):
    if args.board is None and args.limit is None:
        raise UserError("emulate: give --board NAME or --limit SIZE")
    board = boards.get(args.board) if args.board else None
    try:
        limit = emulate.parse_size(args.limit) if args.limit else board.budget
    except ValueError as e:
        raise UserError(f"--limit: {e}") from None
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise UserError("emulate: no command given (edge-runtime emulate --board NAME -- CMD ...)")
    # With --drop-caches, where the machine's cache cannot be dropped, the files named on the
    # command line are evicted instead so the group pays for them.
    evict = [a for a in cmd if os.path.isfile(a)]
    try:
        r = emulate.run(cmd, limit, cores=board.cores if board else None, evict=evict,
                        drop_caches=args.drop_caches)
    except emulate.EmulationUnavailable as e:
        raise UserError(f"cannot emulate here: {e}") from None
    except FileNotFoundError:
        raise UserError(f"command not found: {cmd[0]}") from None
    if not args.drop_caches:
        r.notes.append("page cache kept (files already cached elsewhere are not charged)")
    print(f"emulate {board.name if board else 'limit'}: limit {r.limit / 2**20:.0f} MiB, "
          f"cpus {','.join(map(str, r.cpus))}, peak {r.peak / 2**20:.1f} MiB (cgroup), "
          f"limit hit {'yes' if r.limit_hit else 'no'} (failcnt {r.failcnt}), "
          f"oom kills {r.oom_kills}, exit {r.returncode}" + "".join(f"; {n}" for n in r.notes),
          file=sys.stderr)
    return r.returncode if r.returncode >= 0 else 128 - r.returncode


# ---- parser ----------------------------------------------------------------------------

def build_parser():
    p = argparse.ArgumentParser(prog="edge-runtime", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="generate text from a prompt")
    r.add_argument("prompt")
    r.add_argument("--model")
    r.add_argument("--max-tokens", type=int, default=128)
    r.add_argument("--threads", type=int, help="at most the CPUs (more are clamped)")
    _memory_args(r)
    r.add_argument("--temperature", type=float, default=0.0)
    r.add_argument("--seed", type=int)
    r.add_argument("--stats", action="store_true")
    r.add_argument("--truncate", choices=["left"],
                   help="drop the prompt's oldest tokens when it does not fit (keeps BOS)")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_run)

    a = sub.add_parser("agent", help="run the tool-calling agent on a request",
                       description="Decode calls of the given tools for a request, run them "
                       "and answer. Without --tools: set_timer, toggle_light and get_weather "
                       "(offline sample data for Paris, London, Tokyo, New York, Berlin).")
    a.add_argument("request", help="what the user asks, in plain language")
    a.add_argument("--model", help="a Gemma 3 GGUF (default: the default model)")
    a.add_argument("--tools", help="a Python file: its TOOLS list, else its public functions "
                   "(type hints and docstrings become the schemas)")
    _memory_args(a, agent=True)
    a.add_argument("--threads", type=int, help="decoder threads (default: the CPUs, or the "
                   "board's; more than the CPUs are clamped)")
    a.add_argument("--max-steps", type=int, default=4,
                   help="rounds of calls before the agent must answer (default 4)")
    a.add_argument("--format", choices=FORMATS, default=None,
                   help="call format (default: functiongemma for FunctionGemma models, "
                   "python for other Gemma 3 models)")
    a.add_argument("--tool-choice", choices=TOOL_CHOICES, default="auto",
                   help="auto: the model calls tools or answers (default); required: the "
                   "first reply is a call; none: never call")
    a.add_argument("--adapter", help="an adapter file (edge-runtime tune) merged into the "
                   "model, built once into the cache")
    a.add_argument("--no-grounding", action="store_true",
                   help="do not bias argument values toward the request's own words")
    a.add_argument("--cache-dir", help="keep the tool declarations' KV snapshot here, so the "
                   f"next start skips their prefill (the {MAX_SNAPSHOTS} newest snapshots stay)")
    a.add_argument("--stats", action="store_true",
                   help="print the call format, speed and memory after the run")
    a.add_argument("--json", action="store_true", help="print one JSON object: format, calls "
                   "(name, arguments, result) and text")
    a.set_defaults(func=cmd_agent)

    s = sub.add_parser("serve", help="serve the OpenAI chat/completions API over HTTP",
                       description="Serve /v1/chat/completions (tools, streaming), "
                       "/v1/completions and /v1/models on --host:--port. With "
                       "--api-key (or EDGE_RUNTIME_API_KEY in the environment), every route but "
                       "/health needs \"Authorization: Bearer <key>\" (the openai client's "
                       "api_key).")
    s.add_argument("--model", help="a Gemma 3 GGUF (default: the default model)")
    _memory_args(s, agent=True)
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default "
                   "127.0.0.1: this machine only; 0.0.0.0: the network too - set a key)")
    s.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    s.add_argument("--threads", type=int, help="decoder threads per request (default: the "
                   "CPUs, or the board's)")
    s.add_argument("--api-key", metavar="KEY", help="require \"Authorization: Bearer KEY\" on "
                   "every route but /health (or set EDGE_RUNTIME_API_KEY)")
    s.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="a web origin (e.g. http://localhost:3000) whose pages may call the "
                   "API from a browser; repeatable; none by default")
    s.add_argument("--cache-dir", help=f"keep each toolset's prefix KV snapshot here (the "
                   f"{MAX_SNAPSHOTS} newest)")
    s.add_argument("--adapter", help="an adapter file (edge-runtime tune) merged into the model")
    s.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="a name clients may reach the server by (the Host header), besides "
                   "localhost and IP addresses; repeatable")
    s.add_argument("--access-log", action="store_true",
                   help="print a line per request on stdout: time, method, path, status, "
                   "prompt/cached/completion tokens, milliseconds")
    s.add_argument("--queue", type=int, default=8,
                   help="requests that may wait for a session; more get 503 (default 8)")
    s.set_defaults(func=cmd_serve)

    t = sub.add_parser("tune", help="teach the model your own tools (needs the [tune] extra)",
                       description="Generate examples for your tools, train an adapter from "
                       "the shipped one on this CPU, and show right calls before and after.")
    t.add_argument("--tools", required=True, help="a Python file: its TOOLS list, else its "
                   "public functions")
    t.add_argument("--examples", help="your own examples, JSONL: {\"request\": ..., \"calls\": "
                   "[{\"name\": ..., \"arguments\": {...}}]} (calls [] = no call)")
    t.add_argument("--minutes", type=float, default=20.0,
                   help="the whole run, scoring included, ends about then (default 20); "
                        "training stopped early resumes with the same command")
    t.add_argument("--steps", type=int, default=120, help="optimizer steps (default 120)")
    t.add_argument("--out", default="my.adapter", help="adapter file to write")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int)
    t.add_argument("--low-memory", action="store_true", default=None,
                   help="recompute each layer in the backward pass: a 10-tool set peaked at 4.3 GB "
                   "instead of 10, at 0.7x the speed (default: when less than 12 GiB is free)")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_tune)

    pl = sub.add_parser("plan", help="print the memory plan")
    pl.add_argument("--model")
    _memory_args(pl, agent=True)
    pl.add_argument("--snapshot-tokens", type=int,
                    help="length of a prefix whose KV snapshot is kept (default: none; with "
                         "--agent, the built-in toolset's prefix rendered for the model)")
    pl.add_argument("--agent", action="store_true",
                    help="add what the tool-calling agent allocates (grammar index, buffers, "
                         "its prefix snapshot)")
    pl.add_argument("--snapshot-file", action="store_true",
                    help="the snapshot stays in its file (agent --cache-dir): page cache, not "
                         "anonymous memory")
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(func=cmd_plan)

    b = sub.add_parser("boards", help="list board profiles")
    b.set_defaults(func=cmd_boards)

    c = sub.add_parser("convert", help="convert a GGUF to Q8_0")
    c.add_argument("input")
    c.add_argument("output")
    c.add_argument("--type", default="q8_0", choices=["q8_0"])
    c.set_defaults(func=cmd_convert)

    e = sub.add_parser("emulate", help="run a command inside a board's memory limit")
    e.add_argument("--board")
    e.add_argument("--limit", help="memory limit (e.g. 256M); default: the board's budget")
    e.add_argument("--drop-caches", action="store_true",
                   help="drop the machine's page cache first (as root), so the command is "
                        "charged for every file page it reads")
    e.add_argument("cmd", nargs=argparse.REMAINDER)
    e.set_defaults(func=cmd_emulate)
    return p


def _one_line_warning(message, category, filename, lineno, line=None):
    return f"edge-runtime: warning: {message}\n"


def main(argv=None):
    warnings.formatwarning = _one_line_warning
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except _user_errors() as e:
        print(f"edge-runtime {args.command}: error: {e}", file=sys.stderr)
        if getattr(args, "json", False):     # a --json caller parses stdout, even on failure
            _print_json({"error": str(e), "command": args.command})
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
