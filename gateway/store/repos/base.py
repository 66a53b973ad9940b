"""What every repository shares: the transaction's connection and clock, error mapping, row locking,
the lifecycle-checked state change, and the one listing helper behind every ``list``/``find`` query.

A repository is a thin view of one area (files, requests, ...) over the *same* connection: they are
built together by ``Tx`` so that one ``with store.begin() as tx`` spans all of them.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Concatenate, Never, ParamSpec, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Executable,
    Insert,
    Row,
    Select,
    Table,
    Update,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy import exc as sa_exc

from gateway import lifecycle
from gateway.errors import IllegalTransitionError, StoreError
from gateway.store import fastsql
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
Params = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None
Result = fastsql.FastResult | fastsql.AnyResult  # what ``run`` returns: use what both offer


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


# Statements built once per process, their values bound at execution. Building a statement with its
# values inline (``insert(t).values(**v)``, ``t.c.id == 5``) and computing its cache key costs more
# CPU than SQLite takes to run it, and the busiest calls (an event-log row, a state change, a row by
# its key) run a hundred times per real-time request.
_PREBUILT: dict[tuple[str, ...], Any] = {}
_PREBUILT_GUARD = threading.Lock()
KEY = "pk_value"  # the bound name of the key in ``by_key``/``keyed_update`` (no column is so named)


def prebuilt(key: tuple[str, ...], build: Callable[[], R]) -> R:
    """The statement ``build`` makes, built on first use of ``key`` and kept for the process
    (registered for ``gateway.store.fastsql``'s driver-level execution: ``Repo.run``)."""
    found = _PREBUILT.get(key)
    if found is None:
        with _PREBUILT_GUARD:
            found = _PREBUILT.get(key)
            if found is None:
                found = _PREBUILT[key] = fastsql.register(build())
    return found


def inserting(table: Table) -> Insert:
    """``INSERT INTO table ... RETURNING *``; execute with the row's values as parameters."""
    return prebuilt(("insert", table.name), lambda: insert(table).returning(*table.c))


def by_key(table: Table, column: str, *, for_update: bool = False, skip_locked: bool = False) -> Select[Any]:
    """``SELECT * FROM table WHERE column = :pk_value`` (``FOR UPDATE`` on PostgreSQL when asked, and
    ``SKIP LOCKED``: no row when another transaction holds it)."""

    def build() -> Select[Any]:
        stmt = select(table).where(table.c[column] == bindparam(KEY))
        if skip_locked:
            return stmt.with_for_update(skip_locked=True)
        return stmt.with_for_update() if for_update else stmt

    return prebuilt(("select", table.name, column, str(for_update), str(skip_locked)), build)


def id_by(table: Table, column: str) -> Select[Any]:
    """``SELECT id FROM table WHERE column = :pk_value``: a row's id by a unique key."""
    return prebuilt(
        ("id_by", table.name, column), lambda: select(table.c.id).where(table.c[column] == bindparam(KEY))
    )


def rows_where(table: Table, *columns: str) -> Select[Any]:
    """``SELECT * FROM table WHERE col = :k_col AND ... ORDER BY id`` (oldest first): the rows that
    belong to one parent (a file's interchanges, an entity's history); parameters ``k_<column>``."""

    def build() -> Select[Any]:
        conds = [table.c[c] == bindparam(f"k_{c}") for c in columns]
        return select(table).where(*conds).order_by(table.c.id)

    return prebuilt(("rows", table.name, *columns), build)


def keyed_update(table: Table) -> Update:
    """``UPDATE table SET <the parameters' columns> WHERE id = :pk_value RETURNING *``."""
    return prebuilt(
        ("update", table.name), lambda: update(table).where(table.c.id == bindparam(KEY)).returning(*table.c)
    )


WAS = "k_state"  # the bound name of the expected current state in ``guarded_update``


def guarded_update(table: Table, column: str) -> Update:
    """``UPDATE table SET <the parameters' columns> WHERE column = :pk_value AND state = :k_state
    RETURNING *``: a state change that happens only from the expected state (compare and set)."""

    def build() -> Update:
        where = (table.c[column] == bindparam(KEY), table.c.state == bindparam(WAS))
        return update(table).where(*where).returning(*table.c)

    return prebuilt(("guarded", table.name, column), build)


def inserting_id(table: Table) -> Insert:
    """``INSERT INTO table ... RETURNING id``: for a repository that builds the row it returns from
    the values it wrote (nothing read back to convert or unseal while the writer lock is held)."""
    return prebuilt(("insert_id", table.name), lambda: insert(table).returning(table.c.id))


def guarded_update_id(table: Table, column: str) -> Update:
    """``guarded_update`` returning only the row's id: for a caller that needs to know the row moved,
    not to read it (no columns to convert or unseal while the writer lock is held)."""

    def build() -> Update:
        where = (table.c[column] == bindparam(KEY), table.c.state == bindparam(WAS))
        return update(table).where(*where).returning(table.c.id)

    return prebuilt(("guarded_id", table.name, column), build)


def keyed_update_many(table: Table, columns: tuple[str, ...]) -> Update:
    """``UPDATE table SET <columns> WHERE id = :pk_value`` without RETURNING: run once with a list of
    parameter sets (executemany), one statement for a whole batch of rows."""

    def build() -> Update:
        values: dict[str, Any] = {c: bindparam(c) for c in columns}
        return update(table).where(table.c.id == bindparam(KEY)).values(values)

    return prebuilt(("update_many", table.name, *columns), build)


def locked_many(table: Table, column: str) -> Select[Any]:
    """``SELECT * FROM table WHERE column IN (:keys) ORDER BY id`` (``FOR UPDATE`` on PostgreSQL)."""

    def build() -> Select[Any]:
        wanted = table.c[column].in_(bindparam("keys", expanding=True))
        return select(table).where(wanted).order_by(table.c.id).with_for_update()

    return prebuilt(("locked_many", table.name, column), build)


def unlocked_many(table: Table, column: str) -> Select[Any]:
    """``SELECT * FROM table WHERE column IN (:keys) ORDER BY id``: many rows by a key, for reading."""

    def build() -> Select[Any]:
        return (
            select(table).where(table.c[column].in_(bindparam("keys", expanding=True))).order_by(table.c.id)
        )

    return prebuilt(("unlocked_many", table.name, column), build)


ROWS_PER_INSERT = 64  # the most rows one ``insert_rows`` statement carries (bounded parameter lists)


def multi_insert(table: Table, columns: tuple[str, ...], count: int) -> Insert:
    """``INSERT INTO table (columns) VALUES (...), (...)`` for ``count`` rows, built once per table,
    columns and count, parameters ``<column>_<n>``: one statement, so one step of the database,
    where a list of rows (executemany) steps once per row, each step letting go of the interpreter
    lock and waiting for it back while the writer lock is held. Rows get ids in the order given."""

    def build() -> Insert:
        typed = [{c: bindparam(f"{c}_{i}", type_=table.c[c].type) for c in columns} for i in range(count)]
        return insert(table).values(typed)

    return prebuilt(("multi_insert", table.name, *columns, str(count)), build)


def insert_rows(
    conn: Connection, table: Table, columns: tuple[str, ...], rows: Sequence[Mapping[str, Any]]
) -> None:
    """Insert ``rows`` (each with every one of ``columns``), in order, no ids back: one statement per
    ``ROWS_PER_INSERT`` rows (``multi_insert``; a single row by the table's plain INSERT)."""
    for start in range(0, len(rows), ROWS_PER_INSERT):
        chunk = rows[start : start + ROWS_PER_INSERT]
        if len(chunk) == 1:
            run(conn, prebuilt(("insert_many", table.name), lambda: insert(table)), chunk[0])
            continue
        names = _multi_names(columns, len(chunk))
        flat = dict(zip(names, [row[c] for row in chunk for c in columns], strict=True))
        run(conn, multi_insert(table, columns, len(chunk)), flat)


_NAMES: dict[tuple[tuple[str, ...], int], tuple[str, ...]] = {}


def _multi_names(columns: tuple[str, ...], count: int) -> tuple[str, ...]:
    """``multi_insert``'s parameter names for ``count`` rows, row by row (``<column>_<n>``), made once:
    the same string objects every time, so the dict of values and the plan's lookups hash nothing anew."""
    names = _NAMES.get((columns, count))
    if names is None:
        names = _NAMES.setdefault((columns, count), tuple(f"{c}_{i}" for i in range(count) for c in columns))
    return names


def run(conn: Connection, stmt: Executable, params: Params = None) -> Result:
    """``conn.execute(stmt, params)``; on the driver's cursor when ``stmt`` was built by ``prebuilt``
    (``gateway.store.fastsql``: the same rows, errors and statement events, a fraction of the CPU)."""
    return fastsql.execute(conn, stmt, params)


def insert_ids(conn: Connection, table: Table, values: Sequence[Mapping[str, Any]]) -> list[int]:
    """Insert rows (executemany) and return their ids in the order given.

    PostgreSQL: one ``INSERT .. RETURNING id`` that SQLAlchemy batches and orders by parameter. On
    SQLite the same statement runs one row at a time (SQLite does not promise RETURNING's order), so
    there: one executemany, then ``max(id)``. SQLite gives a new row the largest id so far plus one
    and a writing transaction holds the database's write lock (``BEGIN IMMEDIATE``), so the rows of
    one executemany get consecutive ids ending at the new maximum.
    """
    if not values:
        return []
    if conn.dialect.name != "sqlite" or len(values) == 1:  # one row: RETURNING has no order to keep
        stmt = prebuilt(
            ("insert_ids", table.name),
            lambda: insert(table).returning(table.c.id, sort_by_parameter_order=True),
        )
        return [int(r.id) for r in run(conn, stmt, list(values))]
    run(conn, prebuilt(("insert_many", table.name), lambda: insert(table)), list(values))
    top = prebuilt(("max_id", table.name), lambda: select(func.max(table.c.id)))
    last = int(run(conn, top).scalar_one())
    return list(range(last - len(values) + 1, last + 1))


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

    def run(self, stmt: Executable, params: Params = None) -> Result:
        """Execute ``stmt`` in this transaction (``run``: the fast path for prebuilt statements)."""
        return fastsql.execute(self.conn, stmt, params)

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
        row = self.run(by_key(table, column, for_update=True), {KEY: value}).first()
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
        values = {KEY: row.id, "state": new_state, "updated_at": self.now(), **(extra or {})}
        new = self.run(keyed_update(table), values).one()
        if old != new_state:
            self.audit.record_change(entity, row.id, old, new_state, detail)
        return new

    def move_expected(
        self,
        entity: lifecycle.Entity,
        table: Table,
        column: str,
        key: object,
        event: str,
        *,
        what: str,
        expect: str,
        extra: Mapping[str, Any] | None = None,
        detail: Mapping[str, Any] | None = None,
        guess: bool = False,
    ) -> Row[Any] | None:
        """``move`` of the row where ``column == key`` when it is in state ``expect``, in one
        statement instead of a locked read and an update: the UPDATE's WHERE checks the state (under
        the row lock PostgreSQL takes for it, as ``FOR UPDATE`` did). None when the lifecycle has no
        such move from ``expect`` (the caller falls back to ``move``, which names the error);
        NotFoundError/StaleStateError as ``locked``/``move`` raise them. With ``guess``, ``expect`` is
        only the state the caller last read: None also when the row is in another one (the caller
        then moves it from the state it is in, as without a guess)."""
        try:
            new_state = lifecycle.target(entity, expect, event)
        except IllegalTransitionError:
            return None
        values = {KEY: key, WAS: expect, "state": new_state, "updated_at": self.now(), **(extra or {})}
        new = self.run(guarded_update(table, column), values).first()
        if new is None and guess:
            return None
        if new is None:
            self._not_moved(entity, table, column, key, what=what, expect=expect)
        if expect != new_state:
            self.audit.record_change(entity, new.id, expect, new_state, detail)
        return new

    def _not_moved(
        self, entity: str, table: Table, column: str, key: object, *, what: str, expect: str
    ) -> Never:
        """Why a guarded UPDATE moved no row: none with this key, or it is in another state."""
        current = self.run(by_key(table, column), {KEY: key}).first()
        if current is None:
            raise NotFoundError(f"{what} not found")
        raise StaleStateError(f"{entity} {current.id} is {current.state!r}, expected {expect!r}")

    def move_path(
        self,
        entity: lifecycle.Entity,
        table: Table,
        row_id: int,
        steps: Sequence[tuple[str, Mapping[str, Any] | None]],
        *,
        what: str,
        expect: str,
    ) -> Row[Any] | None:
        """Consecutive events ``(event, detail)`` of one row, from ``expect``, as one guarded UPDATE
        to the last state and one event-log row per step (what the moves one by one would log).
        None when a step is not in the lifecycle (the caller moves step by step, which names it)."""
        states = [expect]
        try:
            for event, _ in steps:
                states.append(lifecycle.target(entity, states[-1], event))
        except IllegalTransitionError:
            return None
        values = {KEY: row_id, WAS: expect, "state": states[-1], "updated_at": self.now()}
        new = self.run(guarded_update(table, "id"), values).first()
        if new is None:
            self._not_moved(entity, table, "id", row_id, what=what, expect=expect)
        for (_, detail), old, moved in zip(steps, states[:-1], states[1:], strict=True):
            if old != moved:
                self.audit.record_change(entity, row_id, old, moved, detail)
        return new

    def move_many(
        self,
        entity: lifecycle.Entity,
        table: Table,
        moves: Sequence[tuple[Row[Any], Mapping[str, Any]]],
        event: str,
        *,
        expect: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """``move`` for a batch of rows in one UPDATE and one event-log INSERT (executemany): the
        batching, upload and acknowledgment stages move a hundred rows at a time. Each move is
        ``(row, extra columns)``; every row is checked before any is written, so an illegal or stale
        move leaves nothing half done. The extra columns must be the same for every row."""
        now = self.now()
        values: list[dict[str, Any]] = []
        changes: list[tuple[int, str, str]] = []
        for row, extra in moves:
            if expect is not None and row.state != expect:
                raise StaleStateError(f"{entity} {row.id} is {row.state!r}, expected {expect!r}")
            new_state = lifecycle.target(entity, row.state, event)
            values.append({KEY: row.id, "state": new_state, "updated_at": now, **extra})
            if row.state != new_state:
                changes.append((row.id, row.state, new_state))
        if not values:
            return
        columns = tuple(k for k in values[0] if k != KEY)
        self.run(keyed_update_many(table, columns), values)
        self.audit.record_changes(entity, changes, detail)
