"""Test set-up helpers that move rows through the lifecycle table instead of around it."""

from __future__ import annotations

from gateway.lifecycle import Entity, RequestEvent, RequestState, path
from gateway.store import Tx


def walk_request(tx: Tx, tracking_number: str, state: str) -> None:
    """Move a new request to ``state`` by the lifecycle's shortest path of events (test set-up that
    never skips the table: the store has no way to insert a request half-way through its life)."""
    for event in path(Entity.REQUEST, RequestState.NEW, state):
        tx.requests.transition(tracking_number, RequestEvent(event))
