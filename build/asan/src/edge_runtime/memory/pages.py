"""Page policy for the mapped weights: madvise hints over byte ranges of the mapping.

The decoder calls `advise(addr, length, "dontneed")` over a layer's weight range once the layer
has run (pages="release") and may hint "willneed" for the next layer. What each hint does to a
read-only file mapping on Linux:
  dontneed  unmaps the pages from this process: RssFile falls at once, the page cache keeps them,
            so the next touch is a minor fault, not a disk read;
  cold      marks them first in line for reclaim (kernel >= 5.4); RSS unchanged until pressure;
  pageout   reclaims them now (kernel >= 5.4): RSS falls and, if no one else maps them, the
            page cache drops them too, so the next touch reads the disk;
  willneed  starts read-ahead of the range.
"""
from __future__ import annotations

import ctypes
import mmap
import sys

PAGE_SIZE = mmap.PAGESIZE
# Linux <asm-generic/mman-common.h>
ADVICE = {"willneed": 3, "dontneed": 4, "cold": 20, "pageout": 21}
_DROPPING = ("dontneed", "cold", "pageout")

_madvise = None
if sys.platform.startswith("linux"):
    _libc = ctypes.CDLL(None, use_errno=True)
    _madvise = _libc.madvise
    _madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    _madvise.restype = ctypes.c_int


def page_range(address: int, length: int, inward: bool):
    """Page-aligned (start, length) covering [address, address+length): shrunk to the whole pages
    inside it when `inward` (never touch a neighbour's page), else grown to every page it touches."""
    end = address + length
    if inward:
        start = -(-address // PAGE_SIZE) * PAGE_SIZE
        end = end // PAGE_SIZE * PAGE_SIZE
    else:
        start = address // PAGE_SIZE * PAGE_SIZE
        end = -(-end // PAGE_SIZE) * PAGE_SIZE
    return start, max(end - start, 0)


def advise(address: int, length: int, policy: str) -> bool:
    """madvise the pages of [address, address+length) with `policy` (see ADVICE). Returns whether
    the kernel accepted the hint (False for an empty range, an old kernel or another OS)."""
    if policy not in ADVICE:
        raise ValueError(f"page policy must be one of {', '.join(ADVICE)}, not {policy!r}")
    start, n = page_range(int(address), int(length), inward=policy in _DROPPING)
    if _madvise is None or n == 0:
        return False
    return _madvise(start, n, ADVICE[policy]) == 0
