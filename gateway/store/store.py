"""The durable store: SQLite (one file, WAL) by default, PostgreSQL by URL, same code and schema.

Use::

    store = Store.open("sqlite:////var/lib/x12gw/gateway.db")      # runs the migrations to head
    isa13 = store.allocate_control_numbers("ZZ:US", "ZZ:PAYER", "ISA13", 1)[0]
    with store.begin() as tx:                                     # one database transaction
        f = tx.files.record(direction="in", partner="acme", name="x.271", sha256=h, size=n,
                            payload_path=p, state=FileState.DOWNLOADED)
        tx.files.transition(f.id, FileEvent.START_PROCESSING)     # per gateway.lifecycle.TABLE

Why it is shaped this way:

* One repository per area behind the same transaction (``tx.files``, ``tx.envelopes``,
  ``tx.requests``, ``tx.results``, ``tx.claims``, ``tx.quarantine``, ``tx.audit``, ``tx.nodes``,
  ``tx.listings``; modules in ``gateway.store.repos``), all reading through one listing helper
  (``Repo.listing``).
* Every state change is a lifecycle event checked against ``gateway.lifecycle.TABLE``.
* SQLAlchemy Core, no ORM: the rows are small frozen dataclasses (``gateway.store.rows``) and every
  statement is visible in the repositories.
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
import hashlib
import hmac
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.config import Config
from alembic.util.exc import CommandError
from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Table,
    Update,
    bindparam,
    case,
    create_engine,
    event,
    select,
    text,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.pool import ConnectionPoolEntry

from gateway.errors import StoreError
from gateway.store import fastsql, fileperms, lockstats, sealing
from gateway.store import schema as s
from gateway.store.errors import store_error
from gateway.store.repos.audit import AuditRepo
from gateway.store.repos.base import DEFAULT_LIMIT, MAX_LIMIT
from gateway.store.repos.claims import ClaimsRepo
from gateway.store.repos.envelopes import AckLevel, EnvelopesRepo
from gateway.store.repos.files import Direction, FilesRepo
from gateway.store.repos.listings import ListingsRepo
from gateway.store.repos.nodes import NodesRepo
from gateway.store.repos.quarantine import QuarantineRepo
from gateway.store.repos.requests import RequestKind, RequestsRepo
from gateway.store.repos.results import ResultsRepo
from gateway.store.writelock import FileWriterLock, lock_path

__all__ = [
    "CONTROL_MAX",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "AckLevel",
    "Direction",
    "RequestKind",
    "Store",
    "Tx",
    "driver_commits",
    "hash_member_id",
    "make_engine",
    "sqlite_url",
    "upgrade",
    "utc_now",
]

Clock = Callable[[], datetime]
ControlKind = Literal["ISA13", "GS06", "ST02"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
CONTROL_KINDS: frozenset[str] = frozenset({"ISA13", "GS06", "ST02"})
CONTROL_MAX = 999_999_999  # ISA13 is N0 9/9, GS06 N0 1/9, ST02 AN 4/9: nine digits for all three
TRACKING_MAX = 10**15 - 1  # tracking sequence: never wraps (a reused TRN02 would mis-match a response)
_MIGRATION_LOCK = 0x5831_3247_5753_544F  # pg_advisory_xact_lock key: "X12GWSTO"
_PREFIX = re.compile(r"^[A-Z0-9]{1,10}$")
_READ_ONLY = "x12gw_read_only"
# set on the writers' shared SQLite connection: SQLAlchemy's transaction stays open on it for its
# whole life (no BEGIN sent), each write transaction is begun and ended on the driver (``_writing``)
_DRIVER_TRANSACTIONS = "x12gw_driver_transactions"
# one writer lock per SQLite database file in this process (see ``_writer_lock``), and for a file
# store its cross-process lock file (``gateway.store.writelock``), keyed by the file's real path
_SQLITE_WRITERS: dict[str, threading.RLock] = {}
_SQLITE_FILE_LOCKS: dict[str, FileWriterLock] = {}
_SQLITE_WRITERS_GUARD = threading.Lock()
_UNMEASURED = nullcontext()  # reusable: ``nullcontext`` keeps no state


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


def hash_patient(last_name: str, birth_date: str, key: bytes) -> str:
    """The value to find a patient by: HMAC-SHA256 (``hash_member_id``'s key) of the last name, case
    and inner spacing ignored, and the ISO birth date; a domain prefix keeps it apart from member-id
    hashes. Neither part is ever stored in the clear for search."""
    name = " ".join(last_name.split())
    return hash_member_id(f"PATIENT|{name}|{birth_date.strip()}", key)


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
        # on the driver's connection: a BEGIN through ``exec_driver_sql`` pays SQLAlchemy's whole
        # execution path (context, cursor, result) for a statement without parameters or rows
        options = conn.get_execution_options()
        if options.get(_DRIVER_TRANSACTIONS, False):
            return  # the writers' shared connection: ``Store._writing`` begins each one on the driver
        statement = "BEGIN DEFERRED" if options.get(_READ_ONLY, False) else "BEGIN IMMEDIATE"
        raw = conn.connection.driver_connection
        assert raw is not None  # noqa: S101 - a live pysqlite connection
        _driver_statement(raw, statement)

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", on_begin)


def _driver_statement(raw: sqlite3.Connection, statement: str) -> None:
    """A BEGIN, COMMIT or ROLLBACK on pysqlite's connection, its failure raised as SQLAlchemy would
    have raised it (busy: ``OperationalError``), so ``store_error`` maps it as before."""
    try:
        raw.execute(statement)
    except sqlite3.Error as exc:
        raise sa_exc.DBAPIError.instance(statement, None, exc, sqlite3.Error) from None


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


def _allocation() -> Update:
    """The UPDATE that advances one sequence row (see ``_allocate``), values bound at execution."""
    t = s.control_sequences
    over = t.c.next_value + bindparam("last", type_=BigInteger) > bindparam("maximum", type_=BigInteger)
    return (
        update(t)
        .where(
            (t.c.sender == bindparam("seq_sender"))
            & (t.c.receiver == bindparam("seq_receiver"))
            & (t.c.kind == bindparam("seq_kind"))
        )
        .values(
            next_value=case(
                (over, bindparam("restart", type_=BigInteger)),
                else_=t.c.next_value + bindparam("step", type_=BigInteger),
            ),
            wraps=case((over, t.c.wraps + 1), else_=t.c.wraps),
            updated_at=bindparam("now", type_=t.c.updated_at.type),
        )
        .returning(t.c.next_value, t.c.wraps)
    )


_ALLOCATE = fastsql.register(_allocation())  # built once: three allocations per outbound interchange


def _allocate(
    conn: Connection, now: datetime, key: tuple[str, str, str], count: int, maximum: int, *, wrap: bool
) -> range:
    """Advance one sequence row by ``count`` in a single UPDATE and return the numbers it skipped over.

    The UPDATE locks the row (PostgreSQL) or the database (SQLite, already under BEGIN IMMEDIATE), so
    two callers can never get overlapping ranges. If the block would pass ``maximum`` it restarts at 1
    (``wrap``) leaving the tail unused, or fails (no ``wrap``).
    """
    params = {
        "seq_sender": key[0],
        "seq_receiver": key[1],
        "seq_kind": key[2],
        "last": count - 1,
        "maximum": maximum,
        "restart": 1 + count,
        "step": count,
        "now": now,
    }
    row = fastsql.execute(conn, _ALLOCATE, params).first()
    if row is None:
        t = s.control_sequences
        values = {"sender": key[0], "receiver": key[1], "kind": key[2], "next_value": 1, "wraps": 0}
        _insert_ignore(conn, t, {**values, "updated_at": now}, ("sender", "receiver", "kind"))
        row = fastsql.execute(conn, _ALLOCATE, params).one()
    if row.wraps and not wrap:
        raise StoreError(f"{key[2]} sequence exhausted")
    return range(row.next_value - count, row.next_value)


def _writer_lock(engine: Engine) -> threading.RLock | None:
    """The in-process lock that writers to this SQLite file queue on, or None (PostgreSQL).

    SQLite admits one writer at a time; a second ``BEGIN IMMEDIATE`` waits in SQLite's busy handler,
    which polls with growing sleeps (up to 100 ms each). Threads of one process (the API's workers, the
    real-time senders) that queue on a lock instead take turns as soon as the writer commits, which is
    what keeps an API call's tail latency near its work. Other processes queue on the database's lock
    file (``_file_writer_lock``).
    """
    if engine.dialect.name != "sqlite":
        return None
    path = fileperms.sqlite_path(engine.url.render_as_string(hide_password=False))
    # a file by its real path: stores naming it differently must queue on one lock (and its lock file)
    key = os.path.realpath(path) if path is not None else str(engine.url.database or "")
    with _SQLITE_WRITERS_GUARD:
        return _SQLITE_WRITERS.setdefault(key, threading.RLock())


def _file_writer_lock(engine: Engine) -> FileWriterLock | None:
    """The cross-process writer lock of this SQLite file (``gateway.store.writelock``), or None for
    PostgreSQL and in-memory or URI-style SQLite (nothing another process could share)."""
    path = fileperms.sqlite_path(engine.url.render_as_string(hide_password=False))
    if path is None:
        return None
    key = os.path.realpath(path)
    with _SQLITE_WRITERS_GUARD:
        lock = _SQLITE_FILE_LOCKS.get(key)
        if lock is None:
            lock = _SQLITE_FILE_LOCKS[key] = FileWriterLock(lock_path(Path(key)))
        return lock


class _DriverCommits:
    """Write transactions committed on the driver (``Store._on_driver``) in this process; plain int,
    incremented with the writer lock held."""

    count = 0


def driver_commits() -> int:
    """How many write transactions were committed on the driver's connection so far in this process:
    SQLAlchemy's ``commit`` event does not see those (tests count write transactions with both)."""
    return _DriverCommits.count


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
        self._writers = _writer_lock(engine)
        self._file_lock = _file_writer_lock(engine)
        self._wait_seconds = 5.0
        self._writer: Connection | None = None  # SQLite: the connection writers share (``_writing``)
        # opt-in, read once: each write transaction's lock-held time (``lockstats``)
        self._measuring = lockstats.enabled()
        if self._measuring:
            lockstats.instrument(engine)

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
        return cls.attach(
            engine, clock=clock, tracking_prefix=tracking_prefix, busy_timeout_ms=busy_timeout_ms
        )

    @classmethod
    def attach(
        cls,
        engine: Engine,
        *,
        clock: Clock = utc_now,
        tracking_prefix: str = "GW",
        busy_timeout_ms: int = 5000,
    ) -> Store:
        """The store on an engine whose schema the caller has checked (``gateway.store.migrate``)."""
        try:
            store = cls(engine, clock=clock, tracking_prefix=tracking_prefix)
            store._wait_seconds = busy_timeout_ms / 1000
            store.instance_id = store._load_instance_id()
        except BaseException:
            engine.dispose()
            raise
        return store

    def close(self) -> None:
        """Close pooled connections (the store must not be used afterwards)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        if self._file_lock is not None:
            self._file_lock.close()  # a descriptor per closed store would add up (tests open hundreds)
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite): committed when the block ends, rolled
        back if it raises.

        On SQLite it runs under this process's writer lock, on the one connection the process's
        writers share: SQLite admits one writer at a time anyway, and a connection keeps its page
        cache only while no other connection writes, so the writers' reads (the rows they lock and
        move, the index pages they insert into) come from memory instead of one ``pread`` per page,
        and no pool checkout/checkin is paid per transaction. With the thread lock held, a file store's
        writer then takes the database's cross-process lock file (``gateway.store.writelock``), so the
        processes writing one file (``serve --workers N``, ``serve`` beside ``run``) take turns and the
        next one starts when the last commits, instead of sleeping in SQLite's busy handler. Each lock
        waits at most what is left of the busy timeout; past it (or in a write nested in another on the
        same thread, which SQLite would make wait anyway) the transaction goes on without it and
        SQLite's busy handler decides, exactly as without the locks (a stuck writer never hangs this
        thread forever). PostgreSQL: a pooled connection, no lock.

        The shared connection's transactions are begun and ended on the driver (``_on_driver``), not
        through SQLAlchemy's ``Transaction`` objects, whose machinery (events, reset agents, nesting
        checks) was a tenth of a busy ``serve``'s CPU, most of it while holding the writer lock.
        """
        deadline = time.monotonic() + self._wait_seconds
        lock, file_lock = self._writers, self._file_lock
        if file_lock is not None:
            file_lock.arrive()  # it may be kept for us by the writer before us (``FileWriterLock.release``)
        try:
            held = lock is not None and lock.acquire(timeout=self._wait_seconds)
        finally:
            if file_lock is not None:
                file_lock.depart()
        locked_file: FileWriterLock | None = None
        try:
            shared = self._shared_writer() if held else None
            if shared is None:
                with self._measured(), self.engine.begin() as conn:
                    yield conn
                return
            if file_lock is not None and file_lock.acquire(deadline - time.monotonic()):
                locked_file = file_lock
            with self._measured():
                yield from self._on_driver(shared)
        finally:
            if locked_file is not None:
                locked_file.release()
            if held and lock is not None:
                lock.release()
            if self._measuring:
                lockstats.flush()  # the measured transaction's line, written with no lock held

    def _on_driver(self, shared: Connection) -> Iterator[Connection]:
        """One transaction on the shared connection, begun, committed or rolled back on pysqlite's
        connection. SQLAlchemy's own transaction stays open on it for the connection's life
        (``_shared_writer``), so ``Connection.execute`` never autobegins and ``fastsql`` runs its
        statements; a COMMIT or ROLLBACK that fails drops the connection (closing it rolls back
        whatever SQLite still holds), and the next writer opens a fresh one."""
        raw = shared.connection.driver_connection
        assert raw is not None  # noqa: S101 - ``_shared_writer`` checked it is live
        _driver_statement(raw, "BEGIN IMMEDIATE")  # busy: raised, nothing to undo
        try:
            yield shared
        except BaseException:
            if shared.invalidated:  # a disconnect in the block: SQLAlchemy closed the driver's connection
                self._drop_writer()
                raise
            try:
                _driver_statement(raw, "ROLLBACK")
            except sa_exc.DBAPIError:
                self._drop_writer()  # the block's own error is the one to report
            raise
        try:
            _driver_statement(raw, "COMMIT")
        except sa_exc.DBAPIError:
            self._drop_writer()
            raise
        _DriverCommits.count += 1

    def _measured(self) -> AbstractContextManager[None]:
        """The lock-held measurement of a write transaction (``gateway.store.lockstats``), when on."""
        return lockstats.measure() if self._measuring else _UNMEASURED

    def _shared_writer(self) -> Connection | None:
        """The writers' connection (made on first use), or None when it is already in a transaction
        (a write nested in another on this thread). Call with the writer lock held."""
        writer = self._writer
        if writer is None:
            writer = self.engine.connect()
            try:
                writer.execution_options(**{_DRIVER_TRANSACTIONS: True})
                writer.begin()  # open for good, sends nothing (``on_begin``): see ``_on_driver``
            except BaseException:
                writer.close()
                raise
            self._writer = writer
        raw = writer.connection.driver_connection
        return None if raw is None or raw.in_transaction else writer

    def _drop_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.invalidate()  # never back to the pool: its state after the failure is unknown
            writer.close()

    @contextmanager
    def begin(self) -> Iterator[Tx]:
        """A read-write transaction: commits when the block ends, rolls back if it raises.

        After a ``StoreError`` inside the block, leave the block: PostgreSQL refuses further statements in
        a failed transaction. Do not call ``allocate_control_numbers``/``new_tracking_numbers`` inside it on
        SQLite without passing ``tx``: they take their own transaction and would wait for this one.
        """
        try:
            with self._writing() as conn:
                tx = Tx(conn, self.clock, buffered=True)
                yield tx
                tx.audit.flush()  # the event-log rows the block recorded, with its commit
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
        self, sender: str, receiver: str, kind: ControlKind, count: int = 1, *, tx: Tx | None = None
    ) -> range:
        """``count`` consecutive control numbers for the sender/receiver pair, committed at once.

        Numbers are never handed out twice and may be skipped (a block taken by a transaction that later
        failed is simply lost: gaps are harmless in X12, reuse is not). Numbers run 1..999,999,999; a block
        that does not fit below the top restarts at 1 (the skipped tail stays unused) and ``wraps`` is
        counted in the sequence row. Outgoing 999 and TA1 interchanges use the same ISA13/GS06/ST02
        sequences as any other interchange to that partner.

        With ``tx`` the numbers are taken inside that transaction and committed with it (one commit
        for a claim and its numbers); a rollback returns them, which is safe as long as nothing built
        with them leaves the transaction before it commits.
        """
        if kind not in CONTROL_KINDS:
            raise StoreError("control number kind must be ISA13, GS06 or ST02")
        if not 1 <= count <= CONTROL_MAX:
            raise StoreError("control number count must be between 1 and 999999999")
        _check_party(sender)
        _check_party(receiver)
        key = (sender, receiver, kind)
        try:
            if tx is not None:
                return _allocate(tx.conn, self.clock(), key, count, CONTROL_MAX, wrap=True)
            with self._writing() as conn:
                return _allocate(conn, self.clock(), key, count, CONTROL_MAX, wrap=True)
        except sa_exc.SQLAlchemyError as exc:
            raise store_error(exc, "allocate control numbers") from None

    def new_tracking_number(self) -> str:
        """A new TRN02 tracking number: ``PREFIX-INSTANCE-NNNNNNNNNN`` (letters, digits, dashes, <= 50).

        NNNN comes from a committed database sequence (unique across restarts and across nodes sharing the
        database, never reused); INSTANCE is a random tag made when the database was created, so two
        separate databases (say, a test and a production gateway) do not issue the same numbers either.
        """
        return self.new_tracking_numbers(1)[0]

    def new_tracking_numbers(self, count: int, *, tx: Tx | None = None) -> list[str]:
        """``count`` new tracking numbers as one block: one committed transaction for all of them (a
        big inbox file must not pay one fsync'd commit per request). Unused ones are a gap, never reused.

        With ``tx`` they are taken inside that transaction (committed with the rows that carry them;
        a rollback returns numbers nothing outside the transaction has seen)."""
        if count <= 0:
            return []
        key = ("tracking", self.tracking_prefix, "TRN")
        try:
            if tx is not None:
                numbers = _allocate(tx.conn, self.clock(), key, count, TRACKING_MAX, wrap=False)
            else:
                with self._writing() as conn:
                    numbers = _allocate(conn, self.clock(), key, count, TRACKING_MAX, wrap=False)
        except sa_exc.SQLAlchemyError as exc:
            raise store_error(exc, "new tracking number") from None
        return [f"{self.tracking_prefix}-{self.instance_id}-{n:010d}" for n in numbers]

    def sealed_doc(self, doc: Any) -> Any:
        """``doc`` as a ``SealedJSON`` column of this store keeps it (sealed when the store has a key
        ring, else ``doc`` itself), made before the transaction that writes it: the column binds a
        sealed value as it is, so no JSON encoding or AES-GCM runs while the writer lock is held."""
        ring = sealing.ring_of(self.engine.dialect)
        return doc if ring is None else ring.seal_doc(doc)

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


# ------------------------------------------------------------------------------------------ transaction


class Tx:
    """One database transaction and its repositories. Obtain it from ``Store.begin()`` or ``read()``."""

    def __init__(self, conn: Connection, clock: Clock, *, buffered: bool = False) -> None:
        self.conn = conn
        self._clock = clock
        self.audit = AuditRepo(conn, clock, buffered=buffered)
        self.files = FilesRepo(conn, clock, self.audit)
        self.quarantine = QuarantineRepo(conn, clock, self.audit)
        self.envelopes = EnvelopesRepo(conn, clock, self.audit)
        self.requests = RequestsRepo(conn, clock, self.audit)
        self.results = ResultsRepo(conn, clock, self.audit)
        self.claims = ClaimsRepo(conn, clock, self.audit)
        self.nodes = NodesRepo(conn, clock, self.audit)
        self.listings = ListingsRepo(conn, clock, self.audit)

    def now(self) -> datetime:
        """The store's clock (UTC, aware)."""
        return self._clock()
