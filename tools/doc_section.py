"""Generated sections of the docs: a tool's output sits between `<!-- name -->` and
`<!-- /name -->` in a markdown file, and rewriting it keeps the hand-written text around it."""
from __future__ import annotations


def write_section(path, name: str, text: str, where: str = "end") -> None:
    """Replace section `name` of path with text. A file without that section gets it at the
    start or the end (where="start" | "end"), or refuses (where=None: SystemExit)."""
    begin, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    block = f"{begin}\n{text.strip(chr(10))}\n{end}"
    try:
        with open(path) as f:
            old = f.read()
    except FileNotFoundError:
        old = ""
    if begin in old and end in old:
        new = old[:old.index(begin)] + block + old[old.index(end) + len(end):]
    elif where is None:
        raise SystemExit(f"{path} has no {begin} ... {end} markers")
    elif where == "start":
        new = block + "\n" + old
    else:
        new = (old.rstrip("\n") + "\n\n" if old.strip() else "") + block
    with open(path, "w") as f:
        f.write(new if new.endswith("\n") else new + "\n")
