"""Owner-only SQLite files: the database and its ``-wal``/``-shm``/``-journal`` companions hold PHI.

SQLite creates the companions with the database file's own permission bits, so creating the database
file 0600 before SQLite opens it is enough for new stores; files left by an older release (0644) are
tightened on every open, and again from the connect hook once WAL mode has created its files.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sqlalchemy.engine import make_url

from gateway.errors import StoreError

FILE_MODE = 0o600
COMPANIONS = ("", "-wal", "-shm", "-journal")


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (None for PostgreSQL, in-memory or URI-style databases)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return None
    database = parsed.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def tighten(path: Path) -> None:
    """Set the database file and each companion that exists to 0600 (if it is looser)."""
    for suffix in COMPANIONS:
        candidate = Path(f"{path}{suffix}")
        try:
            mode = candidate.stat().st_mode
            if stat.S_IMODE(mode) & 0o077:
                candidate.chmod(FILE_MODE)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StoreError(f"cannot restrict {candidate.name} to its owner: {exc.strerror}") from None


def prepare(path: Path) -> None:
    """Create the database file owner-only if its folder exists and it does not; tighten what exists."""
    if path.parent.is_dir() and not path.exists():
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
        except OSError as exc:
            raise StoreError(f"cannot create the database file {path.name}: {exc.strerror}") from None
    tighten(path)
