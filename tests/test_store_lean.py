"""The store's short-transaction forms for the real-time path (multi-row event-log INSERTs, rows
inserted in their final state, guarded moves from a known state) write and log exactly what the
step-by-step forms did, and ``gateway.store.lockstats`` counts a write transaction's statements."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import IllegalTransitionError
from gateway.lifecycle import FileEvent, FileState, RequestEvent, RequestState, SetEvent, SetState
from gateway.store import StaleStateError, Store, hash_member_id, lockstats
from gateway.store.repos import base
from gateway.store.repos.envelopes import NewSet

pytest_plugins = ["tests.store_fixtures"]

KEY = b"test-hmac-key"


def _request(tx: Any, tracking: str) -> int:
    row = tx.requests.insert(
        tracking_number=tracking,
        kind="270",
        payer_id="PAYER1",
        partner="acme",
        member_id_hash=hash_member_id("M123", KEY),
        payload={"n": tracking},
    )
    return int(row.id)


def _file(tx: Any, name: str, **more: Any) -> Any:
    return tx.files.record(
        direction="out", partner="acme", name=name, sha256="d" * 64, size=1, payload_path="p", **more
    )


def _log(store: Store, entity: str, entity_id: int) -> list[tuple[str | None, str, Any]]:
    with store.read() as tx:
        return [(c.old_state, c.new_state, c.detail) for c in tx.audit.history(entity, entity_id)]


def test_event_log_rows_past_one_statement_keep_their_order_and_details(store: Store) -> None:
    """More event-log rows than one multi-row INSERT carries are written in several, ids in the
    order recorded, every detail and state kept (both dialects)."""
    count = base.ROWS_PER_INSERT * 2 + 5
    with store.begin() as tx:
        rid = _request(tx, "ML-1")
        tx.audit.record_change_rows(
            [("request", rid, "new", "new", {"n": n} if n % 3 else None) for n in range(count)]
        )
    log = _log(store, "request", rid)
    assert log[0] == (None, "new", None)
    assert log[1:] == [("new", "new", {"n": n} if n % 3 else None) for n in range(count)]


def test_details_of_sees_the_transactions_pending_rows_without_writing_them(store: Store) -> None:
    """details_of inside a write transaction includes the changes it recorded and not yet wrote,
    after the written ones, and they are still written once, in order, at the commit."""
    with store.begin() as tx:
        rid = _request(tx, "ML-2")
        tx.audit.record_change_rows([("request", rid, "new", "answered", {"fingerprint": "a"})])
    with store.begin() as tx:
        tx.audit.record_change_rows([("request", rid, "answered", "answered", {"fingerprint": "b"})])
        got = tx.audit.details_of("request", [rid], ["answered"])
        pending = tx.audit._pending  # the row is still waiting for the commit
    assert got == {rid: [{"fingerprint": "a"}, {"fingerprint": "b"}]}
    assert pending is not None
    assert len(pending) == 1
    assert [d for _, _, d in _log(store, "request", rid)] == [
        None,
        {"fingerprint": "a"},
        {"fingerprint": "b"},
    ]


def test_a_file_recorded_with_its_first_steps_is_stored_moved_and_logs_every_step(store: Store) -> None:
    """files.record(then=...): the row in the last state reached, one log row per step with its
    detail, as recording it and moving it step by step would have left them."""
    with store.begin() as tx:
        moved = _file(
            tx, "a", state=FileState.QUEUED, detail={"r": 1}, then=[(FileEvent.START_UPLOAD, {"try": 1})]
        )
    with store.read() as tx:
        assert tx.files.get(moved.id).state == FileState.UPLOADING
    assert moved.state == FileState.UPLOADING
    assert _log(store, "file", moved.id) == [(None, "queued", {"r": 1}), ("queued", "uploading", {"try": 1})]


def test_a_file_recorded_with_an_illegal_step_is_not_written(store: Store) -> None:
    """files.record(then=...) with a step the lifecycle does not allow raises before any row is written."""
    with pytest.raises(IllegalTransitionError), store.begin() as tx:
        _file(tx, "b", state=FileState.QUEUED, then=[(FileEvent.DELIVER, None)])
    with store.read() as tx:
        assert tx.files.find_by_sha256("d" * 64, within=timedelta(days=1)) is None


def test_a_recorded_request_is_claimed_and_queued_in_one_move(store: Store) -> None:
    """requests.claim_recorded: a ``new`` request of the partner ends ``queued`` under the lease,
    its claim logged with the node; one of another partner or state is not touched."""
    until = store.clock() + timedelta(minutes=5)
    with store.begin() as tx:
        rid = _request(tx, "ML-3")
        other = _request(tx, "ML-4")
        assert tx.requests.claim_recorded(
            rid, partner="acme", owner="node-1", until=until, then=RequestEvent.QUEUE
        )
        assert not tx.requests.claim_recorded(
            other, partner="else", owner="node-1", until=until, then=RequestEvent.QUEUE
        )
        assert not tx.requests.claim_recorded(
            rid, partner="acme", owner="node-1", until=until, then=RequestEvent.QUEUE
        )
    with store.read() as tx:
        row, untouched = tx.requests.get(rid), tx.requests.get(other)
    assert (row.state, untouched.state) == (RequestState.QUEUED, RequestState.NEW)
    assert _log(store, "request", rid) == [(None, "new", None), ("new", "batching", {"node": "node-1"})]


def test_a_move_from_a_known_state_moves_only_from_that_state(store: Store) -> None:
    """requests.move_from: moved and logged when the request is in the state given; False, nothing
    written or logged, when it is not."""
    with store.begin() as tx:
        rid = _request(tx, "ML-5")
        assert not tx.requests.move_from(rid, RequestEvent.SEND, expect=RequestState.QUEUED)
        tx.requests.transition("ML-5", RequestEvent.CLAIM_FOR_BATCH)
        tx.requests.transition("ML-5", RequestEvent.QUEUE)
        due = store.clock() + timedelta(hours=1)
        assert tx.requests.move_from(
            rid, RequestEvent.SEND, expect=RequestState.QUEUED, due_at=due, detail={"d": 1}
        )
    with store.read() as tx:
        row = tx.requests.get(rid)
    assert (row.state, row.due_at) == (RequestState.SENT, due)
    assert [n for _, n, _ in _log(store, "request", rid)] == ["new", "batching", "queued", "sent"]
    assert _log(store, "request", rid)[-1][2] == {"d": 1}


def test_a_move_from_reading_writes_what_move_from_writes_and_returns_the_rows_reason_and_payload(
    store: Store,
) -> None:
    """requests.move_from_reading: the same state, due time and log as move_from, and the reason and
    payload the row holds (as ``get`` reads them, sealed or not); None, nothing written or logged,
    when the request is in another state; a later move at a known time keeps that time."""
    with store.begin() as tx:
        rid = _request(tx, "ML-6")
        assert tx.requests.move_from_reading(rid, RequestEvent.SEND, expect=RequestState.QUEUED) is None
        tx.requests.transition("ML-6", RequestEvent.CLAIM_FOR_BATCH)
        tx.requests.transition("ML-6", RequestEvent.QUEUE)
        before = tx.requests.get(rid)
        due = store.clock() + timedelta(hours=1)
        got = tx.requests.move_from_reading(rid, RequestEvent.SEND, expect=RequestState.QUEUED, due_at=due)
        assert got == (before.reason, before.payload)
        at = store.clock() + timedelta(seconds=3)
        assert tx.requests.move_known([(rid, RequestState.SENT, RequestEvent.ANSWER)], at=at) == ["answered"]
    with store.read() as tx:
        row = tx.requests.get(rid)
    assert (row.state, row.due_at, row.updated_at) == (RequestState.ANSWERED, due, at)
    assert [n for _, n, _ in _log(store, "request", rid)][:4] == ["new", "batching", "queued", "sent"]


def _sets(tx: Any, count: int) -> list[int]:
    f = _file(tx, "s", state=FileState.QUEUED)
    isa = tx.envelopes.record_interchange(file_id=f.id, control_number=1, sender="ZZ:A", receiver="ZZ:B")
    gs = tx.envelopes.record_group(interchange_id=isa.id, control_number=1, functional_id="HS", version="v")
    new = [
        NewSet(isa.id, gs.id, f"{n:04d}", "270", (f"T-{n}",), f"T-{n}", SetState.QUEUED) for n in range(count)
    ]
    return list(tx.envelopes.record_sets(new))


def test_sets_moved_from_a_known_state_all_or_none(store: Store) -> None:
    """envelopes.transition_sets_from: every set moved and logged from the state given; False when
    none is in it; StaleStateError when only some are."""
    with store.begin() as tx:
        ids = _sets(tx, 3)
        assert tx.envelopes.transition_sets_from(ids[:2], SetEvent.SEND, expect=SetState.QUEUED)
        assert not tx.envelopes.transition_sets_from(ids[:2], SetEvent.SEND, expect=SetState.QUEUED)
    with store.read() as tx:
        assert [tx.envelopes.get_set(i).state for i in ids] == ["sent", "sent", "queued"]
    assert [n for _, n, _ in _log(store, "transaction_set", ids[0])] == ["queued", "sent"]
    with pytest.raises(StaleStateError), store.begin() as tx:
        tx.envelopes.transition_sets_from(ids, SetEvent.SEND, expect=SetState.QUEUED)
    with store.read() as tx:
        assert tx.envelopes.get_set(ids[2]).state == SetState.QUEUED  # rolled back


def test_lock_stats_count_each_write_transactions_statements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With X12GW_STORE_LOCK_STATS set, each write transaction appends one line with its statement
    and row counts (and, traced, its statements); reads add none; off, nothing is written."""
    path = tmp_path / "stats.txt"
    with Store.open(f"sqlite:///{tmp_path / 'off.db'}") as store, store.begin() as tx:
        _request(tx, "LS-0")
    assert not path.exists()
    monkeypatch.setenv(lockstats.ENV, str(path))
    monkeypatch.setenv(lockstats.TRACE_ENV, "1")
    with Store.open(f"sqlite:///{tmp_path / 'on.db'}") as store:
        start = path.stat().st_size if path.exists() else 0
        with store.begin() as tx:
            rid = _request(tx, "LS-1")  # INSERT request; its log row waits for the commit
            tx.audit.record_change_rows([("request", rid, "new", "new", None)] * 2)
        with store.read() as tx:
            tx.requests.get(rid)
        totals = lockstats.read(str(path), start)
        traced = path.read_text()[start:]
    assert (totals.transactions, totals.statements, totals.rows) == (1, 2, 2)
    assert "INSERT INTO state_changes" in traced
