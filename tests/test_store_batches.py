"""The store's batch operations (a stage's hundred rows in a few statements) against their one-row forms."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import IllegalTransitionError
from gateway.lifecycle import RequestEvent, RequestState, SetEvent, SetState
from gateway.store import DuplicateKeyError, StaleStateError, Store, hash_member_id
from gateway.store.repos.envelopes import NewSet

pytest_plugins = ["tests.store_fixtures"]

KEY = b"test-hmac-key"


def _fields(tracking: str) -> dict[str, Any]:
    return {
        "tracking_number": tracking,
        "kind": "270",
        "payer_id": "PAYER1",
        "partner": "acme",
        "member_id_hash": hash_member_id("M123", KEY),
        "payload": {"n": tracking},
    }


def _states(store: Store, entity: str, ids: list[int]) -> list[list[str]]:
    with store.read() as tx:
        return [[c.new_state for c in tx.audit.history(entity, i)] for i in ids]


def _ids(store: Store, trackings: list[str]) -> list[int]:
    with store.read() as tx:
        rows = [tx.requests.get_by_tracking(t) for t in trackings]
    return [r.id for r in rows if r is not None]


def test_insert_many_stores_each_request_with_its_first_state_logged(store: Store) -> None:
    """insert_many stores every request with its payload and logs each one's initial state once."""
    trackings = ["B-1", "B-2", "B-3"]
    with store.begin() as tx:
        tx.requests.insert_many([_fields(t) for t in trackings])
    ids = _ids(store, trackings)
    assert len(ids) == 3
    with store.read() as tx:
        assert [tx.requests.get(i).payload for i in ids] == [{"n": t} for t in trackings]
    assert _states(store, "request", ids) == [["new"], ["new"], ["new"]]


def test_insert_many_with_a_known_tracking_number_stores_none(store: Store) -> None:
    """A duplicate tracking number in a batch fails the whole batch: none of its requests is stored."""
    with store.begin() as tx:
        tx.requests.insert_many([_fields("D-1")])
    with pytest.raises(DuplicateKeyError), store.begin() as tx:
        tx.requests.insert_many([_fields("D-2"), _fields("D-1")])
    assert _ids(store, ["D-2"]) == []


def test_transition_many_moves_and_logs_each_request(store: Store) -> None:
    """transition_many moves every request as transition would, sets each due time and logs each move."""
    trackings = ["M-1", "M-2"]
    with store.begin() as tx:
        tx.requests.insert_many([_fields(t) for t in trackings])
        tx.requests.transition_many(trackings, RequestEvent.CLAIM_FOR_BATCH, expect=RequestState.NEW)
        tx.requests.transition_many(trackings, RequestEvent.QUEUE, detail={"file_id": 7})
        due = {t: tx.now() for t in trackings}
        tx.requests.transition_many(trackings, RequestEvent.SEND, due_at=due)
    ids = _ids(store, trackings)
    assert _states(store, "request", ids) == [["new", "batching", "queued", "sent"]] * 2
    with store.read() as tx:
        assert all(tx.requests.get(i).due_at is not None for i in ids)
        assert [c.detail for c in tx.audit.history("request", ids[0])][2] == {"file_id": 7}


def test_transition_many_with_one_stale_request_moves_none(store: Store) -> None:
    """One request not in the expected state fails the batch before anything is written."""
    with store.begin() as tx:
        tx.requests.insert_many([_fields("S-1"), _fields("S-2")])
        tx.requests.transition("S-2", RequestEvent.CLAIM_FOR_BATCH)
    with pytest.raises(StaleStateError), store.begin() as tx:
        tx.requests.transition_many(["S-1", "S-2"], RequestEvent.CLAIM_FOR_BATCH, expect=RequestState.NEW)
    with pytest.raises(IllegalTransitionError), store.begin() as tx:
        tx.requests.transition_many(["S-1", "S-2"], RequestEvent.CLAIM_FOR_BATCH)
    with store.read() as tx:
        assert [tx.requests.get(i).state for i in _ids(store, ["S-1", "S-2"])] == ["new", "batching"]


def test_record_sets_returns_ids_in_order_with_traces_and_logs(store: Store) -> None:
    """record_sets stores each set with its own trace numbers, returns ids in the order given, logs each."""
    with store.begin() as tx:
        f = tx.files.record(
            direction="in", partner="acme", name="i", sha256="a" * 64, size=1, payload_path="p"
        )
        isa = tx.envelopes.record_interchange(file_id=f.id, control_number=1, sender="ZZ:A", receiver="ZZ:B")
        gs = tx.envelopes.record_group(
            interchange_id=isa.id, control_number=1, functional_id="HB", version="v"
        )
        new = [
            NewSet(isa.id, gs.id, f"000{n}", "271", (f"T-{n}", f"T-{n}", "X"), f"B-{n}", SetState.RECEIVED)
            for n in range(1, 4)
        ]
        ids = tx.envelopes.record_sets(new)
        tx.envelopes.transition_sets(ids[:2], SetEvent.FIND_NO_REQUEST)
        tx.envelopes.set_ack_statuses("transaction_set", {ids[0]: "A", ids[2]: "R"})
    with store.read() as tx:
        rows = tx.envelopes.sets_of_group(gs.id)
    assert [r.id for r in rows] == ids
    assert [(r.control_number, r.trace_numbers, r.bht03) for r in rows] == [
        (f"000{n}", (f"T-{n}", "X"), f"B-{n}") for n in range(1, 4)
    ]
    assert [r.ack_status for r in rows] == ["A", None, "R"]
    assert _states(store, "transaction_set", ids) == [["received", "unmatched"]] * 2 + [["received"]]
    assert _states(store, "transaction_set.ack", ids) == [["A"], [], ["R"]]
