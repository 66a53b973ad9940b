"""Database failures mapped to ``StoreError`` with messages that can never carry PHI.

SQLAlchemy's messages quote the SQL and, unless hidden, its bound parameters; PostgreSQL's own messages
go further and quote offending key values (``DETAIL: Key (tracking_number)=(...) already exists``). Any
of those can be a member's name or id. So the message of a mapped error is built only from schema facts:
the SQLSTATE or SQLite error name, and the constraint or table.column named by the database. The
original exception is not chained (``from None``) so a logged traceback does not print it either.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from sqlalchemy import exc as sa_exc

from gateway.errors import IllegalTransitionError, StaleStateError, StoreError

__all__ = [
    "ConstraintError",
    "DuplicateKeyError",
    "IllegalTransitionError",
    "NotFoundError",
    "StaleStateError",
    "StoreDatabaseError",
    "StoreUnavailableError",
    "store_error",
]

# SQLite's constraint messages name only schema objects; anything else is not quoted at all.
_SQLITE_CONSTRAINT = re.compile(r"^(UNIQUE|NOT NULL|CHECK|FOREIGN KEY) constraint failed(?:: ([\w., ]+))?$")
_UNIQUE_SQLSTATE = "23505"


class StoreDatabaseError(StoreError):
    """The database refused or failed a statement; ``code`` is the SQLSTATE or SQLite error name."""

    def __init__(self, message: str, *, code: str = "", constraint: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.constraint = constraint


class StoreUnavailableError(StoreDatabaseError):
    """The database cannot be reached, is locked beyond the busy timeout, or dropped the connection.

    Retrying later may succeed; the run loop backs off rather than marking work as failed.
    """


class ConstraintError(StoreDatabaseError):
    """A row broke a constraint (not-null, check, foreign key, unique); a bug or bad input, not retryable."""


class DuplicateKeyError(ConstraintError):
    """A unique key already exists (e.g. a tracking number that was already inserted)."""


class NotFoundError(StoreError):
    """The row the caller named (by id or tracking number) does not exist."""


def _sqlstate(orig: Any) -> str:
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if isinstance(code, str):
        return code
    name = getattr(orig, "sqlite_errorname", None)
    return name if isinstance(name, str) else type(orig).__name__


def _constraint(orig: Any) -> tuple[str, bool]:
    """The violated constraint's name (or SQLite's table.column) and whether it is a unique one."""
    diag = getattr(orig, "diag", None)
    if diag is not None:
        name = getattr(diag, "constraint_name", None) or getattr(diag, "table_name", None) or ""
        return str(name), _sqlstate(orig) == _UNIQUE_SQLSTATE
    if isinstance(orig, sqlite3.Error) and orig.args:
        match = _SQLITE_CONSTRAINT.match(str(orig.args[0]))
        if match:
            return match.group(2) or match.group(1).lower(), match.group(1) == "UNIQUE"
    return "", False


def store_error(exc: sa_exc.SQLAlchemyError, operation: str) -> StoreError:
    """A PHI-free StoreError for ``exc``; ``operation`` is a fixed phrase such as 'insert request'."""
    orig = getattr(exc, "orig", None)
    code = _sqlstate(orig) if orig is not None else type(exc).__name__
    constraint, unique = _constraint(orig) if orig is not None else ("", False)
    where = f"{code}, {constraint}" if constraint else code
    if isinstance(exc, sa_exc.IntegrityError):
        cls: type[StoreDatabaseError] = DuplicateKeyError if unique else ConstraintError
        return cls(f"{operation}: constraint violated ({where})", code=code, constraint=constraint)
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError):
        return StoreUnavailableError(f"{operation}: database unavailable ({where})", code=code)
    if isinstance(exc, sa_exc.ArgumentError):
        return StoreDatabaseError(f"{operation}: invalid database URL or argument", code=code)
    return StoreDatabaseError(f"{operation}: database error ({where})", code=code, constraint=constraint)
