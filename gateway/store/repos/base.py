"""What every repository shares: the transaction's connection and clock, error mapping, row locking,
the lifecycle-checked state change, and the one listing helper behind every ``list``/``find`` query.

A repository is a thin view of one area (files, requests, ...) over the *same* connection: they are
built together by ``Tx`` so that one ``with store.begin() as tx`` spans all of them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import ColumnElement, Connection, Row, Table, select, update
from sqlalchemy import exc as sa_exc

from gateway import lifecycle
from gateway.errors import StoreError
from gateway.store.errors import NotFoundError, StaleStateError, store_error
from gateway.store.rows import from_mapping

if TYPE_CHECKING:
    from gateway.store.repos.audit import AuditRepo

Clock = Callable[[], datetime]
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
HEX64 = re.compile(r"^[0-9a-f]{64}$")

P = ParamSpec("P")
R = TypeVar("R")
RepoT = TypeVar("RepoT", bound="Repo")
RowT = TypeVar("RowT")


def db(fn: Callable[Concatenate[RepoT, P], R]) -> Callable[Concatenate[RepoT, P], R]:
    """Map SQLAlchemy errors raised by a repository method to PHI-free StoreErrors named after it."""
    operation = f"{fn.__qualname__.split('Repo.')[0].lower()} {fn.__name__.replace('_', ' ')}".strip()

    @functools.wraps(fn)
    def wrapper(self: RepoT, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(self, *args, **kwargs)
        except sa_exc.SQLAlchemyError as exc:
            raise store_error(exc, operation) from None

    return wrapper


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise StoreError(f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def window(column: Any, since: datetime | None, until: datetime | None) -> list[ColumnElement[bool]]:
    """Conditions for ``since <= column < until`` (either end open when None)."""
    out: list[ColumnElement[bool]] = []
    if since is not None:
        out.append(column >= since)
    if until is not None:
        out.append(column < until)
    return out


def equal(*pairs: tuple[Any, object]) -> list[ColumnElement[bool]]:
    """``column == value`` for every pair whose value is given (None means "any")."""
    return [column == value for column, value in pairs if value is not None]


class Repo:
    """One area's operations on the transaction's connection."""

    def __init__(self, conn: Connection, clock: Clock, audit: AuditRepo | None = None) -> None:
        self.conn = conn
        self._clock = clock
        self._audit = audit

    def now(self) -> datetime:
        """The store's clock (UTC, aware)."""
        return self._clock()

    @property
    def audit(self) -> AuditRepo:
        """The event log every state change is written to (the same transaction)."""
        if self._audit is None:
            raise StoreError("this repository was built without the audit log")
        return self._audit

    def listing(
        self,
        table: Table,
        row_type: type[RowT],
        *,
        where: Iterable[ColumnElement[bool]] = (),
        order: Sequence[Any] = (),
        limit: int | None = DEFAULT_LIMIT,
    ) -> list[RowT]:
        """Rows of ``table`` matching every condition, in ``order`` (newest id first by default),
        at most ``limit`` (checked: 1..MAX_LIMIT; None for an unbounded list), as ``row_type``."""
        stmt = select(table).where(*where).order_by(*(order or (table.c.id.desc(),)))
        if limit is not None:
            stmt = stmt.limit(check_limit(limit))
        return [from_mapping(row_type, r) for r in self.conn.execute(stmt)]

    def locked(self, table: Table, column: str, value: object, what: str) -> Row[Any]:
        """The row where ``column == value``, locked for update (PostgreSQL); NotFoundError if none."""
        stmt = select(table).where(table.c[column] == value).with_for_update()
        row = self.conn.execute(stmt).first()
        if row is None:
            raise NotFoundError(f"{what} not found")
        return row

    def move(
        self,
        entity: lifecycle.Entity,
        table: Table,
        row: Row[Any],
        event: str,
        *,
        expect: str | None = None,
        extra: Mapping[str, Any] | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> Row[Any]:
        """Apply ``event`` to ``row`` per the lifecycle table (only from ``expect``, if given) and log
        the change in state_changes; IllegalTransitionError if the table has no such move."""
        old = row.state
        if expect is not None and old != expect:
            raise StaleStateError(f"{entity} {row.id} is {old!r}, expected {expect!r}")
        new_state = lifecycle.target(entity, old, event)
        stmt = (
            update(table)
            .where(table.c.id == row.id)
            .values(state=new_state, updated_at=self.now(), **(extra or {}))
            .returning(*table.c)
        )
        new = self.conn.execute(stmt).one()
        if old != new_state:
            self.audit.record_change(entity, row.id, old, new_state, detail)
        return new
