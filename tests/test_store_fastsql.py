"""The store's fast path (``gateway.store.fastsql``) against SQLAlchemy's own execution of the same
statements: the same rows, stored values, errors and statement events, on a real SQLite file and on
PostgreSQL, with and without a sealing key ring; and whole repository workflows giving the same
tables with the fast path on and off."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, Table, event, select, text
from sqlalchemy import exc as sa_exc

from gateway.errors import StoreError
from gateway.lifecycle import Entity, FileEvent, FileState, RequestEvent, SetEvent, SetState
from gateway.store import Store, fastsql, sqlite_url
from gateway.store import schema as s
from gateway.store.errors import store_error
from gateway.store.repos.base import KEY, by_key, inserting, keyed_update, locked_many, prebuilt, rows_where
from gateway.store.sealing import KeyRing, install, is_sealed_doc
from tests.store_fixtures import FakeClock, postgres_schema, require_postgres

pytest_plugins = ["tests.store_fixtures"]

RING_KEY = bytes(range(32))
HASH = "a" * 64
SKIP = frozenset({"id", "tracking_number"})  # what differs between the two copies of a row
EXAMPLES = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12)
ZONES = st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))])
# hypothesis takes naive bounds and adds the zone itself
AWARE = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1), timezones=ZONES)  # noqa: DTZ001
SCALAR = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | TEXT
JSON = st.recursive(
    SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3), max_leaves=6
)
DOC = st.dictionaries(TEXT, JSON, max_size=4)
REQUEST = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["270", "278"]),
        "payer_id": TEXT.filter(bool),
        "partner": TEXT.filter(bool),
        "source_file_id": st.none(),
        "state": st.sampled_from(["new", "answered"]),
        "due_at": st.none() | AWARE,
        "member_id_hash": st.just(HASH),
        "client_reference_hash": st.none() | st.just("b" * 64),
        "patient_hash": st.none(),
        "payload": DOC,
        "created_at": AWARE,
        "updated_at": AWARE,
    }
)
CHANGES = st.fixed_dictionaries(
    {"state": TEXT.filter(bool), "updated_at": AWARE},
    optional={"reason": st.none() | TEXT, "lease_until": st.none() | AWARE, "payload": DOC},
)
CHANGE = st.fixed_dictionaries(
    {
        "entity_type": st.sampled_from(["request", "file", "eligibility"]),
        "entity_id": st.integers(1, 5),
        "old_state": st.none() | TEXT,
        "new_state": TEXT,
        "at": AWARE,
        "detail": st.none() | DOC,
    }
)
RESULT = st.fixed_dictionaries(
    {
        "request_id": st.none(),
        "status": st.sampled_from(["active", "inactive", "unknown"]),
        "effective_from": st.none() | st.dates(date(1900, 1, 1), date(2100, 1, 1)),
        "effective_to": st.none() | st.dates(date(1900, 1, 1), date(2100, 1, 1)),
        "source_set_id": st.none(),
        "record": DOC,
        "created_at": AWARE,
        "updated_at": AWARE,
    }
)
_INSERT_CHANGES = prebuilt(("insert_many", "state_changes"), s.state_changes.insert)


@pytest.fixture(params=["plain", "sealed"])
def db(request: pytest.FixtureRequest, store: Store) -> Store:
    """The store, its sealed columns sealed by a key ring in the 'sealed' variant."""
    if request.param == "sealed":
        install(store.engine.dialect, KeyRing(RING_KEY))
    return store


@contextmanager
def transaction(store: Store) -> Iterator[Connection]:
    """A write transaction (BEGIN IMMEDIATE on SQLite) that is rolled back at the end."""
    with store.engine.connect() as conn:
        trans = conn.begin()
        try:
            yield conn
        finally:
            trans.rollback()


def fast(conn: Connection, stmt: Any, params: Any = None) -> fastsql.FastResult:
    """``stmt`` on the fast path (failing the test if it fell back to SQLAlchemy)."""
    result = fastsql.execute(conn, stmt, params)
    assert isinstance(result, fastsql.FastResult)
    return result


def view(row: Any, skip: frozenset[str] = SKIP) -> tuple[tuple[str, ...], dict[str, Any]]:
    """A row's keys and its values but ``skip``."""
    return row._fields, {k: v for k, v in row._mapping.items() if k not in skip}


def stored(conn: Connection, table: Table, ids: list[int]) -> list[tuple[Any, ...]]:
    """The rows as the database keeps them (no type processing: text, JSON text, sealed tokens)."""
    # ids are ints and the table name comes from the metadata
    sql = text(f"SELECT * FROM {table.name} WHERE id IN ({', '.join(str(int(i)) for i in ids)}) ORDER BY id")  # noqa: S608
    return [tuple(r) for r in conn.execute(sql)]


def _compare_stored(conn: Connection, table: Table, slow_id: int, fast_id: int, sealed: bool) -> None:
    """Both copies are stored alike: equal but for the id, the tracking number and sealed documents
    (AES-GCM takes a fresh nonce per value), which must be sealed in both."""
    names = [c.name for c in table.c]
    slow_raw, fast_raw = stored(conn, table, [slow_id]), stored(conn, table, [fast_id])
    for name, a, b in zip(names, slow_raw[0], fast_raw[0], strict=True):
        if name in SKIP:
            continue
        if sealed and isinstance(table.c[name].type, s.SealedJSON):
            assert is_sealed_doc(a) or is_sealed_doc(_json_text(a))
            assert is_sealed_doc(b) or is_sealed_doc(_json_text(b))
            continue
        assert (name, a) == (name, b)


def _json_text(value: Any) -> Any:
    import json  # noqa: PLC0415 - only for a sealed JSON column's raw text

    return json.loads(value) if isinstance(value, str) else value


@EXAMPLES
@given(values=REQUEST, changes=CHANGES)
def test_request_rows_inserted_read_and_updated_are_the_same_both_ways(
    db: Store, values: dict[str, Any], changes: dict[str, Any]
) -> None:
    """A request inserted, read by key and updated (RETURNING *) on the fast path gives the rows
    SQLAlchemy gives (keys, types, aware UTC datetimes, JSON, unicode, None) and stores the same."""
    sealed = fastsql_ring(db)
    with transaction(db) as conn:
        slow = conn.execute(inserting(s.requests), values | {"tracking_number": "T-SLOW"}).one()
        quick = fast(conn, inserting(s.requests), values | {"tracking_number": "T-FAST"}).one()
        assert view(quick) == view(slow)
        assert quick.payload == values["payload"]
        for row in (slow, quick):
            by_sa = conn.execute(by_key(s.requests, "id"), {KEY: row.id}).one()
            by_fast = fast(conn, by_key(s.requests, "id"), {KEY: row.id}).one()
            assert by_fast._fields == by_sa._fields
            assert tuple(by_fast) == tuple(by_sa)
        _compare_stored(conn, s.requests, slow.id, quick.id, sealed)
        moved_slow = conn.execute(keyed_update(s.requests), {KEY: slow.id, **changes}).one()
        moved_fast = fast(conn, keyed_update(s.requests), {KEY: quick.id, **changes}).one()
        assert view(moved_fast) == view(moved_slow)
        _compare_stored(conn, s.requests, slow.id, quick.id, sealed)


def fastsql_ring(store: Store) -> bool:
    """Whether the store's engine seals (the 'sealed' variant)."""
    from gateway.store.sealing import ring_of  # noqa: PLC0415

    return ring_of(store.engine.dialect) is not None


@EXAMPLES
@given(values=RESULT)
def test_eligibility_rows_with_dates_and_records_are_the_same_both_ways(
    db: Store, values: dict[str, Any]
) -> None:
    """Dates, a sealed JSON record and datetimes in ``eligibility_results`` round-trip alike."""
    sealed = fastsql_ring(db)
    with transaction(db) as conn:
        t = s.eligibility_results
        slow = conn.execute(inserting(t), values | {"tracking_number": "T-SLOW"}).one()
        quick = fast(conn, inserting(t), values | {"tracking_number": "T-FAST"}).one()
        assert view(quick) == view(slow)
        _compare_stored(conn, t, slow.id, quick.id, sealed)
        by_sa = conn.execute(by_key(t, "tracking_number"), {KEY: "T-FAST"}).one()
        assert tuple(fast(conn, by_key(t, "tracking_number"), {KEY: "T-FAST"}).one()) == tuple(by_sa)


@EXAMPLES
@given(changes=st.lists(CHANGE, min_size=1, max_size=5))
def test_event_log_rows_written_one_or_many_at_a_time_are_the_same_both_ways(
    store: Store, changes: list[dict[str, Any]]
) -> None:
    """State-change rows (JSON detail or None) written by one INSERT or an executemany are stored
    and read back (``rows_where``) exactly as SQLAlchemy stores and reads them."""
    with transaction(store) as conn:
        if len(changes) == 1:
            conn.execute(_INSERT_CHANGES, changes[0])
            fast(conn, _INSERT_CHANGES, changes[0])
        else:
            conn.execute(_INSERT_CHANGES, changes)
            fast(conn, _INSERT_CHANGES, changes)
        ids = [r.id for r in conn.execute(select(s.state_changes.c.id).order_by(s.state_changes.c.id))]
        half = len(ids) // 2
        raw = stored(conn, s.state_changes, ids)
        assert [r[1:] for r in raw[:half]] == [r[1:] for r in raw[half:]]
        stmt = rows_where(s.state_changes, "entity_type", "entity_id")
        for change in changes:
            params = {"k_entity_type": change["entity_type"], "k_entity_id": change["entity_id"]}
            by_sa = conn.execute(stmt, params).all()
            by_fast = fast(conn, stmt, params).all()
            assert [(r._fields, tuple(r)) for r in by_fast] == [(r._fields, tuple(r)) for r in by_sa]


@EXAMPLES
@given(wanted=st.lists(st.integers(0, 8), max_size=7))
def test_rows_by_a_list_of_keys_are_the_same_both_ways(store: Store, wanted: list[int]) -> None:
    """``IN`` lists of any length (duplicates, unknown keys, empty) select the same rows in the
    same order; each length is its own plan."""
    with transaction(store) as conn:
        for n in range(5):
            values = {
                "tracking_number": f"T-{n}",
                "kind": "270",
                "payer_id": "P",
                "partner": "acme",
                "state": "new",
                "member_id_hash": HASH,
                "payload": {"n": n},
                "created_at": datetime(2024, 1, 1, tzinfo=UTC),
                "updated_at": datetime(2024, 1, 1, tzinfo=UTC),
            }
            conn.execute(inserting(s.requests), values)
        stmt = locked_many(s.requests, "id")
        by_sa = conn.execute(stmt, {"keys": wanted}).all()
        by_fast = fastsql.execute(conn, stmt, {"keys": wanted}).all()  # an empty list goes SQLAlchemy's way
        assert [(r._fields, tuple(r)) for r in by_fast] == [(r._fields, tuple(r)) for r in by_sa]


def _request_values(tracking: str, **overrides: Any) -> dict[str, Any]:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    base = {
        "tracking_number": tracking,
        "kind": "270",
        "payer_id": "P",
        "partner": "acme",
        "state": "new",
        "member_id_hash": HASH,
        "payload": {"a": 1},
        "created_at": now,
        "updated_at": now,
    }
    return base | overrides


BROKEN: dict[str, Callable[[Callable[..., Any]], Any]] = {
    "duplicate key": lambda run: run(inserting(s.requests), _request_values("T-1")),
    "not null": lambda run: run(inserting(s.requests), _request_values("T-2", payer_id=None)),
    "check": lambda run: run(inserting(s.requests), _request_values("T-3", kind="999")),
    "naive datetime": lambda run: run(
        inserting(s.requests),
        _request_values("T-4", due_at=datetime(2024, 1, 1)),  # noqa: DTZ001 - the point
    ),
    "foreign key": lambda run: run(inserting(s.requests), _request_values("T-5", source_file_id=999)),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_failing_statement_maps_to_the_same_store_error_both_ways(store: Store, case: str) -> None:
    """A duplicate key, a NULL, a CHECK, a foreign key and a naive datetime fail on the fast path with
    the SQLAlchemy exception class, driver error and ``store_error`` mapping the plain path gives."""
    with store.begin() as tx:
        tx.conn.execute(inserting(s.requests), _request_values("T-1"))

    def outcome(run: Callable[..., Any]) -> tuple[Any, ...]:
        with transaction(store) as conn:
            with pytest.raises(sa_exc.SQLAlchemyError) as caught:
                BROKEN[case](lambda stmt, params: run(conn, stmt, params).all())
            exc = caught.value
            mapped: StoreError = store_error(exc, "insert request")
            details = (getattr(mapped, "code", ""), getattr(mapped, "constraint", ""))
            return type(exc), type(getattr(exc, "orig", None)), type(mapped), str(mapped), details

    before = fastsql.stats()
    slow = outcome(lambda conn, stmt, params: conn.execute(stmt, params))
    quick = outcome(fastsql.execute)
    assert quick == slow
    assert fastsql.stats()[0] > before[0]  # the fast path ran it (and failed the same way)


def test_statement_events_see_every_fast_statement_as_sqlalchemy_reports_it(store: Store) -> None:
    """``before_cursor_execute`` on Engine (what the statement budget tests count) sees each fast
    statement once, with the SQL text and executemany flag SQLAlchemy's own execution reports."""
    seen: list[tuple[str, bool]] = []

    def on_execute(_conn: Any, _cursor: Any, statement: str, _params: Any, _ctx: Any, many: bool) -> None:
        seen.append((statement, many))

    changes = [
        {"entity_type": "file", "entity_id": i, "old_state": None, "new_state": "x", "at": datetime.now(UTC)}
        | {"detail": None}
        for i in range(3)
    ]

    def work(run: Callable[..., Any], tracking: str) -> None:
        with transaction(store) as conn:
            row = run(conn, inserting(s.requests), _request_values(tracking)).one()
            run(conn, by_key(s.requests, "id"), {KEY: row.id}).one()
            run(conn, locked_many(s.requests, "id"), {"keys": [row.id, row.id + 1]}).all()
            run(conn, _INSERT_CHANGES, changes)
            run(conn, _INSERT_CHANGES, changes[0])

    event.listen(Engine, "before_cursor_execute", on_execute)
    try:
        work(lambda conn, stmt, params: conn.execute(stmt, params), "T-SLOW")
        slow, seen[:] = list(seen), []
        before = fastsql.stats()[0]
        work(fastsql.execute, "T-FAST")
        quick = list(seen)
    finally:
        event.remove(Engine, "before_cursor_execute", on_execute)
    assert fastsql.stats()[0] - before == 5
    assert quick == slow
    assert len(quick) == 5


def test_unregistered_statements_and_connections_outside_a_transaction_go_the_plain_way(
    store: Store,
) -> None:
    """A statement built per call, or a connection without a transaction (autobegin), runs through
    ``Connection.execute``: SQLAlchemy's own result, nothing counted as fast."""
    before = fastsql.stats()[0]
    with transaction(store) as conn:
        one_off = select(s.requests).where(s.requests.c.id == 1)
        assert not isinstance(fastsql.execute(conn, one_off), fastsql.FastResult)
    with store.engine.connect() as conn:
        result = fastsql.execute(conn, by_key(s.requests, "id"), {KEY: 1})
        assert not isinstance(result, fastsql.FastResult)
        assert result.first() is None
        conn.rollback()
    assert fastsql.stats()[0] == before


def test_a_dropped_postgresql_connection_is_invalidated_and_unavailable_as_before() -> None:
    """A backend killed under a transaction fails the fast statement as SQLAlchemy fails it: a
    disconnect (``StoreUnavailableError``) and the connection invalidated, never reused."""
    base = require_postgres()
    with postgres_schema(base) as url:
        store = Store.open(url)
        try:

            def outcome(run: Callable[..., Any]) -> tuple[Any, ...]:
                with store.engine.connect() as conn:
                    conn.begin()
                    pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
                    admin = store.engine.url.set(drivername="postgresql").render_as_string(
                        hide_password=False
                    )
                    with psycopg.connect(admin.split("?")[0], autocommit=True) as other:
                        other.execute("SELECT pg_terminate_backend(%s)", (pid,))
                    with pytest.raises(sa_exc.DBAPIError) as caught:
                        run(conn, by_key(s.requests, "id"), {KEY: 1}).all()
                    mapped = store_error(caught.value, "read")
                    return (
                        type(caught.value),
                        caught.value.connection_invalidated,
                        conn.invalidated,
                        type(mapped),
                    )

            slow = outcome(lambda conn, stmt, params: conn.execute(stmt, params))
            quick = outcome(fastsql.execute)
        finally:
            store.close()
    assert quick == slow
    assert quick[1:3] == (True, True)


# --------------------------------------------------------------------------------- whole workflows


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def two_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two empty databases of one backend."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "a.db"), sqlite_url(tmp_path / "b.db")
        return
    base = require_postgres()
    with postgres_schema(base) as first, postgres_schema(base) as second:
        yield first, second


def _workflow(store: Store, clock: FakeClock, payloads: list[dict[str, Any]]) -> list[Any]:
    """Requests in, claimed, a file with its envelopes out, answers recorded and read back: what
    the run loop and a real-time call do, through the repositories. Returns what the reads gave."""
    seen: list[Any] = []
    trackings = [f"GW-{n:04d}" for n in range(len(payloads))]
    with store.begin() as tx:
        for tracking, payload in zip(trackings, payloads, strict=True):
            tx.requests.insert(
                tracking_number=tracking,
                kind="270",
                payer_id="PAYER1",
                partner="acme",
                member_id_hash=HASH,
                payload=payload,
                due_at=clock() + timedelta(hours=1),
            )
    clock.advance(timedelta(seconds=1))
    with store.begin() as tx:
        claimed = tx.requests.claim(
            partner="acme", owner="node-1", until=clock() + timedelta(minutes=5), limit=50
        )
        seen.append(claimed)
        seen.append(tx.requests.heads([r.id for r in claimed]))
        tx.requests.transition_many([r.tracking_number for r in claimed], RequestEvent.QUEUE)
        f = tx.files.record(
            direction="out",
            partner="acme",
            name="ünïcode batch.270",
            sha256=HASH,
            size=10,
            payload_path=None,
            state=FileState.QUEUED,
        )
        ic = tx.envelopes.record_interchange(file_id=f.id, control_number=7, sender="ZZ:US", receiver="ZZ:P")
        group = tx.envelopes.record_group(
            interchange_id=ic.id, control_number=7, functional_id="HS", version="005010X279A1"
        )
        for r in claimed:
            tx.envelopes.record_set(
                interchange_id=ic.id,
                group_id=group.id,
                control_number=f"{r.id:04d}",
                set_id="270",
                request_id=r.id,
                trace_numbers=[r.tracking_number],
                state=SetState.QUEUED,
            )
        seen.append(tx.files.transition(f.id, FileEvent.START_UPLOAD))
    clock.advance(timedelta(seconds=1))
    with store.begin() as tx:
        for tracking in trackings[: len(trackings) // 2 + 1]:
            seen.append(tx.requests.transition(tracking, RequestEvent.SEND, was="queued"))
            seen.append(tx.requests.transition(tracking, RequestEvent.ANSWER, was="sent"))
            seen.append(
                tx.results.upsert_eligibility(
                    tracking_number=tracking, status="active", record={"plan": "Gold ✓", "n": None}
                )
            )
        seen.append(tx.requests.by_tracking(trackings))
        seen.append(tx.requests.get_many([1, 2, 3]))
        seen.append(tx.envelopes.requests_of_traces(trackings, set_id="270"))
        seen.append(tx.audit.details_of(Entity.REQUEST, [1, 2], ["answered", "sent"]))
        seen.append(tx.audit.history(Entity.REQUEST, 1))
    with store.begin() as tx:
        sets = tx.envelopes.sets_of_file(f.id)
        seen.append(sets)
        tx.envelopes.transition_sets([i for i, _ in sets], SetEvent.SEND)
        seen.append(tx.requests.get_by_tracking(trackings[0]))
        seen.append(store.allocate_control_numbers("ZZ:US", "ZZ:P", "ISA13", 2, tx=tx))
    return seen


def _tables(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows in id order, as SQLAlchemy reads them."""
    out = {}
    with store.engine.connect() as conn:
        for table in s.metadata.sorted_tables:
            order = [table.c.id] if "id" in table.c else list(table.primary_key.columns)
            out[table.name] = [tuple(r) for r in conn.execute(select(table).order_by(*order))]
    return out


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payloads=st.lists(DOC, min_size=1, max_size=4))
def test_a_workflow_leaves_the_same_tables_with_the_fast_path_on_and_off(
    two_urls: tuple[str, str], payloads: list[dict[str, Any]]
) -> None:
    """The same repository calls on two empty databases, one with every statement through SQLAlchemy
    (``slow_path``), give the same answers and leave the same rows in every table."""
    results = []
    for url, slow in zip(two_urls, (True, False), strict=True):
        clock = FakeClock()
        store = Store.open(url, clock=clock)
        try:
            _reset(store)
            before = fastsql.stats()[0]
            if slow:
                with fastsql.slow_path():
                    answers = _workflow(store, clock, payloads)
                assert fastsql.stats()[0] == before
            else:
                answers = _workflow(store, clock, payloads)
                assert fastsql.stats()[0] > before
            results.append((answers, _tables(store)))
        finally:
            store.close()
    assert results[0][0] == results[1][0]
    tables_slow, tables_fast = results[0][1], results[1][1]
    tables_slow.pop("store_meta"), tables_fast.pop("store_meta")  # each database's random instance tag
    assert tables_fast == tables_slow


def _reset(store: Store) -> None:
    """Empty the tables a workflow writes and restart their ids (hypothesis reuses the databases)."""
    with store.engine.begin() as conn:
        for table in reversed(s.metadata.sorted_tables):
            if table.name not in {"store_meta", "alembic_version"}:
                conn.execute(table.delete())
        if conn.dialect.name == "sqlite":
            if conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE name = 'sqlite_sequence'").first():
                conn.exec_driver_sql("DELETE FROM sqlite_sequence")
        else:
            names = ", ".join(t.name for t in s.metadata.sorted_tables if t.name != "store_meta")
            conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_failing_fast_statement_never_shows_its_values(store: Store, case: str) -> None:
    """A statement that fails on the fast path keeps its bound values out of the statement part of
    SQLAlchemy's exception (the engine's ``hide_parameters``) and out of the store error that leaves
    the boundary (values may be PHI; PostgreSQL's own DETAIL line stays inside the driver error)."""
    with store.begin() as tx:
        tx.conn.execute(inserting(s.requests), _request_values("T-1"))
    with transaction(store) as conn, pytest.raises(sa_exc.SQLAlchemyError) as caught:
        BROKEN[case](lambda stmt, params: fastsql.execute(conn, stmt, params).all())
    mapped = store_error(caught.value, "insert request")
    for shown in (str(mapped), repr(mapped)):
        assert HASH not in shown
        assert "T-1" not in shown
    if isinstance(caught.value, sa_exc.DBAPIError):
        assert "parameters hidden" in str(caught.value)
