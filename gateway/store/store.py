"""The durable store: SQLite (one file, WAL) by default, PostgreSQL by URL, same code and schema.

Use::

    store = Store.open("sqlite:////var/lib/x12gw/gateway.db")      # runs the migrations to head
    isa13 = store.allocate_control_numbers("ZZ:US", "ZZ:PAYER", "ISA13", 1)[0]
    with store.begin() as tx:                                     # one database transaction
        f = tx.record_file(direction="in", partner="acme", name="x.271", sha256=h, size=n,
                           payload_path=p)
        tx.set_file_state(f.id, "parsed", expect="received")

Why it is shaped this way:

* SQLAlchemy Core, no ORM: the rows are small frozen dataclasses (``gateway.store.rows``) and every
  statement is visible in this module.
* SQLite transactions start with ``BEGIN IMMEDIATE`` so a writer takes the write lock up front and waits
  (busy timeout) instead of failing half-way when it first writes; ``Store.read()`` uses a plain deferred
  BEGIN so operators' queries never block the run loop. On PostgreSQL, ``read()`` is a read-only
  transaction and writers lock the rows they change (``SELECT ... FOR UPDATE``).
* Every change of a file's, request's or transaction set's state writes a ``state_changes`` row in the
  same transaction, so the audit log cannot disagree with the state.
* Errors from SQLAlchemy and the drivers become ``StoreError`` subclasses at each public method, with
  messages that never quote values (see ``gateway.store.errors``); the engine also hides parameters.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

from alembic import command
from alembic.config import Config
from alembic.util.exc import CommandError
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Row,
    Table,
    case,
    create_engine,
    event,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.pool import ConnectionPoolEntry

from gateway.errors import StoreError
from gateway.store import fileperms
from gateway.store import schema as s
from gateway.store.errors import NotFoundError, StaleStateError, store_error
from gateway.store.rows import (
    AuditRow,
    AuthorizationEvent,
    AuthorizationRow,
    EligibilityRow,
    FileRow,
    GroupRow,
    InterchangeRow,
    QuarantineRow,
    RequestRow,
    StateChange,
    TransactionSetRow,
    from_mapping,
)

Clock = Callable[[], datetime]
Direction = Literal["in", "out"]
RequestKind = Literal["270", "278"]
ControlKind = Literal["ISA13", "GS06", "ST02"]
AckLevel = Literal["interchange", "group", "transaction_set"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
CONTROL_KINDS: frozenset[str] = frozenset({"ISA13", "GS06", "ST02"})
CONTROL_MAX = 999_999_999  # ISA13 is N0 9/9, GS06 N0 1/9, ST02 AN 4/9: nine digits for all three
TRACKING_MAX = 10**15 - 1  # tracking sequence: never wraps (a reused TRN02 would mis-match a response)
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
_MIGRATION_LOCK = 0x5831_3247_5753_544F  # pg_advisory_xact_lock key: "X12GWSTO"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_TRACKING = re.compile(r"^[!-~]{1,50}$")  # printable ASCII without spaces, at most TRN02's 50
_PREFIX = re.compile(r"^[A-Z0-9]{1,10}$")
_READ_ONLY = "x12gw_read_only"

P = ParamSpec("P")
R = TypeVar("R")
TxT = TypeVar("TxT", bound="Tx")


def _db(fn: Callable[Concatenate[TxT, P], R]) -> Callable[Concatenate[TxT, P], R]:
    """Map SQLAlchemy errors raised by a ``Tx`` method to PHI-free StoreErrors named after the method."""
    operation = fn.__name__.replace("_", " ")

    @functools.wraps(fn)
    def wrapper(self: TxT, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(self, *args, **kwargs)
        except sa_exc.SQLAlchemyError as exc:
            raise store_error(exc, operation) from None

    return wrapper


def utc_now() -> datetime:
    """The default clock (tests pass their own, so nothing asserts on wall-clock time)."""
    return datetime.now(UTC)


def sqlite_url(path: str | Path) -> str:
    """The SQLAlchemy URL of the SQLite file at ``path`` (the default store)."""
    return f"sqlite:///{Path(path)}"


def hash_member_id(member_id: str, key: bytes) -> str:
    """The value to index a member by: HMAC-SHA256 of the trimmed, upper-cased id, as 64 hex digits.

    Keyed so that the short, guessable id space cannot be reversed by hashing every candidate. The same
    key must be used by every node; the raw id is never stored in an indexed column.
    """
    if not key:
        raise StoreError("the member id hash needs a non-empty key")
    return hmac.new(key, member_id.strip().upper().encode("utf-8"), hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------------------------- engine


def _sqlite_listeners(engine: Engine, busy_timeout_ms: int, path: Path | None = None) -> None:
    """WAL, foreign keys and a busy timeout on every connection; SQLAlchemy emits BEGIN itself.

    pysqlite's own transaction handling starts transactions late (at the first write) and so cannot
    take the write lock up front; turning it off and emitting ``BEGIN IMMEDIATE`` ourselves can.
    """

    def on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")  # a committed control number survives power loss
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()
        if path is not None:
            fileperms.tighten(path)  # the -wal/-shm files WAL mode just created (or an old 0644 set)

    def on_begin(conn: Connection) -> None:
        deferred = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN DEFERRED" if deferred else "BEGIN IMMEDIATE")

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", on_begin)


def make_engine(url: str, *, busy_timeout_ms: int = 5000) -> Engine:
    """An engine for ``url`` that never prints bound parameters (they may be PHI)."""
    try:
        if url.startswith("sqlite"):
            path = fileperms.sqlite_path(url)
            if path is not None:
                fileperms.prepare(path)
            engine = create_engine(url, hide_parameters=True)
            _sqlite_listeners(engine, busy_timeout_ms, path)
            return engine
        return create_engine(url, hide_parameters=True, pool_pre_ping=True)
    except sa_exc.SQLAlchemyError as exc:
        raise store_error(exc, "open store") from None


@contextmanager
def _sqlite_foreign_keys_off(conn: Connection) -> Iterator[None]:
    """SQLite's way to alter a table (batch mode: copy, drop, rename) needs foreign keys off, set outside
    any transaction; the migration then runs ``PRAGMA foreign_key_check`` before it commits."""
    if conn.dialect.name != "sqlite":
        yield
        return
    raw = conn.connection.driver_connection
    assert raw is not None  # noqa: S101 - a live pysqlite connection
    raw.execute("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        raw.execute("PRAGMA foreign_keys = ON")


def upgrade(engine: Engine) -> None:
    """Run the Alembic migrations to head (idempotent: at head it does nothing).

    On PostgreSQL a transaction-scoped advisory lock makes concurrent starters wait for each other
    instead of racing to create the same tables. The target schema is whatever ``search_path`` says
    (e.g. ``?options=-csearch_path%3Dx12gw`` in the URL).
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    try:
        with engine.connect() as conn, _sqlite_foreign_keys_off(conn), conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            if conn.dialect.name == "sqlite" and conn.exec_driver_sql("PRAGMA foreign_key_check").first():
                raise StoreError("migrate store: the migrated database fails its foreign key check")
    except sa_exc.SQLAlchemyError as exc:
        raise store_error(exc, "migrate store") from None
    except CommandError:
        raise StoreError(
            "migrate store: the database has a schema revision this gateway does not know"
        ) from None


def _insert_ignore(conn: Connection, table: Table, values: Mapping[str, Any], keys: Sequence[str]) -> None:
    """INSERT unless a row with the same key exists (both dialects spell it ON CONFLICT DO NOTHING)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite_dialect
    conn.execute(dialect.insert(table).values(**values).on_conflict_do_nothing(index_elements=list(keys)))


def _allocate(
    conn: Connection, now: datetime, key: tuple[str, str, str], count: int, maximum: int, *, wrap: bool
) -> range:
    """Advance one sequence row by ``count`` in a single UPDATE and return the numbers it skipped over.

    The UPDATE locks the row (PostgreSQL) or the database (SQLite, already under BEGIN IMMEDIATE), so
    two callers can never get overlapping ranges. If the block would pass ``maximum`` it restarts at 1
    (``wrap``) leaving the tail unused, or fails (no ``wrap``).
    """
    t = s.control_sequences
    where = (t.c.sender == key[0]) & (t.c.receiver == key[1]) & (t.c.kind == key[2])
    over = t.c.next_value + (count - 1) > maximum
    stmt = (
        update(t)
        .where(where)
        .values(
            next_value=case((over, 1 + count), else_=t.c.next_value + count),
            wraps=case((over, t.c.wraps + 1), else_=t.c.wraps),
            updated_at=now,
        )
        .returning(t.c.next_value, t.c.wraps)
    )
    row = conn.execute(stmt).first()
    if row is None:
        values = {"sender": key[0], "receiver": key[1], "kind": key[2], "next_value": 1, "wraps": 0}
        _insert_ignore(conn, t, {**values, "updated_at": now}, ("sender", "receiver", "kind"))
        row = conn.execute(stmt).one()
    if row.wraps and not wrap:
        raise StoreError(f"{key[2]} sequence exhausted")
    return range(row.next_value - count, row.next_value)


# ---------------------------------------------------------------------------------------------- store


class Store:
    """The open store: an engine, a clock and the node's tracking-number prefix. Thread-safe."""

    def __init__(self, engine: Engine, *, clock: Clock = utc_now, tracking_prefix: str = "GW") -> None:
        if not _PREFIX.match(tracking_prefix):
            raise StoreError("tracking prefix must be 1-10 upper-case letters or digits")
        self.engine = engine
        self.clock = clock
        self.tracking_prefix = tracking_prefix
        self.instance_id = ""

    @classmethod
    def open(
        cls, url: str, *, clock: Clock = utc_now, busy_timeout_ms: int = 5000, tracking_prefix: str = "GW"
    ) -> Store:
        """Connect, migrate to head, and return the store. Safe to call from several processes at once."""
        engine = make_engine(url, busy_timeout_ms=busy_timeout_ms)
        try:
            upgrade(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls.attach(engine, clock=clock, tracking_prefix=tracking_prefix)

    @classmethod
    def attach(cls, engine: Engine, *, clock: Clock = utc_now, tracking_prefix: str = "GW") -> Store:
        """The store on an engine whose schema the caller has checked (``gateway.store.lifecycle``)."""
        try:
            store = cls(engine, clock=clock, tracking_prefix=tracking_prefix)
            store.instance_id = store._load_instance_id()
        except BaseException:
            engine.dispose()
            raise
        return store

    def close(self) -> None:
        """Close pooled connections (the store must not be used afterwards)."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"

    @contextmanager
    def begin(self) -> Iterator[Tx]:
        """A read-write transaction: commits when the block ends, rolls back if it raises.

        After a ``StoreError`` inside the block, leave the block: PostgreSQL refuses further statements in
        a failed transaction. Do not call ``allocate_control_numbers``/``new_tracking_number`` inside it on
        SQLite: they take their own transaction and would wait for this one.
        """
        try:
            with self.engine.begin() as conn:
                yield Tx(conn, self.clock)
        except sa_exc.SQLAlchemyError as exc:
            raise store_error(exc, "commit") from None

    @contextmanager
    def read(self) -> Iterator[Tx]:
        """A read-only transaction for queries (operators' CLI): never blocks or is blocked by writers."""
        try:
            with self.engine.connect() as conn:
                conn.execution_options(**{_READ_ONLY: True})
                if conn.dialect.name == "postgresql":
                    conn.execution_options(postgresql_readonly=True)
                with conn.begin():
                    yield Tx(conn, self.clock)
        except sa_exc.SQLAlchemyError as exc:
            raise store_error(exc, "read") from None

    def allocate_control_numbers(
        self, sender: str, receiver: str, kind: ControlKind, count: int = 1
    ) -> range:
        """``count`` consecutive control numbers for the sender/receiver pair, committed at once.

        Numbers are never handed out twice and may be skipped (a block taken by a transaction that later
        failed is simply lost: gaps are harmless in X12, reuse is not). Numbers run 1..999,999,999; a block
        that does not fit below the top restarts at 1 (the skipped tail stays unused) and ``wraps`` is
        counted in the sequence row. Outgoing 999 and TA1 interchanges use the same ISA13/GS06/ST02
        sequences as any other interchange to that partner.
        """
        if kind not in CONTROL_KINDS:
            raise StoreError("control number kind must be ISA13, GS06 or ST02")
        if not 1 <= count <= CONTROL_MAX:
            raise StoreError("control number count must be between 1 and 999999999")
        _check_party(sender)
        _check_party(receiver)
        try:
            with self.engine.begin() as conn:
                return _allocate(conn, self.clock(), (sender, receiver, kind), count, CONTROL_MAX, wrap=True)
        except sa_exc.SQLAlchemyError as exc:
            raise store_error(exc, "allocate control numbers") from None

    def new_tracking_number(self) -> str:
        """A new TRN02 tracking number: ``PREFIX-INSTANCE-NNNNNNNNNN`` (letters, digits, dashes, <= 50).

        NNNN comes from a committed database sequence (unique across restarts and across nodes sharing the
        database, never reused); INSTANCE is a random tag made when the database was created, so two
        separate databases (say, a test and a production gateway) do not issue the same numbers either.
        """
        try:
            with self.engine.begin() as conn:
                key = ("tracking", self.tracking_prefix, "TRN")
                number = _allocate(conn, self.clock(), key, 1, TRACKING_MAX, wrap=False)[0]
        except sa_exc.SQLAlchemyError as exc:
            raise store_error(exc, "new tracking number") from None
        return f"{self.tracking_prefix}-{self.instance_id}-{number:010d}"

    def _load_instance_id(self) -> str:
        """This database's random tag, created on first open (the first of racing nodes wins)."""
        candidate = base64.b32encode(secrets.token_bytes(5)).decode("ascii")
        try:
            with self.engine.begin() as conn:
                _insert_ignore(conn, s.store_meta, {"key": "instance_id", "value": candidate}, ("key",))
                value = conn.execute(select(s.store_meta.c.value).where(s.store_meta.c.key == "instance_id"))
                return str(value.scalar_one())
        except sa_exc.SQLAlchemyError as exc:
            raise store_error(exc, "open store") from None


def _check_party(party: str) -> None:
    if not 1 <= len(party) <= s.PARTY:
        raise StoreError("sender/receiver must be 1-64 characters")


def _check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise StoreError(f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def _window(column: Any, since: datetime | None, until: datetime | None) -> list[ColumnElement[bool]]:
    """Conditions for ``since <= column < until`` (either end open when None)."""
    out: list[ColumnElement[bool]] = []
    if since is not None:
        out.append(column >= since)
    if until is not None:
        out.append(column < until)
    return out


# ------------------------------------------------------------------------------------------ transaction


class Tx:
    """The operations of one transaction. Obtain it from ``Store.begin()`` or ``Store.read()``."""

    def __init__(self, conn: Connection, clock: Clock) -> None:
        self.conn = conn
        self._clock = clock

    def now(self) -> datetime:
        """The store's clock (UTC, aware)."""
        return self._clock()

    # -- generic helpers -------------------------------------------------------------------------

    def _locked(self, table: Table, column: str, value: object, what: str) -> Row[Any]:
        """The row where ``column == value``, locked for update (PostgreSQL); NotFoundError if none."""
        stmt = select(table).where(table.c[column] == value).with_for_update()
        row = self.conn.execute(stmt).first()
        if row is None:
            raise NotFoundError(f"{what} not found")
        return row

    def _transition(
        self,
        entity: str,
        table: Table,
        row: Row[Any],
        new_state: str,
        *,
        expect: str | None,
        extra: Mapping[str, Any],
        detail: Mapping[str, Any] | None,
    ) -> Row[Any]:
        """Move ``row`` to ``new_state`` (if it is in ``expect``) and log the change in state_changes."""
        old = row.state
        if expect is not None and old != expect:
            raise StaleStateError(f"{entity} {row.id} is {old!r}, expected {expect!r}")
        stmt = (
            update(table)
            .where(table.c.id == row.id)
            .values(state=new_state, updated_at=self.now(), **extra)
            .returning(*table.c)
        )
        new = self.conn.execute(stmt).one()
        if old != new_state:
            self.record_state_change(entity, row.id, old, new_state, detail)
        return new

    # -- audit / event log -----------------------------------------------------------------------

    @_db
    def record_state_change(
        self,
        entity_type: str,
        entity_id: int,
        old_state: str | None,
        new_state: str,
        detail: Mapping[str, Any] | None = None,
    ) -> int:
        """Append to the event log; also the way to record a side effect before and after it runs.

        ``detail`` is JSON for operators (host, remote path, byte count): never PHI.
        """
        values = {
            "entity_type": entity_type,
            "entity_id": entity_id,
            "old_state": old_state,
            "new_state": new_state,
            "at": self.now(),
            "detail": dict(detail) if detail is not None else None,
        }
        return int(
            self.conn.execute(
                insert(s.state_changes).values(**values).returning(s.state_changes.c.id)
            ).scalar_one()
        )

    @_db
    def state_history(self, entity_type: str, entity_id: int) -> list[StateChange]:
        """Every logged change of one entity, oldest first."""
        t = s.state_changes
        stmt = select(t).where(t.c.entity_type == entity_type, t.c.entity_id == entity_id).order_by(t.c.id)
        return [from_mapping(StateChange, r) for r in self.conn.execute(stmt)]

    @_db
    def list_state_changes(
        self,
        *,
        entity_type: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[StateChange]:
        """The event log in a time range, newest first."""
        t = s.state_changes
        conds = _window(t.c.at, since, until)
        if entity_type is not None:
            conds.append(t.c.entity_type == entity_type)
        stmt = select(t).where(*conds).order_by(t.c.id.desc()).limit(_check_limit(limit))
        return [from_mapping(StateChange, r) for r in self.conn.execute(stmt)]

    @_db
    def record_phi_reveal(
        self, *, os_user: str, action: str, subject: str, detail: Mapping[str, Any] | None = None
    ) -> AuditRow:
        """Record that ``os_user`` was shown PHI (``action`` on ``subject``, e.g. 'show' 'request:GW-...')."""
        values = {
            "os_user": os_user,
            "at": self.now(),
            "action": action,
            "subject": subject,
            "detail": dict(detail) if detail is not None else None,
        }
        row = self.conn.execute(insert(s.phi_audit).values(**values).returning(*s.phi_audit.c)).one()
        return from_mapping(AuditRow, row)

    @_db
    def list_phi_reveals(
        self,
        *,
        os_user: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[AuditRow]:
        """Reveals of PHI, newest first."""
        t = s.phi_audit
        conds = _window(t.c.at, since, until)
        if os_user is not None:
            conds.append(t.c.os_user == os_user)
        stmt = select(t).where(*conds).order_by(t.c.id.desc()).limit(_check_limit(limit))
        return [from_mapping(AuditRow, r) for r in self.conn.execute(stmt)]

    # -- files -----------------------------------------------------------------------------------

    @_db
    def record_file(
        self,
        *,
        direction: Direction,
        partner: str,
        name: str,
        sha256: str,
        size: int,
        payload_path: str | None,
        state: str = "received",
        reason: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> FileRow:
        """Insert a file row (its creation is the first state change in the log)."""
        if not _HEX64.match(sha256):
            raise StoreError("sha256 must be 64 lower-case hex digits")
        now = self.now()
        values = {
            "direction": direction,
            "partner": partner,
            "name": name,
            "sha256": sha256,
            "size": size,
            "state": state,
            "payload_path": payload_path,
            "reason": reason,
            "created_at": now,
            "updated_at": now,
        }
        row = self.conn.execute(insert(s.files).values(**values).returning(*s.files.c)).one()
        self.record_state_change("file", row.id, None, state, detail)
        return from_mapping(FileRow, row)

    @_db
    def get_file(self, file_id: int) -> FileRow:
        """The file row; NotFoundError if there is none."""
        row = self.conn.execute(select(s.files).where(s.files.c.id == file_id)).first()
        if row is None:
            raise NotFoundError(f"file {file_id} not found")
        return from_mapping(FileRow, row)

    @_db
    def set_file_state(
        self,
        file_id: int,
        new_state: str,
        *,
        expect: str | None = None,
        reason: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> FileRow:
        """Move a file to ``new_state``; with ``expect``, only from that state (else StaleStateError).

        ``reason`` (PHI-free text) replaces the stored one when given.
        """
        row = self._locked(s.files, "id", file_id, f"file {file_id}")
        extra = {"reason": reason} if reason is not None else {}
        new = self._transition("file", s.files, row, new_state, expect=expect, extra=extra, detail=detail)
        return from_mapping(FileRow, new)

    @_db
    def find_file_by_sha256(
        self,
        sha256: str,
        *,
        within: timedelta,
        direction: Direction | None = None,
        exclude_id: int | None = None,
    ) -> FileRow | None:
        """The newest file with this content recorded in the last ``within`` (duplicate detection)."""
        t = s.files
        conds = [t.c.sha256 == sha256, t.c.created_at >= self.now() - within]
        if direction is not None:
            conds.append(t.c.direction == direction)
        if exclude_id is not None:
            conds.append(t.c.id != exclude_id)
        stmt = select(t).where(*conds).order_by(t.c.created_at.desc(), t.c.id.desc()).limit(1)
        row = self.conn.execute(stmt).first()
        return None if row is None else from_mapping(FileRow, row)

    @_db
    def list_files(
        self,
        *,
        state: str | None = None,
        direction: Direction | None = None,
        partner: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[FileRow]:
        """Files by state/direction/partner and creation time, newest first."""
        t = s.files
        conds = _window(t.c.created_at, since, until)
        for column, value in ((t.c.state, state), (t.c.direction, direction), (t.c.partner, partner)):
            if value is not None:
                conds.append(column == value)
        stmt = (
            select(t).where(*conds).order_by(t.c.created_at.desc(), t.c.id.desc()).limit(_check_limit(limit))
        )
        return [from_mapping(FileRow, r) for r in self.conn.execute(stmt)]

    @_db
    def quarantine_file(
        self, file_id: int, reason: Mapping[str, Any], *, detail: Mapping[str, Any] | None = None
    ) -> QuarantineRow:
        """Set a file aside: a quarantine row with the structured reason, and state 'quarantined'."""
        self.set_file_state(file_id, "quarantined", detail=detail)
        values = {"file_id": file_id, "reason": dict(reason), "created_at": self.now()}
        row = self.conn.execute(insert(s.quarantine).values(**values).returning(*s.quarantine.c)).one()
        return from_mapping(QuarantineRow, row)

    @_db
    def list_quarantine(
        self,
        *,
        file_id: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[QuarantineRow]:
        """Quarantine entries, newest first."""
        t = s.quarantine
        conds = _window(t.c.created_at, since, until)
        if file_id is not None:
            conds.append(t.c.file_id == file_id)
        stmt = select(t).where(*conds).order_by(t.c.id.desc()).limit(_check_limit(limit))
        return [from_mapping(QuarantineRow, r) for r in self.conn.execute(stmt)]

    # -- envelopes -------------------------------------------------------------------------------

    @_db
    def record_interchange(
        self,
        *,
        file_id: int,
        control_number: int,
        sender: str,
        receiver: str,
        interchange_at: datetime | None = None,
        ack_status: str | None = None,
    ) -> InterchangeRow:
        """Record one ISA envelope of a file (``sender``/``receiver`` as 'qualifier:id')."""
        values = {
            "file_id": file_id,
            "control_number": control_number,
            "sender": sender,
            "receiver": receiver,
            "interchange_at": interchange_at,
            "ack_status": ack_status,
            "created_at": self.now(),
        }
        row = self.conn.execute(insert(s.interchanges).values(**values).returning(*s.interchanges.c)).one()
        return from_mapping(InterchangeRow, row)

    @_db
    def record_group(
        self,
        *,
        interchange_id: int,
        control_number: int,
        functional_id: str,
        version: str,
        ack_status: str | None = None,
    ) -> GroupRow:
        """Record one GS group (GS06 control number, GS01 functional id, GS08 version)."""
        values = {
            "interchange_id": interchange_id,
            "control_number": control_number,
            "functional_id": functional_id,
            "version": version,
            "ack_status": ack_status,
            "created_at": self.now(),
        }
        t = s.functional_groups
        row = self.conn.execute(insert(t).values(**values).returning(*t.c)).one()
        return from_mapping(GroupRow, row)

    @_db
    def record_transaction_set(
        self,
        *,
        interchange_id: int,
        group_id: int | None,
        control_number: str,
        set_id: str,
        trace_numbers: Iterable[str] = (),
        bht03: str | None = None,
        state: str = "received",
        request_id: int | None = None,
        ack_status: str | None = None,
    ) -> TransactionSetRow:
        """Record one transaction set (or TA1 with ``group_id=None``) with its TRN02 trace numbers."""
        now = self.now()
        values = {
            "interchange_id": interchange_id,
            "group_id": group_id,
            "control_number": control_number,
            "set_id": set_id,
            "bht03": bht03,
            "ack_status": ack_status,
            "state": state,
            "request_id": request_id,
            "created_at": now,
            "updated_at": now,
        }
        t = s.transaction_sets
        row = self.conn.execute(insert(t).values(**values).returning(*t.c)).one()
        traces = tuple(dict.fromkeys(trace_numbers))
        if traces:
            rows = [{"transaction_set_id": row.id, "trace_number": trn} for trn in traces]
            self.conn.execute(insert(s.trace_numbers), rows)
        self.record_state_change("transaction_set", row.id, None, state)
        return from_mapping(TransactionSetRow, row, trace_numbers=traces)

    @_db
    def set_transaction_set_state(
        self,
        set_row_id: int,
        new_state: str,
        *,
        expect: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> TransactionSetRow:
        """Move a transaction set to ``new_state`` (logged like files and requests)."""
        t = s.transaction_sets
        row = self._locked(t, "id", set_row_id, f"transaction set {set_row_id}")
        new = self._transition("transaction_set", t, row, new_state, expect=expect, extra={}, detail=detail)
        return self._with_traces([new])[0]

    @_db
    def link_transaction_set(self, set_row_id: int, request_id: int) -> None:
        """Attach a (response) transaction set to the request it answers."""
        t = s.transaction_sets
        result = self.conn.execute(
            update(t).where(t.c.id == set_row_id).values(request_id=request_id, updated_at=self.now())
        )
        if result.rowcount == 0:
            raise NotFoundError(f"transaction set {set_row_id} not found")

    @_db
    def set_ack_status(
        self, level: AckLevel, row_id: int, status: str, *, detail: Mapping[str, Any] | None = None
    ) -> None:
        """Record the TA1/999 verdict (A, E, R, P, ...) on an interchange, group or transaction set.

        The change is logged in state_changes under entity type ``<level>.ack``.
        """
        table = {
            "interchange": s.interchanges,
            "group": s.functional_groups,
            "transaction_set": s.transaction_sets,
        }[level]
        row = self._locked(table, "id", row_id, f"{level} {row_id}")
        self.conn.execute(update(table).where(table.c.id == row_id).values(ack_status=status))
        if row.ack_status != status:
            self.record_state_change(f"{level}.ack", row_id, row.ack_status, status, detail)

    @_db
    def find_interchanges(
        self, control_number: int, *, sender: str | None = None, receiver: str | None = None
    ) -> list[InterchangeRow]:
        """Interchanges with this ISA13 (optionally of one sender/receiver), newest first."""
        t = s.interchanges
        conds = [t.c.control_number == control_number]
        if sender is not None:
            conds.append(t.c.sender == sender)
        if receiver is not None:
            conds.append(t.c.receiver == receiver)
        stmt = select(t).where(*conds).order_by(t.c.id.desc())
        return [from_mapping(InterchangeRow, r) for r in self.conn.execute(stmt)]

    @_db
    def find_groups(self, control_number: int, *, interchange_id: int | None = None) -> list[GroupRow]:
        """Functional groups with this GS06, newest first."""
        t = s.functional_groups
        conds = [t.c.control_number == control_number]
        if interchange_id is not None:
            conds.append(t.c.interchange_id == interchange_id)
        stmt = select(t).where(*conds).order_by(t.c.id.desc())
        return [from_mapping(GroupRow, r) for r in self.conn.execute(stmt)]

    @_db
    def find_transaction_sets(
        self,
        *,
        control_number: str | None = None,
        trace_number: str | None = None,
        bht03: str | None = None,
        set_id: str | None = None,
        state: str | None = None,
        request_id: int | None = None,
        interchange_id: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[TransactionSetRow]:
        """Transaction sets by ST02, TRN trace number, BHT03, kind, state, request or time; newest first."""
        t = s.transaction_sets
        conds = _window(t.c.created_at, since, until)
        simple = (
            (t.c.control_number, control_number),
            (t.c.bht03, bht03),
            (t.c.set_id, set_id),
            (t.c.state, state),
            (t.c.request_id, request_id),
            (t.c.interchange_id, interchange_id),
        )
        conds.extend(column == value for column, value in simple if value is not None)
        if trace_number is not None:
            tn = s.trace_numbers
            conds.append(t.c.id.in_(select(tn.c.transaction_set_id).where(tn.c.trace_number == trace_number)))
        stmt = select(t).where(*conds).order_by(t.c.id.desc()).limit(_check_limit(limit))
        return self._with_traces(self.conn.execute(stmt).all())

    def _with_traces(self, rows: Sequence[Row[Any]]) -> list[TransactionSetRow]:
        """Attach each set's trace numbers (one extra query for the whole list)."""
        tn = s.trace_numbers
        ids = [r.id for r in rows]
        traces: dict[int, list[str]] = {i: [] for i in ids}
        if ids:
            stmt = select(tn.c.transaction_set_id, tn.c.trace_number).where(tn.c.transaction_set_id.in_(ids))
            for set_id, trn in self.conn.execute(stmt.order_by(tn.c.id)):
                traces[set_id].append(trn)
        return [from_mapping(TransactionSetRow, r, trace_numbers=tuple(traces[r.id])) for r in rows]

    # -- requests --------------------------------------------------------------------------------

    @_db
    def insert_request(
        self,
        *,
        tracking_number: str,
        kind: RequestKind,
        payer_id: str,
        partner: str,
        member_id_hash: str,
        payload: Mapping[str, Any],
        due_at: datetime | None = None,
        source_file_id: int | None = None,
        state: str = "new",
        detail: Mapping[str, Any] | None = None,
    ) -> RequestRow:
        """Insert a request; DuplicateKeyError if the tracking number exists.

        ``member_id_hash`` must be the 64-hex digest from ``hash_member_id`` (a raw id is refused, so it
        cannot end up in the index by mistake). ``payload`` is the request JSON; it is PHI and only read
        back when the request is built or revealed.
        """
        if not _TRACKING.match(tracking_number):
            raise StoreError("tracking number must be 1-50 printable characters without spaces")
        if not _HEX64.match(member_id_hash):
            raise StoreError(
                "member_id_hash must be a 64-hex HMAC digest (see hash_member_id), not a member id"
            )
        now = self.now()
        values = {
            "tracking_number": tracking_number,
            "kind": kind,
            "payer_id": payer_id,
            "partner": partner,
            "source_file_id": source_file_id,
            "state": state,
            "due_at": due_at,
            "member_id_hash": member_id_hash,
            "payload": dict(payload),
            "created_at": now,
            "updated_at": now,
        }
        row = self.conn.execute(insert(s.requests).values(**values).returning(*s.requests.c)).one()
        self.record_state_change("request", row.id, None, state, detail)
        return from_mapping(RequestRow, row)

    @_db
    def get_request_by_tracking(self, tracking_number: str) -> RequestRow | None:
        """The request with this tracking number, or None."""
        row = self.conn.execute(
            select(s.requests).where(s.requests.c.tracking_number == tracking_number)
        ).first()
        return None if row is None else from_mapping(RequestRow, row)

    @_db
    def get_request(self, request_id: int) -> RequestRow:
        """The request row by id; NotFoundError if there is none."""
        row = self.conn.execute(select(s.requests).where(s.requests.c.id == request_id)).first()
        if row is None:
            raise NotFoundError(f"request {request_id} not found")
        return from_mapping(RequestRow, row)

    @_db
    def set_request_state(
        self,
        tracking_number: str,
        new_state: str,
        *,
        expect: str | None = None,
        reason: str | None = None,
        due_at: datetime | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> RequestRow:
        """Move a request to ``new_state`` (only from ``expect`` if given); optionally set a new due time."""
        row = self._locked(s.requests, "tracking_number", tracking_number, "request")
        extra: dict[str, Any] = {}
        if reason is not None:
            extra["reason"] = reason
        if due_at is not None:
            extra["due_at"] = due_at
        new = self._transition(
            "request", s.requests, row, new_state, expect=expect, extra=extra, detail=detail
        )
        return from_mapping(RequestRow, new)

    @_db
    def list_requests(
        self,
        *,
        state: str | None = None,
        kind: RequestKind | None = None,
        partner: str | None = None,
        member_id_hash: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        due_before: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
        oldest_first: bool = False,
    ) -> list[RequestRow]:
        """Requests by state, kind, partner, member hash, creation time or due time; newest first
        (``oldest_first`` for work queues, so the oldest request is sent first)."""
        t = s.requests
        conds = _window(t.c.created_at, since, until)
        simple = (
            (t.c.state, state),
            (t.c.kind, kind),
            (t.c.partner, partner),
            (t.c.member_id_hash, member_id_hash),
        )
        conds.extend(column == value for column, value in simple if value is not None)
        if due_before is not None:
            conds.append(t.c.due_at < due_before)
        order = (t.c.id,) if oldest_first else (t.c.created_at.desc(), t.c.id.desc())
        stmt = select(t).where(*conds).order_by(*order).limit(_check_limit(limit))
        return [from_mapping(RequestRow, r) for r in self.conn.execute(stmt)]

    @_db
    def find_file(
        self, *, direction: Direction, partner: str, name: str, size: int | None = None
    ) -> FileRow | None:
        """The newest file of a partner with this name (and size): remembers what was already fetched."""
        t = s.files
        conds = [t.c.direction == direction, t.c.partner == partner, t.c.name == name]
        if size is not None:
            conds.append(t.c.size == size)
        row = self.conn.execute(select(t).where(*conds).order_by(t.c.id.desc()).limit(1)).first()
        return None if row is None else from_mapping(FileRow, row)

    @_db
    def interchanges_of_file(self, file_id: int) -> list[InterchangeRow]:
        """The interchanges recorded for one file, in file order."""
        t = s.interchanges
        stmt = select(t).where(t.c.file_id == file_id).order_by(t.c.id)
        return [from_mapping(InterchangeRow, r) for r in self.conn.execute(stmt)]

    @_db
    def get_interchange(self, interchange_id: int) -> InterchangeRow:
        t = s.interchanges
        row = self.conn.execute(select(t).where(t.c.id == interchange_id)).first()
        if row is None:
            raise NotFoundError(f"interchange {interchange_id} not found")
        return from_mapping(InterchangeRow, row)

    @_db
    def groups_of_interchange(self, interchange_id: int) -> list[GroupRow]:
        t = s.functional_groups
        stmt = select(t).where(t.c.interchange_id == interchange_id).order_by(t.c.id)
        return [from_mapping(GroupRow, r) for r in self.conn.execute(stmt)]

    @_db
    def sets_of_group(self, group_id: int) -> list[TransactionSetRow]:
        t = s.transaction_sets
        stmt = select(t).where(t.c.group_id == group_id).order_by(t.c.id)
        return self._with_traces(self.conn.execute(stmt).all())

    # -- results ---------------------------------------------------------------------------------

    def _request_id(self, tracking_number: str) -> int | None:
        stmt = select(s.requests.c.id).where(s.requests.c.tracking_number == tracking_number)
        value = self.conn.execute(stmt).scalar_one_or_none()
        return None if value is None else int(value)

    @_db
    def upsert_eligibility_result(
        self,
        *,
        tracking_number: str,
        status: str,
        record: Mapping[str, Any],
        source_set_id: int | None = None,
        effective_from: date | None = None,
        effective_to: date | None = None,
    ) -> EligibilityRow:
        """Store the latest 271 outcome for a tracking number; a status change is logged as 'eligibility'."""
        t = s.eligibility_results
        existing = self.conn.execute(
            select(t).where(t.c.tracking_number == tracking_number).with_for_update()
        ).first()
        now = self.now()
        values = {
            "status": status,
            "record": dict(record),
            "source_set_id": source_set_id,
            "effective_from": effective_from,
            "effective_to": effective_to,
            "updated_at": now,
        }
        if existing is None:
            values |= {"tracking_number": tracking_number, "request_id": self._request_id(tracking_number)}
            row = self.conn.execute(insert(t).values(**values, created_at=now).returning(*t.c)).one()
        else:
            row = self.conn.execute(
                update(t).where(t.c.id == existing.id).values(**values).returning(*t.c)
            ).one()
        old = None if existing is None else existing.status
        if old != status or existing is None:
            self.record_state_change("eligibility", row.id, old, status, {"source_set_id": source_set_id})
        return from_mapping(EligibilityRow, row)

    @_db
    def get_eligibility_result(self, tracking_number: str) -> EligibilityRow | None:
        """The latest 271 outcome for a tracking number, or None."""
        t = s.eligibility_results
        row = self.conn.execute(select(t).where(t.c.tracking_number == tracking_number)).first()
        return None if row is None else from_mapping(EligibilityRow, row)

    @_db
    def upsert_authorization(
        self,
        *,
        tracking_number: str,
        status: str,
        record: Mapping[str, Any],
        certification_number: str | None = None,
        source_set_id: int | None = None,
        effective_from: date | None = None,
        effective_to: date | None = None,
    ) -> AuthorizationRow:
        """Store the latest 278 outcome; a new status or certification number adds an authorization event.

        A later response that leaves out the certification number or the dates keeps the ones already
        known (a repeated or pended 278 after an approval does not erase HCR02 or the approved period).
        """
        t = s.authorizations
        existing = self.conn.execute(
            select(t).where(t.c.tracking_number == tracking_number).with_for_update()
        ).first()
        now = self.now()

        def keep(new: Any, column: str) -> Any:
            return new if new is not None or existing is None else existing._mapping[column]

        cert = keep(certification_number, "certification_number")
        values = {
            "status": status,
            "certification_number": cert,
            "record": dict(record),
            "source_set_id": source_set_id,
            "effective_from": keep(effective_from, "effective_from"),
            "effective_to": keep(effective_to, "effective_to"),
            "updated_at": now,
        }
        if existing is None:
            values |= {"tracking_number": tracking_number, "request_id": self._request_id(tracking_number)}
            row = self.conn.execute(insert(t).values(**values, created_at=now).returning(*t.c)).one()
        else:
            row = self.conn.execute(
                update(t).where(t.c.id == existing.id).values(**values).returning(*t.c)
            ).one()
        if existing is None or (existing.status, existing.certification_number) != (status, cert):
            event_values = {
                "authorization_id": row.id,
                "old_status": None if existing is None else existing.status,
                "new_status": status,
                "certification_number": cert,
                "source_set_id": source_set_id,
                "at": now,
            }
            self.conn.execute(insert(s.authorization_events).values(**event_values))
        return from_mapping(AuthorizationRow, row)

    @_db
    def get_authorization(self, tracking_number: str) -> AuthorizationRow | None:
        """The latest 278 outcome for a tracking number, or None."""
        t = s.authorizations
        row = self.conn.execute(select(t).where(t.c.tracking_number == tracking_number)).first()
        return None if row is None else from_mapping(AuthorizationRow, row)

    @_db
    def find_authorizations(
        self,
        *,
        certification_number: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[AuthorizationRow]:
        """Authorizations by certification number, status and last update time; newest first."""
        t = s.authorizations
        conds = _window(t.c.updated_at, since, until)
        if certification_number is not None:
            conds.append(t.c.certification_number == certification_number)
        if status is not None:
            conds.append(t.c.status == status)
        stmt = (
            select(t).where(*conds).order_by(t.c.updated_at.desc(), t.c.id.desc()).limit(_check_limit(limit))
        )
        return [from_mapping(AuthorizationRow, r) for r in self.conn.execute(stmt)]

    @_db
    def authorization_history(self, authorization_id: int) -> list[AuthorizationEvent]:
        """Every status/certification change of one authorization, oldest first."""
        t = s.authorization_events
        stmt = select(t).where(t.c.authorization_id == authorization_id).order_by(t.c.id)
        return [from_mapping(AuthorizationEvent, r) for r in self.conn.execute(stmt)]

    # -- operators' queries ----------------------------------------------------------------------
    # Read-only queries behind the operators' CLI (``gateway.operators``): flat rows and aggregates the
    # run loop never needs. Nothing here returns PHI except the request payloads and records the rows
    # already carry; the caller masks those.

    @_db
    def operator_files(
        self,
        *,
        partner: str | None = None,
        direction: Direction | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after_id: int | None = None,
        before_id: int | None = None,
        limit: int = DEFAULT_LIMIT,
        newest_first: bool = True,
    ) -> list[FileRow]:
        """Files by partner/direction/creation time, paged by id (``after_id``/``before_id``, exclusive)."""
        t = s.files
        conds = _window(t.c.created_at, since, until)
        for column, value in ((t.c.partner, partner), (t.c.direction, direction)):
            if value is not None:
                conds.append(column == value)
        if after_id is not None:
            conds.append(t.c.id > after_id)
        if before_id is not None:
            conds.append(t.c.id < before_id)
        order = t.c.id.desc() if newest_first else t.c.id
        stmt = select(t).where(*conds).order_by(order).limit(_check_limit(limit))
        return [from_mapping(FileRow, r) for r in self.conn.execute(stmt)]

    @_db
    def files_by_ids(self, file_ids: Iterable[int]) -> dict[int, FileRow]:
        """The file rows with these ids (missing ids are left out)."""
        ids = sorted(set(file_ids))
        if not ids:
            return {}
        stmt = select(s.files).where(s.files.c.id.in_(ids))
        return {r.id: from_mapping(FileRow, r) for r in self.conn.execute(stmt)}

    @_db
    def operator_envelope_rows(self, file_ids: Sequence[int]) -> list[dict[str, Any]]:
        """Every interchange of these files with its transaction sets, groups and requests, flattened.

        One dict per transaction set (keys ``file_id``, ``interchange_*``, ``group_*``, ``set_*``,
        ``trace_numbers``, ``request_*``); an interchange without sets (a TA1) gives one dict whose set
        and group keys are None. Ordered by file, interchange and set.
        """
        if not file_ids:
            return []
        i, g, t, r = s.interchanges, s.functional_groups, s.transaction_sets, s.requests
        stmt = (
            select(
                i.c.file_id,
                i.c.id.label("interchange_row_id"),
                i.c.control_number.label("interchange_control"),
                i.c.sender,
                i.c.receiver,
                i.c.ack_status.label("interchange_ack"),
                g.c.id.label("group_row_id"),
                g.c.control_number.label("group_control"),
                g.c.functional_id,
                g.c.version,
                g.c.ack_status.label("group_ack"),
                t.c.id.label("set_row_id"),
                t.c.set_id,
                t.c.control_number.label("set_control"),
                t.c.bht03,
                t.c.ack_status.label("set_ack"),
                t.c.state.label("set_state"),
                t.c.created_at.label("set_created_at"),
                t.c.updated_at.label("set_updated_at"),
                t.c.request_id,
                r.c.tracking_number,
                r.c.state.label("request_state"),
                r.c.kind.label("request_kind"),
                r.c.payer_id,
            )
            .select_from(i)
            .outerjoin(t, t.c.interchange_id == i.c.id)
            .outerjoin(g, g.c.id == t.c.group_id)
            .outerjoin(r, r.c.id == t.c.request_id)
            .where(i.c.file_id.in_(list(file_ids)))
            .order_by(i.c.file_id, i.c.id, t.c.id)
        )
        rows = [dict(row._mapping) for row in self.conn.execute(stmt)]
        set_ids = [row["set_row_id"] for row in rows if row["set_row_id"] is not None]
        traces: dict[int, list[str]] = {}
        if set_ids:
            tn = s.trace_numbers
            query = select(tn.c.transaction_set_id, tn.c.trace_number).where(
                tn.c.transaction_set_id.in_(set_ids)
            )
            for set_row_id, trace in self.conn.execute(query.order_by(tn.c.id)):
                traces.setdefault(set_row_id, []).append(trace)
        for row in rows:
            row["trace_numbers"] = traces.get(row["set_row_id"], [])
        return rows

    @_db
    def get_transaction_set(self, set_row_id: int) -> TransactionSetRow:
        """One transaction set by row id; NotFoundError if there is none."""
        t = s.transaction_sets
        row = self.conn.execute(select(t).where(t.c.id == set_row_id)).first()
        if row is None:
            raise NotFoundError(f"transaction set {set_row_id} not found")
        return self._with_traces([row])[0]

    @_db
    def find_sets_by_control(
        self, control_number: str, *, limit: int = DEFAULT_LIMIT
    ) -> list[TransactionSetRow]:
        """Transaction sets whose ST02 equals ``control_number`` ignoring leading zeros; newest first."""
        t = s.transaction_sets
        wanted = control_number.lstrip("0")
        stmt = (
            select(t)
            .where(func.ltrim(t.c.control_number, "0") == wanted)
            .order_by(t.c.id.desc())
            .limit(_check_limit(limit))
        )
        return self._with_traces(self.conn.execute(stmt).all())

    @_db
    def requests_by_tracking(self, tracking_numbers: Iterable[str]) -> dict[str, RequestRow]:
        """The requests with these tracking numbers, by tracking number (unknown ones left out)."""
        wanted = sorted(set(tracking_numbers))
        if not wanted:
            return {}
        stmt = select(s.requests).where(s.requests.c.tracking_number.in_(wanted))
        return {r.tracking_number: from_mapping(RequestRow, r) for r in self.conn.execute(stmt)}

    @_db
    def requests_by_ids(self, request_ids: Iterable[int]) -> dict[int, RequestRow]:
        """The requests with these row ids (unknown ones left out)."""
        ids = sorted(set(request_ids))
        if not ids:
            return {}
        stmt = select(s.requests).where(s.requests.c.id.in_(ids))
        return {r.id: from_mapping(RequestRow, r) for r in self.conn.execute(stmt)}

    @_db
    def requests_of_file(self, file_id: int) -> list[RequestRow]:
        """The requests an inbox file produced, in file order."""
        t = s.requests
        stmt = select(t).where(t.c.source_file_id == file_id).order_by(t.c.id)
        return [from_mapping(RequestRow, r) for r in self.conn.execute(stmt)]

    @_db
    def search_requests(
        self,
        *,
        member_id_hash: str | None = None,
        payer_id: str | None = None,
        tracking_numbers: Iterable[str] | None = None,
        kind: str | None = None,
        state: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[RequestRow]:
        """Requests matching every given criterion (payer id case-insensitively); newest first."""
        t = s.requests
        conds = _window(t.c.created_at, since, until)
        for column, value in ((t.c.member_id_hash, member_id_hash), (t.c.kind, kind), (t.c.state, state)):
            if value is not None:
                conds.append(column == value)
        if payer_id is not None:
            conds.append(func.upper(t.c.payer_id) == payer_id.strip().upper())
        if tracking_numbers is not None:
            conds.append(t.c.tracking_number.in_(sorted(set(tracking_numbers))))
        stmt = (
            select(t).where(*conds).order_by(t.c.created_at.desc(), t.c.id.desc()).limit(_check_limit(limit))
        )
        return [from_mapping(RequestRow, r) for r in self.conn.execute(stmt)]

    @_db
    def state_changes_after(
        self, after_id: int, *, entity_type: str | None = None, limit: int = DEFAULT_LIMIT
    ) -> list[StateChange]:
        """Event-log rows with an id above ``after_id``, oldest first (what ``log tail -f`` polls)."""
        t = s.state_changes
        conds: list[ColumnElement[bool]] = [t.c.id > after_id]
        if entity_type is not None:
            conds.append(t.c.entity_type == entity_type)
        stmt = select(t).where(*conds).order_by(t.c.id).limit(_check_limit(limit))
        return [from_mapping(StateChange, r) for r in self.conn.execute(stmt)]

    @_db
    def operator_authorizations(
        self,
        *,
        status: str | None = None,
        payer_id: str | None = None,
        expiring_from: date | None = None,
        expiring_until: date | None = None,
        pended_before: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[AuthorizationRow]:
        """Authorizations by status, payer (via the request), end date window (``expiring_from <=
        effective_to <= expiring_until``) and, with ``pended_before``, pended ones whose latest event is
        older than that; most recently updated first."""
        a, r, e = s.authorizations, s.requests, s.authorization_events
        conds: list[ColumnElement[bool]] = []
        if status is not None:
            conds.append(a.c.status == status)
        if payer_id is not None:
            payer_requests = select(r.c.id).where(func.upper(r.c.payer_id) == payer_id.strip().upper())
            conds.append(a.c.request_id.in_(payer_requests))
        if expiring_from is not None:
            conds.append(a.c.effective_to >= expiring_from)
        if expiring_until is not None:
            conds.append(a.c.effective_to <= expiring_until)
        if pended_before is not None:
            latest = select(func.max(e.c.at)).where(e.c.authorization_id == a.c.id).scalar_subquery()
            conds.extend((a.c.status == "pended", latest < pended_before))
        stmt = (
            select(a).where(*conds).order_by(a.c.updated_at.desc(), a.c.id.desc()).limit(_check_limit(limit))
        )
        return [from_mapping(AuthorizationRow, row) for row in self.conn.execute(stmt)]

    @_db
    def unacknowledged_out_files(self, *, sent_before: datetime, limit: int = DEFAULT_LIMIT) -> list[FileRow]:
        """Sent files carrying interchanges for which no TA1 or 999 verdict came back, sent (last state
        change) at or before ``sent_before``; oldest first. Our own 999/TA1 files record no interchanges,
        so they never expect an acknowledgment and are not listed."""
        f, i, g = s.files, s.interchanges, s.functional_groups
        has_interchange = select(i.c.id).where(i.c.file_id == f.c.id).exists()
        acked_interchange = select(i.c.id).where(i.c.file_id == f.c.id, i.c.ack_status.is_not(None)).exists()
        acked_group = (
            select(g.c.id)
            .join(i, i.c.id == g.c.interchange_id)
            .where(i.c.file_id == f.c.id, g.c.ack_status.is_not(None))
            .exists()
        )
        stmt = (
            select(f)
            .where(
                f.c.direction == "out",
                f.c.state == "sent",
                f.c.updated_at <= sent_before,
                has_interchange,
                ~acked_interchange,
                ~acked_group,
            )
            .order_by(f.c.updated_at, f.c.id)
            .limit(_check_limit(limit))
        )
        return [from_mapping(FileRow, r) for r in self.conn.execute(stmt)]

    @_db
    def count_transaction_sets(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Transaction sets counted by direction, partner, set id, state and acknowledgment code."""
        t, i, f = s.transaction_sets, s.interchanges, s.files
        keys = (f.c.direction, f.c.partner, t.c.set_id, t.c.state, t.c.ack_status)
        stmt = (
            select(*keys, func.count().label("count"))
            .select_from(t)
            .join(i, i.c.id == t.c.interchange_id)
            .join(f, f.c.id == i.c.file_id)
            .where(*_window(t.c.created_at, since, until))
            .group_by(*keys)
        )
        return [dict(row._mapping) for row in self.conn.execute(stmt)]

    @_db
    def count_requests(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Requests counted by kind, payer and state (created in the window)."""
        t = s.requests
        keys = (t.c.kind, t.c.payer_id, t.c.state)
        stmt = (
            select(*keys, func.count().label("count"))
            .where(*_window(t.c.created_at, since, until))
            .group_by(*keys)
        )
        return [dict(row._mapping) for row in self.conn.execute(stmt)]

    @_db
    def count_authorizations(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Authorizations counted by current status (last updated in the window)."""
        t = s.authorizations
        stmt = (
            select(t.c.status, func.count().label("count"))
            .where(*_window(t.c.updated_at, since, until))
            .group_by(t.c.status)
        )
        return [dict(row._mapping) for row in self.conn.execute(stmt)]

    @_db
    def request_milestones(
        self, states: Iterable[str], *, since: datetime | None = None, until: datetime | None = None
    ) -> list[dict[str, Any]]:
        """When each request (created in the window) first reached each of ``states``: one dict per
        request and state with ``request_id``, ``payer_id``, ``kind``, ``state`` and ``at``."""
        c, r = s.state_changes, s.requests
        stmt = (
            select(
                r.c.id.label("request_id"),
                r.c.payer_id,
                r.c.kind,
                c.c.new_state.label("state"),
                func.min(c.c.at).label("at"),
            )
            .select_from(c)
            .join(r, (c.c.entity_type == "request") & (c.c.entity_id == r.c.id))
            .where(c.c.new_state.in_(sorted(set(states))), *_window(r.c.created_at, since, until))
            .group_by(r.c.id, r.c.payer_id, r.c.kind, c.c.new_state)
        )
        return [dict(row._mapping) for row in self.conn.execute(stmt)]

    # -- claims ----------------------------------------------------------------------------------
    # Pre-certification, claim checks and deadline alerts (stages.precert_gate, stages.deadlines,
    # x12gw claims check). Members are found through the requests' member hash, never by member id.

    @staticmethod
    def _auth_and_request(row: Row[Any]) -> tuple[AuthorizationRow, RequestRow | None]:
        """Split a joined authorizations+requests row (request columns are labelled ``r_<name>``)."""
        mapping = row._mapping
        auth = from_mapping(AuthorizationRow, row)
        if mapping["r_id"] is None:
            return auth, None
        return auth, RequestRow(**{c.name: mapping[f"r_{c.name}"] for c in s.requests.c})

    @_db
    def authorizations_for_member(
        self, member_id_hash: str, *, limit: int = DEFAULT_LIMIT
    ) -> list[tuple[AuthorizationRow, RequestRow]]:
        """The member's 278 outcomes with their requests, newest request first."""
        a, r = s.authorizations, s.requests
        stmt = (
            select(a, *(c.label(f"r_{c.name}") for c in r.c))
            .join(r, a.c.request_id == r.c.id)
            .where(r.c.member_id_hash == member_id_hash, r.c.kind == "278")
            .order_by(r.c.id.desc())
            .limit(_check_limit(limit))
        )
        return [(a, r) for a, r in map(self._auth_and_request, self.conn.execute(stmt)) if r is not None]

    @_db
    def authorizations_by_number(
        self, certification_number: str, *, limit: int = DEFAULT_LIMIT
    ) -> list[tuple[AuthorizationRow, RequestRow | None]]:
        """Authorizations carrying this certification number (HCR02), with their requests, newest first."""
        a, r = s.authorizations, s.requests
        stmt = (
            select(a, *(c.label(f"r_{c.name}") for c in r.c))
            .outerjoin(r, a.c.request_id == r.c.id)
            .where(a.c.certification_number == certification_number)
            .order_by(a.c.id.desc())
            .limit(_check_limit(limit))
        )
        return [self._auth_and_request(row) for row in self.conn.execute(stmt)]

    @_db
    def units_used(
        self, authorization_ids: Iterable[int], *, exclude_claims: Iterable[str] = ()
    ) -> dict[tuple[int, int], Decimal]:
        """Units billed so far per (authorization id, service index), leaving out the claims (hashes)
        being checked again, whose lines are counted afresh."""
        ids = sorted(set(authorization_ids))
        if not ids:
            return {}
        t = s.authorization_units
        conds: list[ColumnElement[bool]] = [t.c.authorization_id.in_(ids)]
        excluded = sorted(set(exclude_claims))
        if excluded:
            conds.append(t.c.claim_hash.not_in(excluded))
        stmt = (
            select(t.c.authorization_id, t.c.service_index, func.sum(t.c.units_thousandths))
            .where(*conds)
            .group_by(t.c.authorization_id, t.c.service_index)
        )
        rows = self.conn.execute(stmt)
        return {(int(auth), int(index)): Decimal(int(total)) / 1000 for auth, index, total in rows}

    @_db
    def record_units(
        self,
        *,
        authorization_id: int,
        service_index: int,
        claim_hash: str,
        line_number: int,
        units: Decimal,
        procedure_code: str | None = None,
    ) -> bool:
        """Record that a claim line used ``units`` of an authorization; False if that line was recorded
        before (committing a claim twice counts its units once). Logged as a state change."""
        if not _HEX64.match(claim_hash):
            raise StoreError("claim_hash must be a 64-hex HMAC digest, not a claim number")
        thousandths = units * 1000
        if units <= 0 or thousandths != thousandths.to_integral_value():
            raise StoreError("units must be positive with at most three decimals")
        t = s.authorization_units
        dialect = postgresql if self.conn.dialect.name == "postgresql" else sqlite_dialect
        values = {
            "authorization_id": authorization_id,
            "service_index": service_index,
            "claim_hash": claim_hash,
            "line_number": line_number,
            "procedure_code": procedure_code,
            "units_thousandths": int(thousandths),
            "created_at": self.now(),
        }
        stmt = (
            dialect.insert(t)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["authorization_id", "claim_hash", "line_number"])
            .returning(t.c.id)
        )
        new_id = self.conn.execute(stmt).scalar_one_or_none()
        if new_id is None:
            return False
        units_text = format(units.normalize(), "f")
        detail = {"service_index": service_index, "line": line_number, "units": units_text}
        self.record_state_change("authorization.units", authorization_id, None, "billed", detail)
        return True

    @_db
    def authorizations_expiring(
        self,
        *,
        start: date,
        end: date,
        statuses: Iterable[str] = ("approved", "partially_approved", "modified"),
        limit: int = DEFAULT_LIMIT,
    ) -> list[AuthorizationRow]:
        """Authorizations in ``statuses`` whose certification ends between ``start`` and ``end``
        (inclusive), soonest first."""
        t = s.authorizations
        stmt = (
            select(t)
            .where(t.c.status.in_(list(statuses)), t.c.effective_to >= start, t.c.effective_to <= end)
            .order_by(t.c.effective_to, t.c.id)
            .limit(_check_limit(limit))
        )
        return [from_mapping(AuthorizationRow, r) for r in self.conn.execute(stmt)]

    @_db
    def latest_eligibility_for_member(
        self, member_id_hash: str, *, payer_id: str | None = None
    ) -> EligibilityRow | None:
        """The most recent 271 outcome for the member (optionally from one payer), or None."""
        e, r = s.eligibility_results, s.requests
        conds = [r.c.member_id_hash == member_id_hash, r.c.kind == "270"]
        if payer_id is not None:
            conds.append(func.upper(r.c.payer_id) == payer_id.strip().upper())
        stmt = (
            select(e)
            .join(r, e.c.request_id == r.c.id)
            .where(*conds)
            .order_by(e.c.updated_at.desc(), e.c.id.desc())
            .limit(1)
        )
        row = self.conn.execute(stmt).first()
        return None if row is None else from_mapping(EligibilityRow, row)

    @_db
    def latest_states(self, entity_type: str, *, limit: int = MAX_LIMIT) -> dict[int, StateChange]:
        """The newest state change of each entity of one type (e.g. the last alert per authorization)."""
        t = s.state_changes
        newest = (
            select(func.max(t.c.id))
            .where(t.c.entity_type == entity_type)
            .group_by(t.c.entity_id)
            .scalar_subquery()
        )
        stmt = select(t).where(t.c.id.in_(newest)).order_by(t.c.id.desc()).limit(_check_limit(limit))
        return {int(r.entity_id): from_mapping(StateChange, r) for r in self.conn.execute(stmt)}

    # -- scale-out: claiming work with row locks and leases ---------------------------------------

    def _claim(  # noqa: PLR0917 - private helper of the two claim methods
        self,
        table: Table,
        entity: str,
        conds: list[ColumnElement[bool]],
        new_state: str,
        owner: str,
        until: datetime,
        limit: int,
    ) -> list[Row[Any]]:
        """Lock up to ``limit`` rows no other transaction holds (FOR UPDATE SKIP LOCKED; SQLite, one
        node only, has no row locks) and move them to ``new_state`` under a lease for ``owner``."""
        pick = select(table.c.id).where(*conds).order_by(table.c.id).limit(_check_limit(limit))
        ids = list(self.conn.execute(pick.with_for_update(skip_locked=True)).scalars())
        if not ids:
            return []
        rows = self.conn.execute(select(table).where(table.c.id.in_(ids)).order_by(table.c.id)).all()
        stmt = (
            update(table)
            .where(table.c.id.in_(ids))
            .values(state=new_state, lease_owner=owner, lease_until=until, updated_at=self.now())
        )
        self.conn.execute(stmt)
        for row in rows:
            self.record_state_change(entity, row.id, row.state, new_state, {"node": owner})
        return list(self.conn.execute(select(table).where(table.c.id.in_(ids)).order_by(table.c.id)).all())

    @_db
    def claim_requests(self, *, partner: str, owner: str, until: datetime, limit: int) -> list[RequestRow]:
        """New requests of a partner, moved to ``batching`` under this node's lease."""
        t = s.requests
        rows = self._claim(
            t, "request", [t.c.state == "new", t.c.partner == partner], "batching", owner, until, limit
        )
        return [from_mapping(RequestRow, r) for r in rows]

    @_db
    def claim_files(
        self, *, state: str, new_state: str, direction: Direction, owner: str, until: datetime, limit: int
    ) -> list[FileRow]:
        """Files in ``state``, moved to ``new_state`` under this node's lease."""
        t = s.files
        conds = [t.c.state == state, t.c.direction == direction]
        return [
            from_mapping(FileRow, r) for r in self._claim(t, "file", conds, new_state, owner, until, limit)
        ]

    @_db
    def release_expired(
        self, *, entity: str, state: str, back_to: str, dead_owners: Iterable[str] = ()
    ) -> int:
        """Work whose lease expired, or whose node is known dead, goes back to ``back_to``."""
        table = {"request": s.requests, "file": s.files}[entity]
        now = self.now()
        gone = or_(table.c.lease_until < now, table.c.lease_owner.in_(list(dead_owners)))
        stale = self.conn.execute(
            select(table).where(table.c.state == state, gone).with_for_update(skip_locked=True)
        ).all()
        for row in stale:
            self._transition(
                entity,
                table,
                row,
                back_to,
                expect=state,
                extra={"lease_owner": None, "lease_until": None},
                detail={"released_from": row.lease_owner, "reason": "lease expired"},
            )
        return len(stale)
