"""What a process does use: resident memory split into anonymous and file-backed, with peaks per
phase (load, prefill, decode).

Fast counters come from /proc/self/status (VmRSS, RssAnon, RssFile, VmHWM) and are sampled by
a background thread every ~5 ms while a phase is open — peaks inside native calls are caught
because the decoder releases the GIL. USS (psutil, reads smaps) costs more, so it is taken
only in the explicit samples at phase boundaries. Where /proc is missing, psutil's rss is used
and the anonymous/file split is unknown (None).
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, fields

import psutil

_STATUS = "/proc/self/status"
_KEYS = {b"VmRSS:": "rss", b"RssAnon:": "anon", b"RssFile:": "file", b"VmHWM:": "hwm"}


@dataclass(frozen=True)
class Sample:
    """Bytes; None where the platform does not say."""
    rss: int
    anon: int = None
    file: int = None
    hwm: int = None
    uss: int = None

    def max(self, other: "Sample") -> "Sample":
        def pick(a, b):
            return b if a is None else a if b is None else max(a, b)
        return Sample(*(pick(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)))


def read_status(path=_STATUS) -> dict:
    """VmRSS/RssAnon/RssFile/VmHWM from a /proc status file, in bytes ({} where absent)."""
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        key = _KEYS.get(line.split(None, 1)[0] if line else b"")
        if key:
            out[key] = int(line.split()[1]) * 1024
    return out


class RssTracker:
    """Peaks of resident memory per named phase.

        t = RssTracker()
        with t.phase("prefill"):
            ...
        t.peak["prefill"].anon
    """

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.peak = {}            # phase name -> Sample (field-wise maxima)
        self._active = []         # names of the open phases (they may nest)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._proc = psutil.Process()

    def sample(self, uss: bool = False) -> Sample:
        """Read the counters now and fold them into the peaks of every open phase."""
        st = read_status()
        rss = st.get("rss")
        if rss is None:
            rss = self._proc.memory_info().rss
        s = Sample(rss=rss, anon=st.get("anon"), file=st.get("file"), hwm=st.get("hwm"),
                   uss=self._proc.memory_full_info().uss if uss else None)
        with self._lock:
            for name in self._active:
                self.peak[name] = self.peak[name].max(s) if name in self.peak else s
        return s

    def mark(self, name: str) -> Sample:
        """One cheap sample folded into phase `name` (for per-token calls, where a sampler
        thread per call would cost more than the work; memory does not shrink inside them)."""
        with self._lock:
            self._active.append(name)
        try:
            return self.sample()
        finally:
            with self._lock:
                self._active.remove(name)

    @contextmanager
    def phase(self, name: str):
        with self._lock:
            self._active.append(name)
        self._start_sampler()
        self.sample(uss=True)
        try:
            yield self
        finally:
            self.sample(uss=True)
            with self._lock:
                self._active.remove(name)
                idle = not self._active
            if idle:
                self._stop_sampler()

    @property
    def overall(self) -> Sample:
        """Field-wise maxima over all phases (None before any phase ran)."""
        out = None
        for s in self.peak.values():
            out = s if out is None else out.max(s)
        return out

    def summary(self) -> dict:
        """Flat peaks for Model.stats(): peak_rss, peak_anon, peak_file, peak_uss, vm_hwm, and
        per phase <phase>_peak_rss / _anon / _file."""
        o = self.overall or Sample(rss=self.sample().rss)
        d = {"peak_rss": o.rss, "peak_anon": o.anon, "peak_file": o.file, "peak_uss": o.uss,
             "vm_hwm": o.hwm}
        for name, s in self.peak.items():
            d.update({f"{name}_peak_rss": s.rss, f"{name}_peak_anon": s.anon,
                      f"{name}_peak_file": s.file})
        return d

    # ---- background sampler ---------------------------------------------------------------
    def _start_sampler(self):
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
            self._thread.start()

    def _stop_sampler(self):
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def _run(self):
        while not self._stop.wait(self.interval):
            self.sample()

