"""Admission: how many requests decode at once, and what happens to the rest.

`slots` requests hold a session each (the memory plan's count); up to `queue` more wait in
arrival order; one more is turned away at once with Busy (HTTP 503 + Retry-After), and so is a
waiter still without a slot after `wait` seconds. Nothing is ever started that memory cannot
hold, and every request gets an answer. Lives on the event loop: acquire/release are called
from it only (workers hand their completion back to the loop, see app.py).
"""
from __future__ import annotations

import asyncio
import math
import time


class Busy(Exception):
    """No slot now and no room to wait: retry after `retry_after` seconds."""

    def __init__(self, message, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class Admission:
    def __init__(self, slots: int, queue: int, wait: float = 120.0):
        if slots < 1 or queue < 0:
            raise ValueError(f"admission needs slots >= 1 and queue >= 0, got {slots}, {queue}")
        self.slots, self.queue, self.wait = slots, queue, wait
        self._free = slots
        self._waiters: list[asyncio.Future] = []
        self.admitted = self.rejected = 0
        self._mean_s = 1.0    # running mean request time, for Retry-After

    @property
    def active(self) -> int:
        return self.slots - self._free

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def retry_after(self) -> int:
        """Seconds until a slot is likely free for a newcomer: the queue ahead drains at
        `slots` requests per mean request time."""
        return max(1, math.ceil(self._mean_s * (self.waiting + 1) / self.slots))

    async def acquire(self) -> float:
        """Wait for a slot (or raise Busy); returns the admission time, for release()."""
        if self._free and not self._waiters:
            self._free -= 1
        else:
            if len(self._waiters) >= self.queue:
                self.rejected += 1
                raise Busy(f"all {self.slots} sessions are busy and {self.queue} requests are "
                           f"already waiting", self.retry_after())
            fut = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await asyncio.wait_for(asyncio.shield(fut), self.wait)
            except (asyncio.TimeoutError, asyncio.CancelledError) as e:
                if fut.done():              # the slot arrived as we gave up: hand it on
                    self.release(None)
                else:
                    self._waiters.remove(fut)
                    fut.cancel()
                if isinstance(e, asyncio.CancelledError):
                    raise
                self.rejected += 1
                raise Busy(f"no session became free within {self.wait:g} s",
                           self.retry_after()) from None
        self.admitted += 1
        return time.perf_counter()

    def release(self, since):
        """Give the slot back (to the first waiter, if any). since: acquire()'s return value,
        or None when the slot was never used."""
        if since is not None:
            self._mean_s += (time.perf_counter() - since - self._mean_s) * 0.2
        while self._waiters:
            fut = self._waiters.pop(0)
            if not fut.done():
                fut.set_result(None)    # the slot passes straight to it
                return
        self._free += 1

    def snapshot(self) -> dict:
        return {"slots": self.slots, "queue": self.queue, "active": self.active,
                "waiting": self.waiting, "admitted": self.admitted, "rejected": self.rejected}
