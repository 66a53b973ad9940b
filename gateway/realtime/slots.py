"""At most two real-time calls of a process at a time in their store-and-compute parts.

Why: a real-time call's work between waits (recording the call and building its interchange; storing,
mapping and delivering the answer) is Python under the interpreter lock, and part of it runs under
SQLite's single write lock. Every SQLite step gives up the interpreter lock and must take it back;
with sixteen call threads all wanting it, the thread holding the write lock waits behind them each
time (measured: ~150 us of wall time per statement for ~10-20 us of SQLite work), so every other
writer, in this process and the others, waits too. Admitting two calls at a time to those parts and
parking the rest on a semaphore (where they do not compete for the interpreter lock) keeps the
writer's waits short; the calls still overlap their waits for the payer, which is where their time
goes. ``bench/bench_api.py`` (16 clients): overhead p95 down by about a fifth, see README Performance.

A call never holds a slot while it waits for the payer, and never takes a second one inside the
first (the parts are sequential), so slots cannot deadlock; a thread that already holds one (a
nested part) goes straight in.
"""

from __future__ import annotations

import threading
from types import TracebackType

CALL_SLOTS = 2


class Slots:
    """A counting gate that knows which threads are inside (``held``) and how many (``busy``)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._free = threading.BoundedSemaphore(size)
        self._mine = threading.local()
        self._count = threading.Lock()
        self.busy = 0

    def held(self) -> bool:
        """Whether the calling thread is inside."""
        return getattr(self._mine, "depth", 0) > 0

    def __enter__(self) -> None:
        depth = getattr(self._mine, "depth", 0)
        if depth == 0:
            self._free.acquire()
            with self._count:
                self.busy += 1
        self._mine.depth = depth + 1

    def __exit__(
        self, _kind: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        depth = self._mine.depth - 1
        self._mine.depth = depth
        if depth == 0:
            with self._count:
                self.busy -= 1
            self._free.release()


# the process's slots: every real-time call's store-and-compute parts go through these
CALLS = Slots(CALL_SLOTS)
