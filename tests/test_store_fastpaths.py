"""The store's cheaper paths behave as the ones they replace: event-log rows written at commit,
state changes as one guarded UPDATE (from an expected or a guessed state), a claim by id, and the
sets of a sent file read in one statement."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Table, update

from gateway.lifecycle import (
    TABLE,
    Entity,
    FileEvent,
    FileState,
    RequestEvent,
    RequestState,
    SetEvent,
    SetState,
)
from gateway.store import NotFoundError, StaleStateError, Store, hash_member_id
from gateway.store import schema as s
from gateway.store.repos.envelopes import NewSet

if TYPE_CHECKING:
    from gateway.store import Tx

pytest_plugins = ["tests.store_fixtures"]

SHA = "c" * 64


def _file(tx: Tx, state: FileState = FileState.DOWNLOADED) -> int:
    return tx.files.record(
        direction="in", partner="acme", name="f.x12", sha256=SHA, size=1, payload_path=None, state=state
    ).id


def _request(tx: Tx, tracking: str, partner: str = "acme") -> int:
    return tx.requests.insert(
        tracking_number=tracking,
        kind="270",
        payer_id="PAYER1",
        partner=partner,
        member_id_hash=hash_member_id("M1", b"k"),
        payload={"subscriber": {}},
    ).id


def _put(tx: Tx, table: Table, row_id: int, state: str) -> None:
    """A row set to ``state`` without the lifecycle (a test set-up)."""
    tx.conn.execute(update(table).where(table.c.id == row_id).values(state=state))


def _history(store: Store, entity: str, entity_id: int) -> list[tuple[str | None, str, object]]:
    with store.read() as tx:
        return [(c.old_state, c.new_state, c.detail) for c in tx.audit.history(entity, entity_id)]


def test_event_log_rows_are_written_at_commit_in_order_and_seen_inside(store: Store) -> None:
    """Rows recorded in a write transaction are read back in it (in call order) and kept after the
    commit; a transaction that raises leaves none of its rows."""
    with store.begin() as tx:
        fid = _file(tx)
        tx.audit.record_change(Entity.FILE, fid, FileState.DOWNLOADED, FileState.DOWNLOADED, {"n": 1})
        tx.files.transition(fid, FileEvent.START_PROCESSING)
        assert tx.audit.history(Entity.FILE, fid + 1000) == []  # another entity's: nothing of ours
        inside = [(c.old_state, c.new_state) for c in tx.audit.history(Entity.FILE, fid)]
        tx.audit.record_change(Entity.FILE, fid, FileState.PROCESSING, FileState.PROCESSING, {"n": 2})
    expected = [(None, "downloaded"), ("downloaded", "downloaded"), ("downloaded", "processing")]
    assert inside == expected
    assert [(o, n) for o, n, _ in _history(store, Entity.FILE, fid)] == [
        *expected,
        ("processing", "processing"),
    ]

    def failing() -> None:
        with store.begin() as tx:
            tx.audit.record_change(Entity.FILE, fid, FileState.PROCESSING, FileState.PROCESSING, {"n": 3})
            raise RuntimeError

    with pytest.raises(RuntimeError):
        failing()
    assert len(_history(store, Entity.FILE, fid)) == 4


@pytest.mark.parametrize(
    ("state", "event"),
    sorted(
        (source, event)
        for (entity, source, event) in TABLE
        if entity == Entity.FILE and source in {s.value for s in FileState}
    ),
)
def test_a_guarded_file_move_equals_the_locked_one(store: Store, state: str, event: str) -> None:
    """``transition(expect=S)`` (one guarded UPDATE) gives the row and event-log rows that the locked
    read-then-move gives, for every move of the file lifecycle."""
    with store.begin() as tx:
        guarded, locked = _file(tx), _file(tx)
        for fid in (guarded, locked):
            _put(tx, s.files, fid, state)
    with store.begin() as tx:
        a = tx.files.transition(guarded, FileEvent(event), expect=state, detail={"d": 1})
        b = tx.files.transition(locked, FileEvent(event), detail={"d": 1})
    assert (a.state, a.reason, a.lease_owner) == (b.state, b.reason, b.lease_owner)
    assert _history(store, Entity.FILE, guarded) == _history(store, Entity.FILE, locked)


def test_a_guarded_move_from_the_wrong_state_or_of_no_row_fails_as_before(store: Store) -> None:
    """Stale (another state) and missing rows raise the errors the locked path raises, with nothing
    moved or logged."""
    with store.begin() as tx:
        fid = _file(tx)
    with (
        pytest.raises(StaleStateError, match=r"file \d+ is 'downloaded', expected <FileState.PROCESSING"),
        store.begin() as tx,
    ):
        tx.files.transition(fid, FileEvent.PROCESS, expect=FileState.PROCESSING)
    with pytest.raises(NotFoundError, match="file 999999 not found"), store.begin() as tx:
        tx.files.transition(999999, FileEvent.PROCESS, expect=FileState.PROCESSING)
    with store.read() as tx:
        assert tx.files.get(fid).state == FileState.DOWNLOADED
    assert len(_history(store, Entity.FILE, fid)) == 1


def test_a_wrong_guess_moves_the_request_from_the_state_it_is_in(store: Store) -> None:
    """``transition(was=S)`` with a stale guess falls back to the locked move from the real state
    (the guess changes the statements, never the outcome)."""
    with store.begin() as tx:
        rid = _request(tx, "GW-1")
        _put(tx, s.requests, rid, RequestState.QUEUED)
    with store.begin() as tx:
        moved = tx.requests.transition("GW-1", RequestEvent.SEND, was=RequestState.SENT)
    assert moved.state == RequestState.SENT
    assert _history(store, Entity.REQUEST, rid)[-1][:2] == (RequestState.QUEUED, RequestState.SENT)


def test_a_claim_by_id_takes_only_a_matching_row_in_a_source_state(store: Store) -> None:
    """Claiming one request by id moves it under the lease when it is new and of the partner, and
    takes nothing when the partner differs or it was claimed already."""
    with store.begin() as tx:
        rid = _request(tx, "GW-2")
    until = store.clock()
    with store.begin() as tx:
        assert tx.requests.claim(partner="other", owner="n1", until=until, limit=1, request_id=rid) == []
    with store.begin() as tx:
        rows = tx.requests.claim(partner="acme", owner="n1", until=until, limit=1, request_id=rid)
    assert [(r.id, r.state, r.lease_owner) for r in rows] == [(rid, RequestState.BATCHING, "n1")]
    with store.begin() as tx:
        assert tx.requests.claim(partner="acme", owner="n2", until=until, limit=1, request_id=rid) == []
    assert _history(store, Entity.REQUEST, rid)[-1] == (
        RequestState.NEW,
        RequestState.BATCHING,
        {"node": "n1"},
    )


def test_sets_of_file_lists_every_set_in_file_order(store: Store) -> None:
    """One statement gives what walking the file's interchanges, groups and sets gave."""
    with store.begin() as tx:
        fid = _file(tx, FileState.QUEUED)
        rid = _request(tx, "GW-3")
        for isa in (1, 2):
            ic = tx.envelopes.record_interchange(file_id=fid, control_number=isa, sender="a", receiver="b")
            for gs in (1, 2):
                g = tx.envelopes.record_group(
                    interchange_id=ic.id, control_number=gs, functional_id="HS", version="005010X279A1"
                )
                tx.envelopes.record_sets(
                    [
                        NewSet(
                            interchange_id=ic.id,
                            group_id=g.id,
                            control_number=f"{n:04d}",
                            set_id="270",
                            trace_numbers=("T",),
                            state=SetState.QUEUED,
                            request_id=rid if n == 1 else None,
                        )
                        for n in (1, 2)
                    ]
                )
        walked = [
            (s.id, s.request_id)
            for ic in tx.envelopes.interchanges_of_file(fid)
            for g in tx.envelopes.groups_of_interchange(ic.id)
            for s in tx.envelopes.sets_of_group(g.id)
        ]
        assert tx.envelopes.sets_of_file(fid) == walked
        assert len(walked) == 8
        tx.envelopes.transition_sets([i for i, _ in walked], SetEvent.SEND)


def test_consecutive_file_moves_in_one_update_equal_the_moves_one_by_one(store: Store) -> None:
    """``transition_steps`` (finish the upload, then acknowledge) leaves the row state and event-log
    rows that two ``transition`` calls leave; from the wrong state it moves and logs nothing."""
    steps: list[tuple[FileEvent, dict[str, object] | None]] = [
        (FileEvent.FINISH_UPLOAD, {"a": 1}),
        (FileEvent.ACKNOWLEDGE, {"ack": "A"}),
    ]
    with store.begin() as tx:
        together, apart = _file(tx), _file(tx)
        for fid in (together, apart):
            _put(tx, s.files, fid, FileState.UPLOADING)
    with store.begin() as tx:
        a = tx.files.transition_steps(together, steps, expect=FileState.UPLOADING)
        for n, (event, detail) in enumerate(steps):
            b = tx.files.transition(
                apart, event, expect=FileState.UPLOADING if n == 0 else None, detail=detail
            )
    assert a.state == b.state == FileState.ACKNOWLEDGED
    assert _history(store, Entity.FILE, together) == _history(store, Entity.FILE, apart)
    with pytest.raises(StaleStateError), store.begin() as tx:
        tx.files.transition_steps(together, steps, expect=FileState.UPLOADING)
    assert len(_history(store, Entity.FILE, together)) == 3


@pytest.mark.parametrize(
    ("state", "partner"),
    [
        (RequestState.NEW, "acme"),  # claimed
        (RequestState.NEW, "other"),  # another partner's request: nothing
        (RequestState.BATCHING, "acme"),  # claimed already: nothing
        (RequestState.QUEUED, "acme"),  # not a source state: nothing
    ],
)
def test_the_one_statement_claim_equals_the_locked_read_and_update(
    store: Store, state: str, partner: str
) -> None:
    """SQLite's guarded claim by id (one UPDATE) takes the same row, leaves the same columns and logs
    the same change as the locked read and update it replaces (the reference, kept for PostgreSQL)."""
    from gateway.store.repos import leases  # noqa: PLC0415 - the two paths under test

    if store.engine.dialect.name != "sqlite":
        pytest.skip("the one-statement claim is SQLite's (PostgreSQL skips locked rows instead)")
    paths = {"guarded": leases._claim_guarded, "locked": leases._claim_locked}
    until = store.clock()
    out: dict[str, tuple[object, ...]] = {}
    for name, path in paths.items():
        with store.begin() as tx:
            rid = _request(tx, f"GW-{name}", partner=partner)
            _put(tx, s.requests, rid, state)
        with store.begin() as tx:
            rows = path(
                tx.requests,
                s.requests,
                Entity.REQUEST,
                RequestEvent.CLAIM_FOR_BATCH,
                rid,
                {"partner": "acme"},
                "n1",
                until,
            )
            taken = [(r.state, r.lease_owner, r.lease_until, r.updated_at) for r in rows]
        with store.read() as tx:
            row = tx.requests.get(rid)
        out[name] = (taken, row.state, row.lease_owner, row.lease_until, _history(store, Entity.REQUEST, rid))
    assert out["guarded"] == out["locked"]
