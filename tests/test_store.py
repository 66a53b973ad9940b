"""The durable store on SQLite and PostgreSQL: migrations, sequences, state logs, lookups, PHI safety."""

from __future__ import annotations

import json
import re
import threading
import traceback
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypedDict, Unpack

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from gateway.errors import IllegalTransitionError, StoreError
from gateway.lifecycle import FileEvent, FileState, RequestEvent, RequestState, SetEvent, SetState
from gateway.store import (
    CONTROL_MAX,
    DuplicateKeyError,
    NotFoundError,
    StaleStateError,
    Store,
    StoreUnavailableError,
    hash_member_id,
    sqlite_url,
    upgrade,
)
from gateway.store.migrate import script
from gateway.store.schema import metadata

if TYPE_CHECKING:
    from tests.store_fixtures import FakeClock

pytest_plugins = ["tests.store_fixtures"]

KEY = b"test-hmac-key"
SHA_A = "a" * 64
SHA_B = "b" * 64
SURNAME = "SMITH"  # the PHI the leak test looks for; test code below only names the variable


class _RequestFields(TypedDict, total=False):
    """The ``insert_request`` arguments these tests set, so overrides are checked field by field."""

    tracking_number: str
    kind: Literal["270", "278"]
    payer_id: str
    partner: str
    member_id_hash: str
    payload: Mapping[str, Any]
    due_at: datetime | None


def _request(tx_store: Store, tracking: str, **overrides: Unpack[_RequestFields]) -> None:
    values: _RequestFields = {
        "tracking_number": tracking,
        "kind": "270",
        "payer_id": "PAYER1",
        "partner": "acme",
        "member_id_hash": hash_member_id("M123", KEY),
        "payload": {"subscriber": {"last_name": "DOE", "first_name": "JANE"}},
    }
    values.update(overrides)
    with tx_store.begin() as tx:
        tx.requests.insert(**values)


# --------------------------------------------------------------------------------------- migrations


def test_open_migrates_and_is_idempotent(store_url: str) -> None:
    """Opening runs upgrade head; opening again and upgrading again change nothing."""
    first = Store.open(store_url)
    second = Store.open(store_url)
    upgrade(second.engine)
    with second.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [
            script().get_current_head()
        ]
        assert set(metadata.tables) <= set(inspect(conn).get_table_names())
    assert first.instance_id == second.instance_id
    first.close()
    second.close()


def test_migrated_schema_matches_metadata(store: Store) -> None:
    """The migration and schema.py describe the same tables, columns, indexes and keys."""
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == []


def test_unknown_schema_revision_is_refused(store_url: str) -> None:
    """A database migrated by a newer gateway is not silently used by an older one."""
    Store.open(store_url).close()
    st = Store.open(store_url)
    with st.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    st.close()
    with pytest.raises(StoreError, match="schema revision"):
        Store.open(store_url)


def test_sqlite_pragmas(tmp_path: object) -> None:
    """SQLite connections run in WAL mode with foreign keys and a busy timeout."""
    st = Store.open(sqlite_url(f"{tmp_path}/p.db"), busy_timeout_ms=1234)
    with st.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 1234
    st.close()


def test_unreachable_database_is_store_unavailable(tmp_path: object) -> None:
    """Connection failures become StoreUnavailableError without the URL in the message."""
    with pytest.raises(StoreUnavailableError) as info:
        Store.open(sqlite_url(f"{tmp_path}/missing-dir/x.db"))
    assert "missing-dir" not in str(info.value)
    with pytest.raises(StoreUnavailableError) as info:
        Store.open("postgresql+psycopg://postgres:s3cret@127.0.0.1:1/test")
    assert "s3cret" not in str(info.value)


# -------------------------------------------------------------------------------------- sequences


def test_allocation_is_unique_under_concurrency(store_url: str, store: Store) -> None:
    """4 threads x 200 allocations over two engines (two 'nodes') never hand out a number twice."""
    other = Store.open(store_url)
    results: list[list[int]] = [[] for _ in range(4)]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        node = store if i % 2 else other
        try:
            for n in range(200):
                results[i].extend(node.allocate_control_numbers("ZZ:SUB", "ZZ:PAYER", "ISA13", 1 + n % 2))
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.close()
    assert errors == []
    numbers = [n for r in results for n in r]
    assert len(numbers) == 4 * 300
    assert sorted(numbers) == list(range(1, 4 * 300 + 1))


def test_sqlite_writers_of_one_process_queue_on_one_lock(tmp_path: object) -> None:
    """Two stores on one SQLite file share a writer lock, held for a whole write transaction, so
    threads take turns instead of polling SQLite's busy handler (reads never take it)."""
    url = sqlite_url(f"{tmp_path}/gw.db")
    first, second = Store.open(url), Store.open(url)
    taken: list[bool] = []

    def try_lock(store: Store) -> None:
        lock = store._writers
        assert lock is not None
        got = lock.acquire(blocking=False)
        taken.append(got)
        if got:
            lock.release()

    try:
        with first.begin():
            worker = threading.Thread(target=try_lock, args=(second,))
            worker.start()
            worker.join()
        with first.read():
            worker = threading.Thread(target=try_lock, args=(second,))
            worker.start()
            worker.join()
    finally:
        first.close()
        second.close()
    assert taken == [False, True]


def test_sequences_are_per_pair_and_kind(store: Store) -> None:
    """Each sender/receiver pair and each kind counts on its own; blocks are consecutive."""
    assert store.allocate_control_numbers("ZZ:A", "ZZ:B", "ISA13", 3) == range(1, 4)
    assert store.allocate_control_numbers("ZZ:A", "ZZ:B", "ISA13") == range(4, 5)
    assert store.allocate_control_numbers("ZZ:A", "ZZ:C", "ISA13") == range(1, 2)
    assert store.allocate_control_numbers("ZZ:A", "ZZ:B", "GS06") == range(1, 2)
    assert store.allocate_control_numbers("ZZ:A", "ZZ:B", "ST02", 2) == range(1, 3)


def test_allocation_rolls_over_to_one(store: Store) -> None:
    """A block fits up to 999999999 exactly; one that does not restarts at 1 and skips the tail."""
    assert store.allocate_control_numbers("ZZ:A", "ZZ:B", "ISA13", CONTROL_MAX - 2) == range(
        1, CONTROL_MAX - 1
    )
    assert store.allocate_control_numbers("ZZ:A", "ZZ:B", "ISA13", 2) == range(
        CONTROL_MAX - 1, CONTROL_MAX + 1
    )
    assert store.allocate_control_numbers("ZZ:A", "ZZ:B", "ISA13", 1) == range(1, 2)
    assert store.allocate_control_numbers("ZZ:X", "ZZ:Y", "GS06", CONTROL_MAX - 3) == range(
        1, CONTROL_MAX - 2
    )
    assert store.allocate_control_numbers("ZZ:X", "ZZ:Y", "GS06", 5) == range(1, 6)
    with store.engine.connect() as conn:
        wraps = conn.execute(text("SELECT wraps FROM control_sequences WHERE kind = 'GS06'")).scalar()
    assert wraps == 1


def test_allocation_arguments_are_checked(store: Store) -> None:
    """Unknown kinds, empty parties and out-of-range counts are refused before touching the database."""
    with pytest.raises(StoreError):
        store.allocate_control_numbers("ZZ:A", "ZZ:B", "TRN", 1)  # type: ignore[arg-type]  # a wrong kind is the test
    with pytest.raises(StoreError):
        store.allocate_control_numbers("", "ZZ:B", "ISA13", 1)
    with pytest.raises(StoreError):
        store.allocate_control_numbers("ZZ:A", "ZZ:B", "ISA13", 0)


def test_tracking_numbers_unique_across_restarts_and_nodes(store_url: str, store: Store) -> None:
    """Tracking numbers from two stores and a reopened one are distinct and fit TRN02 (AN 1-50)."""
    other = Store.open(store_url)
    issued = [store.new_tracking_number() for _ in range(20)] + [
        other.new_tracking_number() for _ in range(20)
    ]
    other.close()
    reopened = Store.open(store_url)
    issued += [reopened.new_tracking_number() for _ in range(5)]
    reopened.close()
    assert len(set(issued)) == len(issued)
    assert all(re.fullmatch(r"[A-Za-z0-9-]{1,50}", t) for t in issued)
    assert issued[-1] > issued[0]  # time-free ordering: the sequence is zero-padded


# ---------------------------------------------------------------------------------- state machines


def test_file_state_changes_are_logged(store: Store) -> None:
    """Recording a file and every event write state_changes rows; a stale expectation or a move the
    lifecycle table does not list fails and changes nothing."""
    with store.begin() as tx:
        f = tx.files.record(
            direction="in",
            partner="acme",
            name="a.271",
            sha256=SHA_A,
            size=10,
            payload_path="p",
            state=FileState.DOWNLOADED,
        )
        tx.files.transition(f.id, FileEvent.START_PROCESSING, expect=FileState.DOWNLOADED, detail={"sets": 2})
        tx.files.transition(f.id, FileEvent.QUARANTINE, reason="bad ISA")
    with store.begin() as tx, pytest.raises(StaleStateError):
        tx.files.transition(f.id, FileEvent.REPROCESS_INBOUND, expect=FileState.PROCESSING)
    with store.begin() as tx, pytest.raises(IllegalTransitionError):
        tx.files.transition(f.id, FileEvent.DELIVER)
    with store.read() as tx:
        history = [(c.old_state, c.new_state) for c in tx.audit.history("file", f.id)]
        assert history == [(None, "downloaded"), ("downloaded", "processing"), ("processing", "quarantined")]
        assert tx.audit.history("file", f.id)[1].detail == {"sets": 2}
        assert tx.files.get(f.id).reason == "bad ISA"
    with store.begin() as tx, pytest.raises(NotFoundError):
        tx.files.transition(f.id + 100, FileEvent.DELIVER)


def test_request_state_changes_and_duplicates(store: Store) -> None:
    """Requests are found by tracking number, log their states, and refuse a second tracking number."""
    tracking = store.new_tracking_number()
    _request(store, tracking)
    with store.begin() as tx:
        tx.requests.transition(tracking, RequestEvent.CLAIM_FOR_BATCH, expect=RequestState.NEW)
        tx.requests.transition(tracking, RequestEvent.QUEUE)
        tx.requests.transition(tracking, RequestEvent.SEND)
        tx.requests.transition(tracking, RequestEvent.SEND)  # sent again after a crash: no change, no row
    with store.read() as tx:
        req = tx.requests.get_by_tracking(tracking)
        assert req is not None
        assert req.state == "sent"
        assert req.payload["subscriber"]["last_name"] == "DOE"
        assert "DOE" not in repr(req)
        states = [c.new_state for c in tx.audit.history("request", req.id)]
        assert states == ["new", "batching", "queued", "sent"]
        assert tx.requests.get_by_tracking("nope") is None
    with pytest.raises(DuplicateKeyError):
        _request(store, tracking)


def test_raw_member_id_is_refused(store: Store) -> None:
    """Only a 64-hex HMAC goes into the indexed member column; the hash is keyed and normalised."""
    with pytest.raises(StoreError, match="member_id_hash"):
        _request(store, "T-1", member_id_hash="M123")
    assert hash_member_id(" m123 ", KEY) == hash_member_id("M123", KEY)
    assert hash_member_id("M123", KEY) != hash_member_id("M123", b"other key")
    with store.read() as tx:
        assert tx.requests.query() == []


def test_duplicate_files_by_sha256_within_window(store: Store, clock: FakeClock) -> None:
    """find_file_by_sha256 sees files of the same content recorded inside the window only."""
    with store.begin() as tx:
        first = tx.files.record(
            direction="in", partner="p", name="1", sha256=SHA_A, size=1, payload_path=None
        )
    clock.advance(timedelta(days=2))
    with store.begin() as tx:
        second = tx.files.record(
            direction="in", partner="p", name="2", sha256=SHA_A, size=1, payload_path=None
        )
        found = tx.files.find_by_sha256(SHA_A, within=timedelta(days=7), exclude_id=second.id)
        assert found is not None
        assert found.id == first.id
        assert tx.files.find_by_sha256(SHA_A, within=timedelta(days=1), exclude_id=second.id) is None
        assert tx.files.find_by_sha256(SHA_A, within=timedelta(days=7), direction="out") is None
        assert tx.files.find_by_sha256(SHA_B, within=timedelta(days=7)) is None


# --------------------------------------------------------------------------------------------- PHI


def test_integrity_error_does_not_leak_phi(store: Store) -> None:
    """A constraint violation whose values include a member's name never shows it in the StoreError."""
    tracking, payload = f"{SURNAME}-JOHN", {"name": f"JOHN {SURNAME}"}
    _request(store, tracking, payload=payload)
    with pytest.raises(DuplicateKeyError) as info:
        _request(store, tracking, payload=payload)
    err = info.value
    rendered = [str(err), repr(err), "".join(traceback.format_exception(err))]
    assert not any(SURNAME in r for r in rendered)
    assert err.__cause__ is None
    assert err.__suppress_context__
    assert "uq_requests_tracking_number" in str(err) or "requests.tracking_number" in str(err)
    if store.engine.dialect.name == "postgresql":
        assert SURNAME in str(err.__context__)  # the driver's DETAIL would have leaked it

    # a raw statement inside the block: the begin() boundary maps its error too
    with pytest.raises(StoreError) as info2, store.begin() as tx:
        tx.conn.execute(
            text("INSERT INTO quarantine (file_id, reason, created_at) VALUES (:f, :r, :c)"),
            {"f": 424242, "r": json.dumps(payload), "c": "2024-01-01"},
        )
    assert SURNAME not in str(info2.value)


def test_naive_datetimes_are_refused(store: Store) -> None:
    """Times must be time-zone aware; a naive one (zone unknown) is a StoreError, not a silent guess."""
    with pytest.raises(StoreError):
        _request(store, "T-2", due_at=store.clock().replace(tzinfo=None))


# ------------------------------------------------------------------------------------- envelopes


def test_envelopes_and_operator_lookups(store: Store) -> None:
    """Interchanges, groups and sets are found by ISA13, GS06, ST02, TRN and BHT03; acks are logged."""
    tracking = store.new_tracking_number()
    _request(store, tracking)
    with store.begin() as tx:
        f = tx.files.record(
            direction="out", partner="acme", name="o.270", sha256=SHA_A, size=5, payload_path="p"
        )
        isa = tx.envelopes.record_interchange(
            file_id=f.id, control_number=17, sender="ZZ:SUB", receiver="ZZ:PAYER", interchange_at=tx.now()
        )
        gs = tx.envelopes.record_group(
            interchange_id=isa.id, control_number=5, functional_id="HS", version="005010X279A1"
        )
        req = tx.requests.get_by_tracking(tracking)
        assert req is not None
        st = tx.envelopes.record_set(
            interchange_id=isa.id,
            group_id=gs.id,
            control_number="0001",
            set_id="270",
            trace_numbers=[tracking, tracking, "OTHER-1"],
            bht03="B1",
            request_id=req.id,
            state=SetState.QUEUED,
        )
        ta1 = tx.envelopes.record_set(interchange_id=isa.id, group_id=None, control_number="17", set_id="TA1")
        tx.envelopes.set_ack_status("interchange", isa.id, "A")
        tx.envelopes.set_ack_status("transaction_set", st.id, "R", detail={"ik5": "R"})
        tx.envelopes.transition_set(st.id, SetEvent.SEND, expect=SetState.QUEUED)
        tx.envelopes.link_set(ta1.id, req.id)
    assert st.trace_numbers == (tracking, "OTHER-1")
    with store.read() as tx:
        assert [i.id for i in tx.envelopes.find_interchanges(17, sender="ZZ:SUB")] == [isa.id]
        assert tx.envelopes.find_interchanges(17)[0].ack_status == "A"
        assert tx.envelopes.find_interchanges(17, receiver="ZZ:OTHER") == []
        assert [g.id for g in tx.envelopes.find_groups(5)] == [gs.id]
        by_trace = tx.envelopes.find_sets(trace_number="OTHER-1")
        assert [(s.id, s.ack_status, s.state) for s in by_trace] == [(st.id, "R", "sent")]
        assert by_trace[0].trace_numbers == (tracking, "OTHER-1")
        assert [s.id for s in tx.envelopes.find_sets(control_number="0001")] == [st.id]
        assert [s.id for s in tx.envelopes.find_sets(bht03="B1")] == [st.id]
        assert [s.id for s in tx.envelopes.find_sets(request_id=req.id)] == [ta1.id, st.id]
        acks = tx.audit.history("transaction_set.ack", st.id)
        assert [(a.old_state, a.new_state) for a in acks] == [(None, "R")]
        states = [c.new_state for c in tx.audit.history("transaction_set", st.id)]
        assert states == ["queued", "sent"]


def test_foreign_keys_are_enforced(store: Store) -> None:
    """A row pointing at a missing parent is refused on both backends (SQLite needs the pragma)."""
    with store.begin() as tx, pytest.raises(StoreError):
        tx.envelopes.record_interchange(file_id=999, control_number=1, sender="ZZ:A", receiver="ZZ:B")


# ---------------------------------------------------------------------------------------- results


def test_authorization_upsert_keeps_event_history(store: Store, clock: FakeClock) -> None:
    """Each status or certification change adds an event; an unchanged response adds none."""
    tracking = store.new_tracking_number()
    _request(store, tracking, kind="278")
    with store.begin() as tx:
        pended = tx.results.upsert_authorization(tracking_number=tracking, status="A4", record={"hcr": "A4"})
        assert pended.request_id is not None
    clock.advance(timedelta(hours=1))
    with store.begin() as tx:
        tx.results.upsert_authorization(
            tracking_number=tracking,
            status="A1",
            certification_number="CERT-9",
            record={"hcr": "A1"},
            effective_from=date(2024, 3, 1),
            effective_to=date(2024, 4, 1),
        )
        tx.results.upsert_authorization(
            tracking_number=tracking, status="A1", record={"hcr": "A1", "again": True}
        )
    with store.read() as tx:
        auth = tx.results.get_authorization(tracking)
        assert auth is not None
        assert (auth.status, auth.certification_number, auth.effective_to) == (
            "A1",
            "CERT-9",
            date(2024, 4, 1),
        )
        assert auth.record == {"hcr": "A1", "again": True}
        events = tx.results.authorization_history(auth.id)
        assert [(e.old_status, e.new_status, e.certification_number) for e in events] == [
            (None, "A4", None),
            ("A4", "A1", "CERT-9"),
        ]
        assert events[1].at - events[0].at == timedelta(hours=1)
        assert [a.id for a in tx.results.find_authorizations(certification_number="CERT-9")] == [auth.id]
        assert tx.results.find_authorizations(status="A4") == []


def test_eligibility_upsert_logs_status_changes(store: Store) -> None:
    """The latest 271 outcome replaces the previous one; status changes go to the event log."""
    with store.begin() as tx:
        tx.results.upsert_eligibility(tracking_number="T-9", status="active", record={"eb": "1"})
        tx.results.upsert_eligibility(tracking_number="T-9", status="active", record={"eb": "1", "x": 1})
        row = tx.results.upsert_eligibility(tracking_number="T-9", status="inactive", record={"eb": "6"})
    with store.read() as tx:
        got = tx.results.get_eligibility("T-9")
        assert got is not None
        assert (got.id, got.status, got.record, got.request_id) == (row.id, "inactive", {"eb": "6"}, None)
        assert [c.new_state for c in tx.audit.history("eligibility", row.id)] == ["active", "inactive"]


# ------------------------------------------------------------------------------- operators' views


def test_time_range_and_state_listings(store: Store, clock: FakeClock) -> None:
    """Files, requests and the event log can be listed by state and by creation-time range."""
    start = clock()
    with store.begin() as tx:
        old = tx.files.record(
            direction="in", partner="p", name="old", sha256=SHA_A, size=1, payload_path=None
        )
    clock.advance(timedelta(days=1))
    with store.begin() as tx:
        new = tx.files.record(
            direction="in", partner="q", name="new", sha256=SHA_B, size=1, payload_path=None
        )
        tx.files.transition(new.id, FileEvent.QUARANTINE)
    _request(store, "T-3", due_at=clock() + timedelta(hours=2))
    with store.read() as tx:
        assert [f.id for f in tx.files.query()] == [new.id, old.id]
        assert [f.id for f in tx.files.query(until=start + timedelta(hours=1))] == [old.id]
        assert [f.id for f in tx.files.query(since=start + timedelta(hours=1))] == [new.id]
        assert [f.id for f in tx.files.query(state=FileState.QUARANTINED)] == [new.id]
        assert [f.id for f in tx.files.query(partner="p")] == [old.id]
        assert [r.tracking_number for r in tx.requests.query(state="new")] == ["T-3"]
        assert tx.requests.query(due_before=clock() + timedelta(hours=1)) == []
        assert len(tx.requests.query(due_before=clock() + timedelta(hours=3))) == 1
        assert len(tx.audit.list_changes(entity_type="file", since=start + timedelta(hours=1))) == 2
    with store.read() as tx, pytest.raises(StoreError):
        tx.files.query(limit=0)


def test_quarantine_and_phi_audit(store: Store) -> None:
    """Quarantining sets the file's state and keeps the reason; PHI reveals are recorded with the user."""
    with store.begin() as tx:
        f = tx.files.record(direction="in", partner="p", name="bad", sha256=SHA_A, size=1, payload_path=None)
        q = tx.quarantine.add(f.id, {"code": "isa-length", "segment": 1})
        tx.audit.record_reveal(os_user="alice", action="show", subject=f"file:{f.id}")
    with store.read() as tx:
        assert tx.files.get(f.id).state == "quarantined"
        assert [(r.id, r.reason) for r in tx.quarantine.query(file_id=f.id)] == [(q.id, q.reason)]
        assert [(a.os_user, a.subject) for a in tx.audit.list_reveals(os_user="alice")] == [
            ("alice", f"file:{f.id}")
        ]


def test_read_does_not_wait_for_a_writer(store_url: str) -> None:
    """An operator's read runs while a write transaction is open (WAL / MVCC), and cannot write."""
    st = Store.open(store_url, busy_timeout_ms=200)
    _request(st, "T-4")
    with st.begin() as writer:
        writer.requests.transition("T-4", RequestEvent.CLAIM_FOR_BATCH)
        with st.read() as reader:
            row = reader.requests.get_by_tracking("T-4")
            assert row is not None
            assert row.state == "new"
    if st.engine.dialect.name == "postgresql":
        with st.read() as reader, pytest.raises(StoreError):
            reader.requests.transition("T-4", RequestEvent.WAIVE)
    st.close()


def test_a_vanished_claim_is_not_a_duplicate(store: Store) -> None:
    """Two nodes racing for one inbox file both record a claim; the loser's ``vanished`` row never held
    the content, so the winner's copy is not taken for a duplicate of it."""
    with store.begin() as tx:
        winner = tx.files.record(
            direction="in",
            partner="inbox",
            name="b.json",
            sha256=SHA_A,
            size=1,
            payload_path=None,
            state=FileState.CLAIMING,
        )
        loser = tx.files.record(
            direction="in",
            partner="inbox",
            name="b.json",
            sha256=SHA_A,
            size=1,
            payload_path=None,
            state=FileState.CLAIMING,
        )
        tx.files.transition(loser.id, FileEvent.VANISH)
        assert tx.files.find_by_sha256(SHA_A, within=timedelta(hours=1), exclude_id=winner.id) is None
        again = tx.files.record(
            direction="in", partner="inbox", name="c.json", sha256=SHA_A, size=1, payload_path=None
        )
        found = tx.files.find_by_sha256(SHA_A, within=timedelta(hours=1), exclude_id=winner.id)
        assert found is not None
        assert found.id == again.id
