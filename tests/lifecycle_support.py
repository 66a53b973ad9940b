"""Test set-up helpers that move rows through the lifecycle table instead of around it."""

from __future__ import annotations

from sqlalchemy import update

from gateway.lifecycle import Entity, FileEvent, FileState, RequestEvent, RequestState, path
from gateway.store import Tx
from gateway.store import schema as s


def walk_request(tx: Tx, tracking_number: str, state: str) -> None:
    """Move a new request to ``state`` by the lifecycle's shortest path of events (test set-up that
    never skips the table: the store has no way to insert a request half-way through its life)."""
    for event in path(Entity.REQUEST, RequestState.NEW, state):
        tx.requests.transition(tracking_number, RequestEvent(event))


def rewind_request(tx: Tx, tracking_number: str, state: RequestState) -> None:
    """Put an already answered request back into ``state`` (e.g. ``overdue``) for a scenario the demo
    does not produce by itself: a direct row update, deliberately outside the table, recorded in the
    history as a test set-up so a reader of the audit log sees why."""
    row = tx.requests.get_by_tracking(tracking_number)
    assert row is not None
    tx.conn.execute(update(s.requests).where(s.requests.c.id == row.id).values(state=state))
    tx.audit.record_change(Entity.REQUEST, row.id, row.state, state, {"test_setup": True})


def walk_file(tx: Tx, file_id: int, start: FileState, state: FileState) -> None:
    """Move a recorded file from ``start`` to ``state`` by the lifecycle's shortest path of events."""
    for event in path(Entity.FILE, start, state):
        tx.files.transition(file_id, FileEvent(event))
