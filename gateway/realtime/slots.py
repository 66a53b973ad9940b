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

Calls recording a new request wait in a line of their own that is served first (``Slots.ahead``):
their payer's wait, which no slot covers, starts as soon as they are recorded, while an answer that
waits a little longer delays only its own call. ``bench/bench_api.py`` (1,000 calls, 16 clients,
payer 200 ms, 3 alternated pairs): overhead p95 67 / 58 / 65 -> 45 / 43 / 43 ms, p50 35 -> 27 ms,
a few more calls a second. So that answers are never starved by a stream of new calls, after
``AHEAD_STREAK`` hand-overs in a row to the first line a waiting answer gets the next slot.
"""

from __future__ import annotations

import threading
from collections import deque
from contextlib import AbstractContextManager
from types import TracebackType

CALL_SLOTS = 2
AHEAD_STREAK = 4  # hand-overs in a row to the ``ahead`` line while others wait, before one of them


class Slots:
    """A counting gate that knows which threads are inside (``held``) and how many (``busy``).

    A thread that leaves while others wait hands its slot straight to the longest waiting one (first
    come, first served), which wakes already inside: nobody can take the slot in between, and the
    woken thread takes no lock again before it goes on. (``threading.Semaphore`` woke a waiter that
    then queued again for the semaphore's condition lock, and a newcomer could take the slot first and
    send it back to the end of the line: more wake-ups and hand-offs of the interpreter lock per call,
    and a longer tail.)"""

    def __init__(self, size: int) -> None:
        self.size = size
        self._guard = threading.Lock()
        self._free = size
        self._waiting: deque[threading.Lock] = deque()  # one locked lock per waiting thread, oldest first
        self._first: deque[threading.Lock] = deque()  # the same for threads that came in ``ahead``
        self._streak = 0  # hand-overs in a row to ``_first`` while ``_waiting`` was not empty
        self._ahead = _Ahead(self)
        self._mine = threading.local()
        self.busy = 0

    @property
    def free(self) -> int:
        """Slots nobody holds (a slot being handed to a waiter is held)."""
        return self._free

    @property
    def waiting(self) -> int:
        """Threads waiting for a slot (in either line)."""
        return len(self._waiting) + len(self._first)

    def held(self) -> bool:
        """Whether the calling thread is inside."""
        return getattr(self._mine, "depth", 0) > 0

    def ahead(self) -> AbstractContextManager[None]:
        """Enter like ``with slots:``, but wait in the line served first (a call recording a new
        request; see the module's docstring)."""
        return self._ahead

    def __enter__(self) -> None:
        self._enter(self._waiting)

    def _enter(self, line: deque[threading.Lock]) -> None:
        mine = self._mine
        depth = getattr(mine, "depth", 0)
        if depth == 0:
            self._take(line)
        mine.depth = depth + 1

    def _take(self, line: deque[threading.Lock]) -> None:
        with self._guard:
            if self._free > 0:
                self._free -= 1
                self.busy += 1
                return
            turn = threading.Lock()
            turn.acquire()
            line.append(turn)
        try:
            turn.acquire()  # released by the thread that hands its slot over
        except (
            BaseException
        ):  # interrupted (the main thread): leave the line, or give back a slot handed over
            with self._guard:
                if turn in line:
                    line.remove(turn)
                    raise
            self._give()
            raise

    def _give(self) -> None:
        with self._guard:
            if self._first and (self._streak < AHEAD_STREAK or not self._waiting):
                self._streak = self._streak + 1 if self._waiting else 0
                self._first.popleft().release()  # the slot passes to it: ``busy`` stays
            elif self._waiting:
                self._streak = 0
                self._waiting.popleft().release()
            else:
                self._free += 1
                self.busy -= 1

    def __exit__(
        self, _kind: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        depth = self._mine.depth - 1
        self._mine.depth = depth
        if depth == 0:
            self._give()


class _Ahead:
    """``Slots.ahead()``: the context manager that enters through the first line."""

    __slots__ = ("_slots",)

    def __init__(self, slots: Slots) -> None:
        self._slots = slots

    def __enter__(self) -> None:
        self._slots._enter(self._slots._first)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._slots.__exit__(kind, exc, tb)


# the process's slots: every real-time call's store-and-compute parts go through these
CALLS = Slots(CALL_SLOTS)
