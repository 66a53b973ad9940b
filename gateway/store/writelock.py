"""The cross-process writer lock of a SQLite file store: processes take turns writing and a waiting
process wakes the moment the holder commits.

Why: SQLite admits one writer at a time, and a writer that finds the database locked waits in SQLite's
busy handler, which *sleeps* (1, 2, 5, 10, 15, 20, 25 ... up to 100 ms) and polls again instead of
waking when the lock is freed. Inside one process ``Store._writing`` already queues writers on a
thread lock; between processes (``x12gw serve --workers N``, ``serve`` beside ``x12gw run``) each
writer met those sleeps, so two serve workers were barely faster than one. An exclusive ``flock`` held
around each write transaction makes the kernel hand the lock to a waiting process as soon as the holder
lets go (and a crashed holder's lock goes with its last file descriptor: nothing to clean up).

Where the lock file lives, and why there: beside the database, named ``<database>-writer.lock``.

* Every process that opens the database derives the same path from the URL, whatever its user, working
  directory or container (a lock file in ``/run`` or ``/tmp`` would not be shared by processes in
  different mount namespaces that share the database's volume);
* it is on the database's own file system, whose folder is writable by the gateway anyway (SQLite
  creates its ``-wal``/``-shm`` files there);
* it is created owner-only (0600): it holds nothing, but anyone who can open it can lock it and so stall
  every writer for the busy timeout at a time;
* it is never deleted: removing it while a process holds it would let the next process lock a new file
  of the same name and write alongside the holder.

Guarantees kept from before: a writer never waits forever. ``flock`` itself has no timeout, so a
contended wait is handed to one helper thread per lock (at most one thread per process waits for the
file lock, as the process's own writers already queue on the thread lock) and the writer waits for it
at most the busy timeout; past it the writer goes on without the file lock and SQLite's busy handler
decides, exactly as without this lock (a stuck holder costs a timeout, never a hang). A lock nobody
wants any more when the helper gets it is released at once. After ``fork`` the child opens its own
descriptor (``flock`` locks belong to the open file, which a forked child shares with its parent, so
the child closes its inherited copy at once).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
import weakref
from pathlib import Path

from gateway.errors import StoreError

SUFFIX = "-writer.lock"
FILE_MODE = 0o600
STREAK = 4  # write transactions a process may run in a row while its own writers queue (see ``release``)
CARRY_SECONDS = 0.05  # a lock kept for a queued writer of this process that never took it is let go


_LIVE: weakref.WeakSet[FileWriterLock] = weakref.WeakSet()


def lock_path(database: Path) -> Path:
    """The writer lock file of the SQLite database at ``database``."""
    return Path(f"{database}{SUFFIX}")


class FileWriterLock:
    """An exclusive ``flock`` on the database's lock file, for one process; thread-safe, not reentrant.

    Callers hold the process's writer thread lock while they call :meth:`acquire` and :meth:`release`
    (``Store._writing``), so at most one thread of a process holds or waits for it at a time; they call
    :meth:`arrive` before they wait for that thread lock and :meth:`depart` once they have it (or gave
    up), so the lock knows whether writers of this process are queued behind the holder.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cond = threading.Condition(threading.Lock())
        self._fd = -1
        self._held = False  # this process holds the lock (through ``_fd``)
        self._wanted = False  # a writer waits for the helper to get it
        self._pending = False  # the helper is inside a blocking flock
        self._broken = False  # flock failed other than by contention: writers do without it
        self._helper: threading.Thread | None = None
        self._queued = 0  # writers of this process waiting for the thread lock
        self._streak = 0  # transactions run in a row without letting the lock go
        self._carried = False  # held, kept by ``release`` for the next writer of this process
        self._carries = 0  # counts carries, so the helper can tell a carry nobody took
        self._watching = False  # the helper is timing a carry
        _LIVE.add(self)

    def arrive(self) -> None:
        """A writer of this process is about to wait for the thread lock."""
        with self._cond:
            self._queued += 1

    def depart(self) -> None:
        """... and has it now (or gave up waiting)."""
        with self._cond:
            self._queued -= 1

    def acquire(self, timeout: float) -> bool:
        """Take the lock, waiting at most ``timeout`` seconds; False if it could not be had in time
        (or the lock file cannot be opened: the writer then relies on SQLite's busy handler alone)."""
        with self._cond:
            fd = self._descriptor()
            if fd < 0 or self._broken:
                return False
            if self._carried:  # kept for us by the writer before us
                self._carried = False
                return True
            if self._held:  # callers serialise on the thread lock, and nested writes never come here
                raise StoreError("the writer lock file is already held by this process")
            if not self._pending:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    pass  # another process holds it: wait below
                except OSError:
                    self._broken = True  # no locks on this file system: SQLite's busy handler alone
                    return False
                else:
                    self._held = True
                    return True
            self._wanted = True
            self._start_helper()
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._held or self._broken, timeout=max(0.0, timeout))
            self._wanted = False
            return self._held

    def release(self) -> None:
        """Let the lock go (the next process's waiter wakes at once), or keep it for the next writer of
        this process when one is queued (to at most ``STREAK`` of them in a row).

        Why keep it: while processes strictly alternate, every transaction starts with a page cache
        the other process's commit made stale (SQLite then reads the pages again, about 3 times the
        ``pread`` calls with two serve workers) and with a hand-over between processes. Letting a few
        queued local writers go first and then handing over keeps both low, and bounds what the other
        process waits for to ``STREAK`` transactions. A kept lock nobody takes (the queued writer gave
        up) is let go by the helper after ``CARRY_SECONDS`` (twice that when it was kept again meanwhile).
        """
        with self._cond:
            if not self._held:
                return
            if self._queued > 0 and self._streak < STREAK:
                self._streak += 1
                self._carried = True
                self._carries += 1
                self._start_helper()
                if not self._watching:
                    self._cond.notify_all()
                return
            self._unlock()

    def _unlock(self) -> None:
        """Let the flock go. Call with ``_cond`` held."""
        self._held = self._carried = False
        self._streak = 0
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the descriptor if nothing holds or waits for the lock (the helper then ends); the
        next writer opens it again."""
        with self._cond:
            if self._fd >= 0 and not (self._held or self._wanted or self._pending):
                os.close(self._fd)
                self._fd = -1
                self._cond.notify_all()

    def _forget_after_fork(self) -> None:
        """In a forked child: close the inherited descriptor (a parent that crashes while holding the
        lock must not leave it held through a child's copy) and start from nothing."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._cond = threading.Condition(threading.Lock())  # its lock may have been held at the fork
        self._fd = -1
        self._held = self._wanted = self._pending = self._broken = False
        self._carried = self._watching = False
        self._queued = self._streak = self._carries = 0
        self._helper = None

    def _descriptor(self) -> int:
        """This process's descriptor of the lock file (opened, and made, on first use), or -1 if it
        cannot be opened (a folder the gateway may not write to: SQLite's own locking still holds)."""
        if self._fd < 0:
            with contextlib.suppress(OSError):
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        return self._fd

    def _start_helper(self) -> None:
        if self._helper is None or not self._helper.is_alive():
            self._helper = threading.Thread(
                target=self._wait_loop, name="x12gw-sqlite-writer-lock", daemon=True
            )
            self._helper.start()

    def _wait_loop(self) -> None:
        """The helper: whenever a writer waits, block in ``flock`` for it (no GIL held) and hand over;
        whenever the lock is kept for a local writer, let it go if nobody takes it."""
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: self._fd < 0 or self._carried or (self._wanted and not self._held)
                )
                if self._fd < 0:
                    return
                if self._carried:
                    self._watch_carry()
                    continue
                fd, self._pending = self._fd, True
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:
                with self._cond:  # no locks here after all: writers do without, and wake now
                    self._pending, self._broken = False, True
                    self._cond.notify_all()
                return
            with self._cond:
                self._pending = False
                if self._wanted:
                    self._held = True
                    self._streak = 0
                    self._cond.notify_all()
                else:  # the writer gave up waiting: do not keep the others out
                    self._held = False
                    fcntl.flock(fd, fcntl.LOCK_UN)

    def _watch_carry(self) -> None:
        """Let a kept lock go if it is still the same carry after ``CARRY_SECONDS``. With ``_cond`` held."""
        carry = self._carries
        deadline = time.monotonic() + CARRY_SECONDS
        self._watching = True
        try:
            while self._carried and self._carries == carry and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
        finally:
            self._watching = False
        if self._carried and self._carries == carry:
            self._unlock()


def _after_fork_in_child() -> None:
    for lock in list(_LIVE):
        lock._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
