"""The run loop outlives its database: outages are waited out with backoff, not fatal.

A database that refuses connections (PostgreSQL restarting, ``ALLOW_CONNECTIONS false``, a network
cut) or cannot take writes (SQLite on a full disk) raises ``StoreUnavailableError``. The runner then
ends the cycle at once (every stage would fail the same way), and :class:`OutageWatch` decides when to
try again: bounded exponential backoff (``BACKOFF_FIRST`` doubling up to ``BACKOFF_MAX`` seconds). The
outage is logged once when it starts (error) and once when it ends (info, with its length), never per
retry. The database counts as back only after a whole cycle ran without such an error, since a SQLite
file on a full disk may take a small heartbeat and still refuse the next insert.

Nothing is lost meanwhile: every unit of work is a state machine in the store (see "Architecture"), so
a cycle cut short is finished by the next one exactly like after a crash.

``x12gw status`` must see the outage although the database may not answer it, so the watch also keeps
a small state file per node in the state folder (``db-health.<node>.json``). The file is made at start
at a fixed size and later only overwritten in place, so it can still be updated on a full filesystem.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.store.errors import StoreUnavailableError

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
STATE_PREFIX = "db-health."
STATE_SIZE = 1024  # bytes; the record is JSON padded with spaces to exactly this size
# a waiting run loop rewrites its file at every attempt (at most BACKOFF_MAX apart): a record of an
# outage not rewritten for this long is a node killed meanwhile (on another host, say)
STALE_SECONDS = 5 * BACKOFF_MAX


def is_outage(exc: BaseException) -> bool:
    """An error that means the database is away (not a bug, not bad data): wait and retry."""
    return isinstance(exc, StoreUnavailableError)


def backoff(failures: int) -> float:
    """Seconds to wait after ``failures`` failed attempts in a row (1, 2, 4 ... at most BACKOFF_MAX)."""
    return min(BACKOFF_MAX, BACKOFF_FIRST * 2.0 ** min(max(failures - 1, 0), 30))


def state_path(state_dir: Path, node_id: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in node_id)
    return state_dir / f"{STATE_PREFIX}{safe}.json"


@dataclass
class OutageWatch:
    """This node's view of its database: available or not since when, and when to try next."""

    log: Any
    node_id: str
    clock: Callable[[], datetime]
    state_file: Path | None = None
    down_since: datetime | None = None
    failures: int = 0
    error: str = ""

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def start(self) -> None:
        """Make the state file (full size, so later updates need no new disk space)."""
        self._write("available")

    def failed(self, exc: BaseException) -> float:
        """The database failed an attempt; log if it just went away. Returns the seconds to wait."""
        self.failures += 1
        self.error = str(exc)
        started = self.down_since is None
        if started:
            self.down_since = self.clock()
        self._write("unavailable")  # before the log line: whoever reads the log finds the file updated
        if started:
            self.log.error(
                "database unavailable; the run loop waits and retries",
                node=self.node_id,
                error=self.error,
                retry_in=backoff(self.failures),
            )
        return backoff(self.failures)

    def succeeded(self) -> None:
        """A whole cycle ran without a database outage; log if the database just came back."""
        if self.down_since is not None:
            seconds = (self.clock() - self.down_since).total_seconds()
            self.log.info(
                "database available again; work resumes",
                node=self.node_id,
                down_seconds=round(seconds, 1),
                attempts=self.failures,
            )
            self.down_since, self.failures, self.error = None, 0, ""
            self._write("available")

    def stopped(self) -> None:
        """The node stops: its state file goes (a missing file means "no run loop here")."""
        if self.state_file is not None:
            with contextlib.suppress(OSError):
                self.state_file.unlink()

    def _write(self, state: str) -> None:
        """Overwrite the state file in place; a failure is ignored (it is a view, not the truth)."""
        if self.state_file is None:
            return
        record = {
            "node": self.node_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "database": state,
            "since": self.down_since.isoformat() if self.down_since else None,
            "error": self.error or None,
            "retry_in": backoff(self.failures) if self.down_since else None,
            "updated_at": self.clock().isoformat(),
        }
        data = json.dumps(record).encode()[: STATE_SIZE - 1].ljust(STATE_SIZE - 1) + b"\n"
        with contextlib.suppress(OSError):
            fd = os.open(self.state_file, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.pwrite(fd, data, 0)
                os.fsync(fd)
            finally:
                os.close(fd)


def read_states(state_dir: Path, now: datetime) -> list[dict[str, Any]]:
    """The state files of the run loops that use this state folder and are still running: a file
    left by a killed process is skipped (on this host its pid is gone; elsewhere an outage record
    not rewritten for ``STALE_SECONDS``)."""
    found: list[dict[str, Any]] = []
    try:
        paths = sorted(state_dir.glob(f"{STATE_PREFIX}*.json"))
    except OSError:
        return found
    host = socket.gethostname()
    for path in paths:
        try:
            record = json.loads(path.read_bytes())
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict):
            continue
        if record.get("host") == host and not _alive(record.get("pid")):
            continue
        if record.get("database") == "unavailable" and _older(record.get("updated_at"), now):
            continue
        found.append(record)
    return found


def _older(stamp: object, now: datetime) -> bool:
    try:
        at = datetime.fromisoformat(str(stamp))
    except ValueError:
        return True
    return at.tzinfo is None or now - at > timedelta(seconds=STALE_SECONDS)


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
