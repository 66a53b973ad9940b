"""The store's batch operations (a stage's hundred rows in a few statements) against their one-row forms."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import IllegalTransitionError
from gateway.lifecycle import RequestEvent, RequestState, SetEvent, SetState
from gateway.store import DuplicateKeyError, StaleStateError, Store, hash_member_id
from gateway.store.repos import audit, envelopes
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


def _rid(tx: Any, tracking: str) -> int:
    found = tx.requests.id_of(tracking)
    assert found is not None
    return int(found)


def _sent_sets(tx: Any, sets: list[tuple[str, tuple[str, ...], str | None, int | None]]) -> list[int]:
    """Sent 270 sets (control number, traces, BHT03, request id) in one interchange."""
    f = tx.files.record(direction="out", partner="acme", name="o", sha256="b" * 64, size=1, payload_path="p")
    isa = tx.envelopes.record_interchange(file_id=f.id, control_number=9, sender="ZZ:A", receiver="ZZ:B")
    gs = tx.envelopes.record_group(interchange_id=isa.id, control_number=9, functional_id="HS", version="v")
    new = [NewSet(isa.id, gs.id, c, "270", t, b, SetState.QUEUED, r) for c, t, b, r in sets]
    return list(tx.envelopes.record_sets(new))


def test_batched_set_lookups_give_what_one_lookup_per_key_gives(store: Store) -> None:
    """requests_of_traces / requests_of_bht03s: per key, the request ids requests_of_sets gives (newest
    sets first, at most ``limit`` sets, sets without a request skipped after the limit)."""
    with store.begin() as tx:
        tx.requests.insert_many([_fields(f"L-{n}") for n in range(8)])
        rid = {f"L-{n}": _rid(tx, f"L-{n}") for n in range(8)}
        rows: list[tuple[str, tuple[str, ...], str | None, int | None]] = [
            (f"{n:04d}", ("T-SHARED", f"T-{n}"), "B-SHARED" if n % 2 else f"B-{n}", rid[f"L-{n}"])
            for n in range(8)
        ]
        rows += [("0100", ("T-SHARED",), "B-SHARED", None), ("0101", ("T-1",), None, rid["L-3"])]
        _sent_sets(tx, rows)
        traces = ["T-SHARED", "T-1", "T-5", "T-NONE"]
        bhts = ["B-SHARED", "B-2", "B-NONE"]
        got_t = tx.envelopes.requests_of_traces(traces, set_id="270", limit=5)
        got_b = tx.envelopes.requests_of_bht03s(bhts, set_id="270", limit=5)
        want_t = {t: tx.envelopes.requests_of_sets(trace_number=t, set_id="270", limit=5) for t in traces}
        want_b = {b: tx.envelopes.requests_of_sets(bht03=b, set_id="270", limit=5) for b in bhts}
        assert tx.envelopes.requests_of_traces(["T-1"], set_id="271", limit=5) == {}
    assert got_t == {k: v for k, v in want_t.items() if v}
    assert got_b == {k: v for k, v in want_b.items() if v}
    assert len(got_t["T-SHARED"]) == 4  # five newest sets, the newest of them without a request


def test_one_lookup_by_traces_and_bht03s_gives_what_the_two_lookups_give(store: Store) -> None:
    """requests_of_keys: in one statement, exactly (requests_of_traces, requests_of_bht03s), including
    with either list empty, another set kind, and sets shared by a trace and a BHT03."""
    with store.begin() as tx:
        tx.requests.insert_many([_fields(f"K-{n}") for n in range(8)])
        rid = {f"K-{n}": _rid(tx, f"K-{n}") for n in range(8)}
        rows: list[tuple[str, tuple[str, ...], str | None, int | None]] = [
            (f"{n:04d}", ("T-SHARED", f"T-{n}", "T-SHARED"), "B-SHARED" if n % 2 else f"B-{n}", rid[f"K-{n}"])
            for n in range(8)
        ]
        rows += [("0100", ("T-SHARED",), "B-SHARED", None), ("0101", ("T-1",), "T-1", rid["K-3"])]
        _sent_sets(tx, rows)
        cases = [
            (["T-SHARED", "T-1", "T-5", "T-NONE"], ["B-SHARED", "B-2", "B-NONE", "T-1"]),
            (["T-SHARED"], []),
            ([], ["B-SHARED"]),
            ([], []),
            (["T-2"], ["B-2"]),
        ]
        for set_id in ("270", "271"):
            for limit in (1, 5):
                for traces, bhts in cases:
                    want = (
                        tx.envelopes.requests_of_traces(traces, set_id=set_id, limit=limit) if traces else {},
                        tx.envelopes.requests_of_bht03s(bhts, set_id=set_id, limit=limit) if bhts else {},
                    )
                    got = tx.envelopes.requests_of_keys(traces, bhts, set_id=set_id, limit=limit)
                    assert got == want, (set_id, limit, traces, bhts)


def test_details_of_gives_each_entitys_logged_details_in_order(store: Store) -> None:
    """details_of: for many entities at once, the non-empty details of their changes into the given
    states that history() shows, oldest first."""
    trackings = ["H-1", "H-2", "H-3"]
    with store.begin() as tx:
        tx.requests.insert_many([_fields(t) for t in trackings])
        ids = [_rid(tx, t) for t in trackings]
        tx.requests.transition_many(trackings[:2], RequestEvent.CLAIM_FOR_BATCH, detail={"a": 1})
        tx.audit.record_change_rows([("request", ids[0], "batching", "batching", {"fingerprint": "f"})])
    states = ["batching", "answered"]
    with store.read() as tx:
        got = tx.audit.details_of("request", ids, states)
        want = {
            i: [h.detail for h in tx.audit.history("request", i) if h.detail and h.new_state in states]
            for i in ids
        }
        assert tx.audit.details_of("request", ids, ["new"]) == {i: [] for i in ids}
    assert got == want
    assert got[ids[0]] == [{"a": 1}, {"fingerprint": "f"}]


def test_upsert_eligibility_many_writes_what_upsert_eligibility_writes(store: Store) -> None:
    """A first outcome is inserted, a later one updates the row; the returned (id, old, new) are what
    upsert_eligibility logs; the rows equal those the one-row form leaves."""
    from gateway.store.repos.results import EligibilityWrite  # noqa: PLC0415

    with store.begin() as tx:
        tx.requests.insert_many([_fields(t) for t in ("E-1", "E-2", "E-3", "E-4")])
        ids = {t: _rid(tx, t) for t in ("E-1", "E-2", "E-3", "E-4")}
        tx.results.upsert_eligibility(
            tracking_number="E-1", status="active", record={"v": 0}, request_id=ids["E-1"]
        )
        tx.results.upsert_eligibility(
            tracking_number="E-3", status="active", record={"v": 0}, request_id=ids["E-3"]
        )
        current = tx.results.eligibility_of(["E-1", "E-2"], for_update=True)
        writes = [
            EligibilityWrite(
                t, ids[t], "inactive", {"v": 1}, None, None, c.id if c else None, c.status if c else None
            )
            for t in ("E-1", "E-2")
            for c in [current.get(t)]
        ]
        changes = tx.results.upsert_eligibility_many(writes)
        tx.results.upsert_eligibility(
            tracking_number="E-3", status="inactive", record={"v": 1}, request_id=ids["E-3"]
        )
        tx.results.upsert_eligibility(
            tracking_number="E-4", status="inactive", record={"v": 1}, request_id=ids["E-4"]
        )
    with store.read() as tx:
        rows = tx.results.eligibility_of(["E-1", "E-2", "E-3", "E-4"])
    assert changes == [(rows["E-1"].id, "active", "inactive"), (rows["E-2"].id, None, "inactive")]

    def shape(t: str) -> tuple[Any, ...]:
        r = rows[t]
        return (r.request_id == ids[t], r.status, r.record, r.effective_from, r.effective_to)

    assert (shape("E-1"), shape("E-2")) == (shape("E-3"), shape("E-4"))


def test_move_known_checks_every_move_before_writing_any(store: Store) -> None:
    """move_known moves each request from the state given; one illegal move writes nothing."""
    with store.begin() as tx:
        tx.requests.insert_many([_fields("K-1"), _fields("K-2")])
        ids = [_rid(tx, "K-1"), _rid(tx, "K-2")]
        assert tx.requests.move_known([(ids[0], "new", RequestEvent.CLAIM_FOR_BATCH)]) == ["batching"]
    with pytest.raises(IllegalTransitionError), store.begin() as tx:
        tx.requests.move_known(
            [(ids[1], "new", RequestEvent.CLAIM_FOR_BATCH), (ids[0], "batching", RequestEvent.ANSWER)]
        )
    with store.read() as tx:
        assert [tx.requests.get(i).state for i in ids] == ["batching", "new"]


def test_batch_inserts_after_earlier_rows_return_each_rows_own_id(store: Store) -> None:
    """insert_ids (record_sets, insert_many) on top of earlier rows and transactions: each returned id
    is the row made from the values at that position."""
    with store.begin() as tx:
        first = _sent_sets(tx, [(f"A{n}", (), None, None) for n in range(3)])
    with store.begin() as tx:
        second = _sent_sets(tx, [(f"B{n}", (), None, None) for n in range(40)])
        tx.requests.insert_many([_fields(f"I-{n}") for n in range(30)])
    with store.read() as tx:
        made = [tx.envelopes.get_set(i).control_number for i in first + second]
        ids = [_rid(tx, f"I-{n}") for n in range(30)]
    assert made == [f"A{n}" for n in range(3)] + [f"B{n}" for n in range(40)]
    assert _states(store, "request", ids) == [["new"]] * 30  # each request's first state logged under its id


def test_claiming_many_requests_moves_logs_and_returns_each_in_full(store: Store) -> None:
    """claim of several requests: each moves to batching under the lease with its own event-log row
    (node in the detail), and comes back whole (payload included), oldest first."""
    trackings = [f"C-{n}" for n in range(5)]
    with store.begin() as tx:
        tx.requests.insert_many([_fields(t) for t in trackings])
        until = tx.now()
        rows = tx.requests.claim(partner="acme", owner="node-1", until=until, limit=4)
    assert [(r.tracking_number, r.state, r.lease_owner, r.payload) for r in rows] == [
        (t, "batching", "node-1", {"n": t}) for t in trackings[:4]
    ]
    with store.read() as tx:
        logged = [[(h.new_state, h.detail) for h in tx.audit.history("request", r.id)] for r in rows]
    assert logged == [[("new", None), ("batching", {"node": "node-1"})]] * 4


def test_heads_give_the_fields_of_get_many_without_the_payload(store: Store) -> None:
    """heads: id, tracking number, kind and state of the requests get_many reads, in the same order."""
    with store.begin() as tx:
        tx.requests.insert_many([_fields(t) for t in ("G-1", "G-2", "G-3")])
        tx.requests.transition("G-2", RequestEvent.CLAIM_FOR_BATCH)
        ids = [_rid(tx, t) for t in ("G-3", "G-1", "G-2")] + [10**9]
        heads = tx.requests.heads(ids)
        full = tx.requests.get_many(ids)
    assert [(h.id, h.tracking_number, h.kind, h.state) for h in heads] == [
        (r.id, r.tracking_number, r.kind, r.state) for r in full
    ]
    assert [h.state for h in heads] == ["new", "batching", "new"]


def test_record_sets_in_slices_and_early_log_flushes_keep_ids_traces_and_log_order(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file's sets recorded a slice at a time, with the transaction's pending event-log rows written
    early once there are enough of them: the same ids in order, traces and log rows as one batch."""
    monkeypatch.setattr(envelopes, "SETS_AT_ONCE", 3)
    monkeypatch.setattr(audit, "PENDING_LIMIT", 4)
    with store.begin() as tx:
        f = tx.files.record(
            direction="in", partner="acme", name="s", sha256="c" * 64, size=1, payload_path="p"
        )
        isa = tx.envelopes.record_interchange(file_id=f.id, control_number=2, sender="ZZ:A", receiver="ZZ:B")
        gs = tx.envelopes.record_group(
            interchange_id=isa.id, control_number=2, functional_id="HB", version="v"
        )
        new = [
            NewSet(isa.id, gs.id, f"{n:04d}", "271", (f"T-{n}",), None, SetState.RECEIVED)
            for n in range(1, 11)
        ]
        ids = tx.envelopes.record_sets(new)
        tx.envelopes.transition_sets(ids[::2], SetEvent.FIND_NO_REQUEST)
    with store.read() as tx:
        rows = tx.envelopes.sets_of_group(gs.id)
        log = tx.audit.list_changes(entity_type="transaction_set", limit=100)
    assert ids == sorted(ids)
    assert len(set(ids)) == 10
    assert [(r.id, r.control_number, r.trace_numbers) for r in rows] == [
        (i, f"{n:04d}", (f"T-{n}",)) for i, n in zip(ids, range(1, 11), strict=True)
    ]
    oldest_first = [(c.entity_id, c.new_state) for c in reversed(log)]
    assert oldest_first == [(i, "received") for i in ids] + [(i, "unmatched") for i in ids[::2]]


def test_upsert_eligibility_many_returns_each_new_rows_id_alone_or_together(store: Store) -> None:
    """One new outcome (its id from RETURNING) and several at once (read back by tracking number):
    each returned id is the row of that tracking number, with no earlier status."""
    from gateway.store.repos.results import EligibilityWrite  # noqa: PLC0415

    names = ("N-1", "N-2", "N-3", "N-4")
    with store.begin() as tx:
        tx.requests.insert_many([_fields(t) for t in names])
        ids = {t: _rid(tx, t) for t in names}

        def new(t: str) -> EligibilityWrite:
            return EligibilityWrite(t, ids[t], "active", {"t": t}, None, None, None, None)

        alone = tx.results.upsert_eligibility_many([new("N-1")])
        together = tx.results.upsert_eligibility_many([new(t) for t in names[1:]])
    with store.read() as tx:
        rows = tx.results.eligibility_of(list(names))
    assert alone + together == [(rows[t].id, None, "active") for t in names]
    assert [rows[t].record for t in names] == [{"t": t} for t in names]
