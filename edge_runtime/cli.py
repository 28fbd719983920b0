"""`edge-runtime` command line: argument parsing and printing only; behaviour lives below.

Each subcommand is one `cmd_*` function. User errors (bad files, bad arguments, budgets) print
one line and exit 2; nothing a user can cause ends in a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys

from .gguf import GGUFError


class UserError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


# Errors that mean "your input is wrong", whichever module raises them.
def _user_errors():
    from .errors import USER_ERRORS
    return (UserError, GGUFError, FileNotFoundError, IsADirectoryError, PermissionError) + USER_ERRORS


def _print_json(obj):
    print(json.dumps(obj, indent=None, default=str))


# ---- subcommands -----------------------------------------------------------------------

def cmd_run(args):
    raise UserError("run: not built yet")


def cmd_agent(args):
    raise UserError("agent: not built yet")


def cmd_plan(args):
    raise UserError("plan: not built yet")


def cmd_boards(args):
    raise UserError("boards: not built yet")


def cmd_convert(args):
    raise UserError("convert: not built yet")


def cmd_emulate(args):
    raise UserError("emulate: not built yet")


# ---- parser ----------------------------------------------------------------------------

def build_parser():
    p = argparse.ArgumentParser(prog="edge-runtime", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="generate text from a prompt")
    r.add_argument("prompt")
    r.add_argument("--model")
    r.add_argument("--max-tokens", type=int, default=128)
    r.add_argument("--threads", type=int)
    r.add_argument("--max-inference-len", type=int)
    r.add_argument("--temperature", type=float, default=0.0)
    r.add_argument("--seed", type=int)
    r.add_argument("--stats", action="store_true")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_run)

    a = sub.add_parser("agent", help="run the tool-calling agent on a request")
    a.add_argument("request")
    a.add_argument("--model")
    a.add_argument("--tools")
    a.add_argument("--board")
    a.add_argument("--threads", type=int)
    a.add_argument("--max-steps", type=int, default=4)
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_agent)

    pl = sub.add_parser("plan", help="print the memory plan")
    pl.add_argument("--model")
    pl.add_argument("--board")
    pl.add_argument("--max-inference-len")
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
    e.add_argument("--board", required=True)
    e.add_argument("cmd", nargs=argparse.REMAINDER)
    e.set_defaults(func=cmd_emulate)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except _user_errors() as e:
        print(f"edge-runtime {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
