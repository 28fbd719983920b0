"""Board profiles: RAM, OS reserve, cores and ISA of the boards we target.

Profiles are TOML files in the top-level `boards/` folder, shipped in the wheel as the package
`edge_runtime.board_profiles`. They use a flat subset of TOML (one `key = value` a line;
integers, strings, booleans and arrays of strings) so that Python 3.9/3.10, which have no
tomllib, read them with the small parser below.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None

MIB = 1 << 20
_REQUIRED = ("name", "description", "ram_mib", "os_reserve_mib", "cores", "isa", "default_threads")


class BoardError(ValueError):
    """An unknown board name or a malformed profile."""


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    ram: int            # bytes
    os_reserve: int     # bytes the OS, firmware and GPU keep for themselves
    cores: int
    isa: tuple          # e.g. ("neon", "dotprod")
    default_threads: int

    @property
    def budget(self) -> int:
        """Bytes left for us: RAM minus the OS reserve."""
        return self.ram - self.os_reserve


# ---- the flat TOML subset ---------------------------------------------------------------

_LINE = re.compile(r'^([A-Za-z0-9_-]+)\s*=\s*(.+?)\s*$')
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


def _value(text: str, where: str):
    if text.startswith('"'):
        m = _STRING.fullmatch(text)
        if not m:
            raise BoardError(f"{where}: bad string {text}")
        return m.group(1).replace('\\"', '"').replace("\\\\", "\\")
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip().rstrip(",")
        return [_value(item.strip(), where) for item in inner.split(",")] if inner else []
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text.replace("_", ""))
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise BoardError(f"{where}: unsupported value {text!r}") from None


def _strip_comment(line: str) -> str:
    # A '#' outside a string starts a comment; strings in profiles hold no escaped quotes.
    out, in_str = [], False
    for ch in line:
        if ch == '"':
            in_str = not in_str
        elif ch == "#" and not in_str:
            break
        out.append(ch)
    return "".join(out).strip()


def parse_flat_toml(text: str, where: str = "<toml>") -> dict:
    """Parse the flat TOML subset used by board profiles (no tables, no multi-line values)."""
    out = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw)
        if not line:
            continue
        m = _LINE.match(line)
        if not m:
            raise BoardError(f"{where}:{n}: expected 'key = value', got {raw.strip()!r}")
        if m.group(1) in out:
            raise BoardError(f"{where}:{n}: duplicate key {m.group(1)!r}")
        out[m.group(1)] = _value(m.group(2), f"{where}:{n}")
    return out


def _loads(text: str, where: str) -> dict:
    if tomllib is not None:
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise BoardError(f"{where}: {e}") from None
    return parse_flat_toml(text, where)


def board_from_dict(d: dict, where: str = "<board>") -> Board:
    missing = [k for k in _REQUIRED if k not in d]
    if missing:
        raise BoardError(f"{where}: missing {', '.join(missing)}")
    b = Board(name=str(d["name"]), description=str(d["description"]),
              ram=int(d["ram_mib"]) * MIB, os_reserve=int(d["os_reserve_mib"]) * MIB,
              cores=int(d["cores"]), isa=tuple(d["isa"]), default_threads=int(d["default_threads"]))
    if b.budget <= 0 or b.cores <= 0 or b.default_threads <= 0:
        raise BoardError(f"{where}: budget, cores and default_threads must be positive")
    return b


# ---- the shipped profiles ---------------------------------------------------------------

def _profile_files():
    """(name, text) of every shipped profile: from the installed package, else the source tree."""
    try:
        from importlib.resources import files
        root = files("edge_runtime.board_profiles")
    except ModuleNotFoundError:  # running from a source checkout: boards/ sits beside the package
        root = Path(__file__).resolve().parent.parent / "boards"
    return sorted((p.name, p.read_text(encoding="utf-8")) for p in root.iterdir()
                  if p.name.endswith(".toml"))


_cache = None


def all_boards() -> dict:
    """Board name -> Board for every shipped profile, in name order."""
    global _cache
    if _cache is None:
        boards = {}
        for fname, text in _profile_files():
            b = board_from_dict(_loads(text, fname), fname)
            boards[b.name] = b
        _cache = boards
    return dict(_cache)


def get(name: str) -> Board:
    boards = all_boards()
    if name not in boards:
        raise BoardError(f"unknown board {name!r}; known boards: {', '.join(boards)}")
    return boards[name]
