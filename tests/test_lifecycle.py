"""The lifecycle table (gateway.lifecycle), walked whole: alone and through the store (both backends)."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import Table, update

from gateway import lifecycle
from gateway.errors import IllegalTransitionError, StaleStateError
from gateway.lifecycle import (
    EVENTS,
    INITIAL,
    STATES,
    TABLE,
    Entity,
    FileEvent,
    FileState,
    RequestEvent,
    RequestState,
    SetEvent,
    SetState,
)
from gateway.store import Store, Tx, hash_member_id
from gateway.store import schema as s

pytest_plugins = ["tests.store_fixtures"]

SHA = "c" * 64
K = TypeVar("K")


def _pairs(entity: Entity) -> list[tuple[str, str]]:
    return [(str(state), str(event)) for state in STATES[entity] for event in EVENTS[entity]]


@pytest.mark.parametrize("entity", list(Entity))
def test_every_pair_is_either_a_listed_move_or_refused(entity: Entity) -> None:
    """For every (state, event) of an entity, ``target`` returns the table's state or raises a typed,
    PHI-free error naming the entity, the state and the event."""
    for state, event in _pairs(entity):
        if (entity, state, event) in TABLE:
            assert lifecycle.target(entity, state, event) == TABLE[(entity, state, event)]
            assert lifecycle.allows(entity, state, event)
            continue
        assert not lifecycle.allows(entity, state, event)
        with pytest.raises(IllegalTransitionError) as info:
            lifecycle.target(entity, state, event)
        assert isinstance(info.value, StaleStateError)
        assert (info.value.entity, info.value.state, info.value.event) == (entity, state, event)
        assert all(word in str(info.value) for word in (str(entity), state, event))


@pytest.mark.parametrize("entity", list(Entity))
def test_the_table_uses_only_its_own_names_and_every_state_is_reachable(entity: Entity) -> None:
    """Every move goes between the entity's states on its events; every state can be reached from a
    starting state and every event is used (no dead names in the enums)."""
    moves = {(s_, e): t for (ent, s_, e), t in TABLE.items() if ent == entity}
    states = {str(x) for x in STATES[entity]}
    assert {s_ for s_, _ in moves} | set(moves.values()) <= states
    assert {e for _, e in moves} == {str(x) for x in EVENTS[entity]}
    reached = set(INITIAL[entity])
    while True:
        more = {t for (s_, _), t in moves.items() if s_ in reached} - reached
        if not more:
            break
        reached |= more
    assert reached == states


def test_history_names_the_event_of_each_move() -> None:
    """``event_between`` finds the table's event for a logged (old, new) pair, and None for creation."""
    assert lifecycle.event_between("file", "uploading", "renaming") == FileEvent.VERIFY_UPLOAD
    assert lifecycle.event_between("request", "batching", "new") == RequestEvent.RELEASE
    assert lifecycle.event_between("file", None, "claiming") is None


def test_a_new_row_starts_only_in_an_initial_state() -> None:
    """Creation is not an event: a row that would start half-way through its lifecycle is refused."""
    assert lifecycle.check_initial(Entity.FILE, FileState.QUEUED) == "queued"
    with pytest.raises(IllegalTransitionError):
        lifecycle.check_initial(Entity.FILE, FileState.SENT)
    with pytest.raises(IllegalTransitionError):
        lifecycle.check_initial(Entity.REQUEST, RequestState.ANSWERED)


# ------------------------------------------------------------------------------ through the store


def _force(tx: Tx, table: Table, row_id: int, state: str) -> None:
    """Put a row straight into ``state`` (test set-up only: the store itself never skips the table)."""
    tx.conn.execute(update(table).where(table.c.id == row_id).values(state=state))


def _new_file(tx: Tx) -> int:
    return tx.files.record(direction="in", partner="p", name="f", sha256=SHA, size=1, payload_path=None).id


def _new_request(tx: Tx, n: list[int]) -> str:
    n[0] += 1
    tracking = f"T-{n[0]}"
    tx.requests.insert(
        tracking_number=tracking,
        kind="270",
        payer_id="P",
        partner="p",
        member_id_hash=hash_member_id("M", b"k"),
        payload={},
    )
    return tracking


def _new_set(tx: Tx, file_id: int) -> int:
    ic = tx.envelopes.record_interchange(file_id=file_id, control_number=1, sender="ZZ:A", receiver="ZZ:B")
    return tx.envelopes.record_set(interchange_id=ic.id, group_id=None, control_number="1", set_id="270").id


def _walk(  # noqa: PLR0917 - the parts of one entity's walk
    entity: Entity,
    make: Callable[[], K],
    row_id: Callable[[K], int],
    move: Callable[[K, str], str],
    table: Table,
    tx: Tx,
) -> tuple[int, int]:
    """Try every (state, event) pair on a fresh row; return (moves allowed, moves refused)."""
    allowed = refused = 0
    for state, event in _pairs(entity):
        key = make()
        _force(tx, table, row_id(key), state)
        expected = TABLE.get((entity, state, event))
        if expected is None:
            with pytest.raises(IllegalTransitionError):
                move(key, event)
            refused += 1
        else:
            assert move(key, event) == expected, (state, event)
            allowed += 1
        current = tx.conn.execute(table.select().where(table.c.id == row_id(key))).one().state
        assert current == (expected or state), (state, event)
    return allowed, refused


def _count(entity: Entity) -> tuple[int, int]:
    legal = sum(1 for (e, _s, _ev) in TABLE if e == entity)
    return legal, len(_pairs(entity)) - legal


def test_the_store_walks_the_whole_table(store: Store) -> None:
    """Every legal move of files, requests and transaction sets succeeds through the store, landing in
    the table's state; every other (state, event) pair is refused and leaves the row as it was."""
    counter = [0]
    with store.begin() as tx:
        file_walk = _walk(
            Entity.FILE,
            lambda: _new_file(tx),
            lambda k: k,
            lambda k, e: tx.files.transition(k, FileEvent(e)).state,
            s.files,
            tx,
        )
        assert file_walk == _count(Entity.FILE)
        request_ids: dict[str, int] = {}

        def make_request() -> str:
            tracking = _new_request(tx, counter)
            found = tx.requests.get_by_tracking(tracking)
            assert found is not None
            request_ids[tracking] = found.id
            return tracking

        request_walk = _walk(
            Entity.REQUEST,
            make_request,
            lambda k: request_ids[k],
            lambda k, e: tx.requests.transition(k, RequestEvent(e)).state,
            s.requests,
            tx,
        )
        assert request_walk == _count(Entity.REQUEST)
        holder = _new_file(tx)
        set_walk = _walk(
            Entity.TRANSACTION_SET,
            lambda: _new_set(tx, holder),
            lambda k: k,
            lambda k, e: tx.envelopes.transition_set(k, SetEvent(e)).state,
            s.transaction_sets,
            tx,
        )
        assert set_walk == _count(Entity.TRANSACTION_SET)


def test_records_start_in_initial_states_only(store: Store) -> None:
    """The store refuses to create a file, request or transaction set outside its initial states."""
    with store.begin() as tx, pytest.raises(IllegalTransitionError):
        tx.files.record(
            direction="out",
            partner="p",
            name="f",
            sha256=SHA,
            size=1,
            payload_path=None,
            state=FileState.SENT,
        )
    with store.begin() as tx:
        fid = _new_file(tx)
        ic = tx.envelopes.record_interchange(file_id=fid, control_number=1, sender="ZZ:A", receiver="ZZ:B")
    with store.begin() as tx, pytest.raises(IllegalTransitionError):
        tx.envelopes.record_set(
            interchange_id=ic.id, group_id=None, control_number="1", set_id="270", state=SetState.SENT
        )


def test_claims_and_lease_releases_follow_the_table(store: Store) -> None:
    """Claiming moves rows only from the event's source states; a lease release is the table's
    lease-expired move, logged as such."""
    with store.begin() as tx:
        downloaded = tx.files.record(
            direction="in",
            partner="p",
            name="d",
            sha256=SHA,
            size=1,
            payload_path=None,
            state=FileState.DOWNLOADED,
        )
        _new_file(tx)  # 'received': not a source of start_processing, never claimed
        until = tx.now()
        claimed = tx.files.claim(
            event=FileEvent.START_PROCESSING, direction="in", owner="n1", until=until, limit=10
        )
        assert [(f.id, f.state) for f in claimed] == [(downloaded.id, "processing")]
    with store.begin() as tx:
        assert tx.files.release_expired(dead_owners=["n1"]) == 1
        history = [(c.old_state, c.new_state) for c in tx.audit.history("file", downloaded.id)]
        assert history[-1] == ("processing", "downloaded")
        assert lifecycle.event_between("file", *history[-1]) == FileEvent.LEASE_EXPIRED


def test_enum_values_are_the_stored_strings() -> None:
    """The enums are StrEnums whose values are what the database and ``log show`` carry."""
    for enum in (*STATES.values(), *EVENTS.values()):
        assert issubclass(enum, StrEnum)
        assert all(str(member) == member.value for member in enum)
    assert str(RequestState.NOT_REQUIRED) == "not_required"


def test_readme_shows_the_table_as_it_is() -> None:
    """README's "Lifecycles" section is the table itself (regenerate it with markdown_table())."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    shown = readme.split("<!-- lifecycle-table -->\n", 1)[1].split("\n<!-- /lifecycle-table -->", 1)[0]
    assert shown == lifecycle.markdown_table()


def test_path_reaches_any_state_by_legal_events_only() -> None:
    """``path`` (for set-ups) is the shortest chain of table moves; an unreachable goal is refused."""
    events = lifecycle.path(Entity.REQUEST, RequestState.NEW, RequestState.ANSWERED)
    assert events == ("claim_for_batch", "queue", "answer")
    state: str = RequestState.NEW
    for event in events:
        state = lifecycle.target(Entity.REQUEST, state, event)
    assert state == RequestState.ANSWERED
    assert lifecycle.path(Entity.FILE, FileState.SENT, FileState.SENT) == ()
    with pytest.raises(IllegalTransitionError):
        lifecycle.path(Entity.FILE, FileState.DELIVERED, FileState.CLAIMING)
