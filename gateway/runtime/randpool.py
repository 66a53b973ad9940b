"""Random bytes from the operating system's CSPRNG, fetched a block at a time.

Why: a real-time API call draws a few short random values (its PayloadID, the MIME boundary of its
CORE envelope, the temporary name of its result file), and each ``secrets.token_bytes`` is one
``getrandom`` system call during which the interpreter lock is let go. In a busy ``serve`` (sixteen
call threads on one lock) a thread that lets the lock go waits to get it back, so every such call
adds to the call's latency. Reading a block from the same source and handing out slices gives the
same bytes a series of small reads would (unpredictable, never reused), with one system call per
block instead of one per value.

Only for values that are unique names, not secrets: the unused part of a block stays in this
process's memory until it is handed out. Keys, salts and tokens keep using ``secrets`` directly.
"""

from __future__ import annotations

import os
import threading

BLOCK_BYTES = 4096


class RandomPool:
    """Slices of blocks read from ``os.urandom``; each byte handed out once, whatever the thread."""

    def __init__(self, block: int = BLOCK_BYTES) -> None:
        self._block = block
        self._lock = threading.Lock()
        self._buffer = b""
        self._used = 0
        # a forked child never hands out its parent's bytes (``serve --workers`` starts processes)
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._lock = threading.Lock()  # the parent's may have been held by another thread at the fork
        self._buffer, self._used = b"", 0

    def take(self, n: int) -> bytes:
        """``n`` fresh random bytes (a value longer than a block is read on its own)."""
        if n > self._block:
            return os.urandom(n)
        with self._lock:
            if self._used + n > len(self._buffer):
                self._buffer, self._used = os.urandom(self._block), 0
            start = self._used
            self._used = start + n
            return self._buffer[start : start + n]

    def hex(self, n: int) -> str:
        """``secrets.token_hex(n)``'s form: ``n`` random bytes as lower-case hex."""
        return self.take(n).hex()


POOL = RandomPool()
