"""Run a command as if on a smaller board: inside a memory cgroup limited to the board's budget
(RAM minus OS reserve) or any limit, optionally pinned to as many cores as the board has.

A child group is made under our own memory cgroup (cgroup v2 memory.max, or v1
memory.limit_in_bytes — whichever is writable here). File pages are charged to the group that
first reads them, so a file someone else already has in the page cache is not charged to the
command. Only with drop_caches=True (opt-in: it disturbs the whole machine) is the page cache
dropped first where permitted, or, where it is not, the files named in `evict` pushed out of it
with posix_fadvise, so that the command pays for them.

The result's peak is the group's own high-water mark (memory.peak / memory.max_usage_in_bytes:
anonymous memory plus the page cache charged to it), not a process's RSS. Whether the limit was
hit is reported from the kernel's counters (v2 memory.events "max", v1 memory.failcnt) and from
the peak: some kernels leave v1 failcnt at 0 even when reclaim ran at the limit, so a peak within
the charge batching slack of the limit counts as hit too.
"""
from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field

MIB = 1 << 20
# The kernel charges in per-CPU batches of 64 pages, so a group at its limit can report a peak
# up to that much per CPU below it.
CHARGE_SLACK = 64 * os.sysconf("SC_PAGE_SIZE") * (os.cpu_count() or 1)


class EmulationUnavailable(RuntimeError):
    """No writable memory cgroup here; the message says why."""


@dataclass
class EmulationResult:
    returncode: int          # the command's; negative: killed by that signal
    limit: int
    peak: int                # bytes charged to the group at its peak (anon + page cache)
    failcnt: int             # times the limit was hit (v1 failcnt, v2 events "max")
    oom_kills: int
    cgroup: str              # "v1 <path>" / "v2 <path>"
    cpus: tuple
    notes: list = field(default_factory=list)

    @property
    def limit_hit(self) -> bool:
        """The group reached its limit (reclaim or OOM), by the counters or by the peak."""
        return self.failcnt > 0 or self.oom_kills > 0 or self.peak + CHARGE_SLACK >= self.limit


def _mounts():
    """(type, mount point, options) of the cgroup file systems."""
    with open("/proc/self/mounts") as f:
        for line in f:
            _, point, fstype, opts = line.split()[:4]
            if fstype in ("cgroup", "cgroup2"):
                yield fstype, point, opts.split(",")


def _own_path(version: str) -> str:
    """Our cgroup path from /proc/self/cgroup: the v2 line (0::) or the v1 memory line."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            hid, controllers, path = line.rstrip("\n").split(":", 2)
            v1_memory = version == "v1" and "memory" in controllers.split(",")
            if (version == "v2" and hid == "0") or v1_memory:
                return path
    return None


class _Group:
    """One child memory cgroup; its file names depend on the cgroup version."""

    FILES = {"v1": dict(limit="memory.limit_in_bytes", procs="cgroup.procs",
                        peak="memory.max_usage_in_bytes"),
             "v2": dict(limit="memory.max", procs="cgroup.procs", peak="memory.peak")}

    def __init__(self, version, path):
        self.version, self.path = version, path
        self.files = self.FILES[version]

    def write(self, name, value):
        with open(os.path.join(self.path, name), "w") as f:
            f.write(str(value))

    def read(self, name):
        try:
            with open(os.path.join(self.path, name)) as f:
                return f.read()
        except OSError:
            return None

    def counters(self) -> dict:
        """failcnt and oom_kills, from memory.failcnt + memory.oom_control (v1) or memory.events (v2)."""
        if self.version == "v1":
            kv = _keyvals(self.read("memory.oom_control"))
            return {"failcnt": int(self.read("memory.failcnt") or 0), "oom_kills": kv.get("oom_kill", 0)}
        kv = _keyvals(self.read("memory.events"))
        return {"failcnt": kv.get("max", 0), "oom_kills": kv.get("oom_kill", 0)}


def _keyvals(text) -> dict:
    out = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


def make_group(limit: int) -> _Group:
    """A fresh child memory cgroup limited to `limit` bytes, or EmulationUnavailable saying why."""
    reasons = []
    for fstype, point, opts in _mounts():
        version = "v2" if fstype == "cgroup2" else "v1"
        if version == "v1" and "memory" not in opts:
            continue
        own = _own_path(version)
        if own is None:
            continue
        parent = os.path.join(point, own.lstrip("/"))
        enabled = _read_or_empty(os.path.join(parent, "cgroup.subtree_control"))
        if version == "v2" and "memory" not in enabled:
            reasons.append(f"{parent}: memory controller not enabled for child groups (cgroup v2)")
            continue
        g = _Group(version, os.path.join(parent, f"edge-runtime-emulate-{os.getpid()}"))
        try:
            os.mkdir(g.path)
            g.write(g.files["limit"], limit)
        except OSError as e:
            reasons.append(f"{parent}: {e.strerror} (cgroup {version})")
            _remove(g)
            continue
        return g
    raise EmulationUnavailable("no writable memory cgroup: " + ("; ".join(reasons) or
                                                              "no cgroup file system mounted"))


def _read_or_empty(path) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _remove(g: _Group):
    try:
        os.rmdir(g.path)
    except OSError:
        pass


def _drop_caches(evict, notes):
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1")
        notes.append("page cache dropped")
        return
    except OSError as e:
        notes.append(f"cannot drop the page cache ({e.strerror})")
    for path in evict:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        notes.append(f"evicted {os.path.basename(path)} from the page cache")


def run(cmd, limit: int, cores=None, evict=(), drop_caches=False) -> EmulationResult:
    """Run `cmd` (argv list) in a memory cgroup of `limit` bytes, pinned to `cores` CPUs if given.
    drop_caches: first drop the machine's page cache (or evict the `evict` files) so that the
    command is charged for every file page it reads."""
    if not cmd:
        raise ValueError("no command to run")
    notes = []
    g = make_group(limit)
    try:
        if g.version == "v1" and os.path.exists(os.path.join(g.path, "memory.memsw.limit_in_bytes")):
            g.write("memory.memsw.limit_in_bytes", limit)   # no escape into swap
        elif g.version == "v2" and os.path.exists(os.path.join(g.path, "memory.swap.max")):
            g.write("memory.swap.max", 0)
        if drop_caches:
            _drop_caches(evict, notes)
        available = sorted(os.sched_getaffinity(0))
        cpus = tuple(available[:cores]) if cores else tuple(available)
        if cores and cores > len(available):
            notes.append(f"board has {cores} cores, only {len(available)} available here")
        procs = os.path.join(g.path, g.files["procs"])

        def enter():  # in the child, before exec: join the group, then pin
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
            os.sched_setaffinity(0, cpus)

        rc = subprocess.run(list(cmd), preexec_fn=enter).returncode
        peak = g.read(g.files["peak"])
        if peak is None:
            notes.append("peak not reported by this kernel (no memory.peak)")
        return EmulationResult(returncode=rc, limit=limit, peak=int(peak or 0),
                               cgroup=f"{g.version} {g.path}", cpus=cpus, notes=notes,
                               **g.counters())
    finally:
        _remove(g)


def run_board(board, cmd, pin=True, evict=(), drop_caches=False) -> EmulationResult:
    """`run` with the board's budget as the limit and, if `pin`, its core count."""
    return run(cmd, board.budget, cores=board.cores if pin else None, evict=evict,
               drop_caches=drop_caches)


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": MIB, "mb": MIB,
          "mib": MIB, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}


def parse_size(text: str) -> int:
    """Bytes of "352M", "1.5G", "300MiB", "4096" (units are powers of 1024)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    unit = _UNITS.get(m.group(2).lower()) if m else None
    if unit is None or float(m.group(1)) * unit < 1:
        raise ValueError(f"not a memory size: {text!r} (e.g. 352M, 1.5G, 300MiB)")
    return int(float(m.group(1)) * unit)
