"""Opt-in measurement of the store's write transactions: how long each holds the writer lock.

Why: SQLite admits one writer at a time, so on a busy ``serve`` the time a write transaction holds
the writer lock (wall, and the holding thread's CPU) bounds how many real-time calls per second the
process can record, and every statement and row stepped inside it adds to that. Set
``X12GW_STORE_LOCK_STATS`` to a file path (``bench/bench_api.py --lock-stats`` does) and each write
transaction of every store opened afterwards appends one line to it when it ends::

    <held wall ms> <held thread CPU ms> <statements> <parameter sets> <pid>

"held" runs from the moment the transaction owns the writer lock (SQLite; on PostgreSQL, from its
start) until its commit or rollback returned; statements are those sent to the driver in it (BEGIN
and COMMIT are not counted), parameter sets the rows an executemany stepped (1 for a plain
statement). With ``X12GW_STORE_LOCK_TRACE=1`` as well, each statement's first 160 characters
follow its transaction's line, indented (to see which statements a transaction runs). Off (the
default), nothing here runs: no listener, no timer. Lines are written after the lock is released,
with one ``write`` on a file opened for appending, so several processes can share the file.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

__all__ = ["ENV", "TRACE_ENV", "Held", "Totals", "enabled", "flush", "instrument", "measure", "read"]

ENV = "X12GW_STORE_LOCK_STATS"
TRACE_ENV = "X12GW_STORE_LOCK_TRACE"


@dataclass
class Held:
    """One write transaction's counters, kept for its thread while the lock is held."""

    statements: int = 0
    rows: int = 0
    sql: list[str] = field(default_factory=list)
    trace: bool = False  # ``TRACE_ENV`` as the transaction began (read once, not per statement)


_LOCAL = threading.local()
_INSTRUMENTED: set[int] = set()
_GUARD = threading.Lock()


def enabled() -> bool:
    """Whether write transactions are measured (the environment says where to write)."""
    return bool(os.environ.get(ENV))


def _on_execute(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool) -> None:
    held: Held | None = getattr(_LOCAL, "held", None)
    if held is None:
        return
    held.statements += 1
    held.rows += len(parameters) if many else 1
    if held.trace:
        flat = " ".join(statement.split())
        held.sql.append(f"{flat[:160]}" + (f" x{len(parameters)}" if many else ""))


def instrument(engine: Engine) -> None:
    """Count the statements run on ``engine`` inside measured transactions (once per engine)."""
    with _GUARD:
        if id(engine) in _INSTRUMENTED:
            return
        _INSTRUMENTED.add(id(engine))
    event.listen(engine, "before_cursor_execute", _on_execute)


@contextmanager
def measure() -> Iterator[None]:
    """Measure the block (a write transaction from the moment it holds the lock) and append its line."""
    path = os.environ.get(ENV)
    if not path or getattr(_LOCAL, "held", None) is not None:  # off, or nested in a measured one
        yield
        return
    held = _LOCAL.held = Held(trace=bool(os.environ.get(TRACE_ENV)))
    wall, cpu = time.perf_counter(), time.thread_time()
    try:
        yield
    finally:
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
        _LOCAL.held = None
        _LOCAL.pending = (wall, cpu, held)


def flush() -> None:
    """Write the line of the transaction this thread measured last (call once the lock is released)."""
    pending = getattr(_LOCAL, "pending", None)
    if pending is None:
        return
    path = os.environ.get(ENV)
    if not path:
        return
    _LOCAL.pending = None
    wall, cpu, held = pending
    lines = [f"{wall * 1000:.4f} {cpu * 1000:.4f} {held.statements} {held.rows} {os.getpid()}"]
    lines += [f"  {sql}" for sql in held.sql]
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, ("\n".join(lines) + "\n").encode())
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Totals:
    """The sums over the lines of a stats file (``read``)."""

    transactions: int
    held_ms: float
    cpu_ms: float
    statements: int
    rows: int
    max_held_ms: float


def read(path: str, offset: int = 0) -> Totals:
    """The totals of the lines written to ``path`` past byte ``offset`` (trace lines skipped)."""
    count, held, cpu, statements, rows, worst = 0, 0.0, 0.0, 0, 0, 0.0
    try:
        with Path(path).open("rb") as f:
            f.seek(offset)
            text = f.read().decode()
    except FileNotFoundError:
        text = ""
    for line in text.splitlines():
        if not line or line.startswith(" "):
            continue
        parts = line.split()
        count += 1
        held += float(parts[0])
        cpu += float(parts[1])
        statements += int(parts[2])
        rows += int(parts[3])
        worst = max(worst, float(parts[0]))
    return Totals(count, held, cpu, statements, rows, worst)
