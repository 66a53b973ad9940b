"""Kept-alive CAQH CORE connections: calls to one partner share a TLS connection, and a connection
the payer dropped while it sat idle is replaced without losing or doubling the call."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.lifecycle import RequestState
from gateway.realtime.dispatch import send_realtime
from gateway.runtime.context import Context
from gateway.transport import core_client
from tests.core_support import CoreRig, drop_request, request_state

pytest_plugins = ["tests.core_fixtures"]

BUDGET = 15.0  # generous: the tests pin what was stored and sent, never the time it took


@pytest.fixture(autouse=True)
def fresh_links() -> Iterator[None]:
    """No connection kept by an earlier test (the pool is per process)."""
    core_client.LINKS.clear()
    yield
    core_client.LINKS.clear()


def _send(ctx: Context, reference: str) -> int:
    rid = drop_request(ctx, "270-subscriber", reference)
    assert send_realtime(ctx, rid, budget_seconds=BUDGET) is True
    assert request_state(ctx, rid) == RequestState.ANSWERED
    return rid


def _attempts(ctx: Context) -> list[dict[str, Any]]:
    """The details of every recorded HTTP attempt's outcome (``uploading -> sent``)."""
    with ctx.store.read() as tx:
        changes = tx.audit.list_changes(entity_type="file", limit=1000)
    return [c.detail for c in changes if c.detail and "http_status" in c.detail]


def test_two_calls_to_a_partner_share_one_kept_alive_connection(rig: CoreRig) -> None:
    """The second call rides on the first call's TLS connection: the payer accepts one connection for
    both envelopes, and the second attempt records no connect time."""
    server = rig.server(auth="mtls")
    ctx = rig.context(server)
    _send(ctx, "LINK-1")
    _send(ctx, "LINK-2")
    assert len(server.received) == 2
    assert server.connections == 1
    assert sorted(a["connect_ms"] for a in _attempts(ctx))[0] == 0


def test_a_connection_the_payer_closed_while_idle_is_replaced(rig: CoreRig) -> None:
    """The payer closes the connection after its first answer: the next call sees it closed, opens a
    new one and is answered; each envelope reached the payer once."""
    server = rig.server(drop_connection=1)
    ctx = rig.context(server)
    _send(ctx, "DROP-1")
    _send(ctx, "DROP-2")
    assert server.connections == 2
    assert len({r.payload_id for r in server.received}) == len(server.received) == 2


def test_a_dropped_connection_noticed_only_when_written_to_is_retried_once_on_a_new_one(
    rig: CoreRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race the idle check cannot see (the payer closes just as the call starts): the POST on the
    dead connection fails, the same envelope goes once more on a new connection and is answered."""
    monkeypatch.setattr(core_client, "_usable", lambda _conn: True)
    server = rig.server(drop_connection=1)
    ctx = rig.context(server)
    _send(ctx, "RACE-1")
    rid = _send(ctx, "RACE-2")
    assert server.connections == 2
    assert len(server.received) == 2
    with ctx.store.read() as tx:
        failed = [h for h in tx.audit.history("request", rid) if h.detail and "failed" in h.detail]
    assert failed == []


def test_a_stopped_payer_answers_nothing_on_a_kept_connection(rig: CoreRig) -> None:
    """A kept connection does not outlive its server: after the payer stops, the next call fails as
    a connection failure (retryable) and the request stays queued for the run loop."""
    server = rig.server()
    ctx = rig.context(server)
    _send(ctx, "STOP-1")
    server.stop()
    rid = drop_request(ctx, "270-subscriber", "STOP-2")
    assert send_realtime(ctx, rid, budget_seconds=BUDGET) is False
    assert request_state(ctx, rid) == RequestState.QUEUED
    assert len(server.received) == 1


def test_the_simulated_payer_sends_without_nagle_delay(rig: CoreRig) -> None:
    """The simulator's connections run with TCP_NODELAY: its headers and body are two writes, and on a
    kept-alive link Nagle would hold the body for the client's delayed ACK (~40 ms billed to us)."""
    server = rig.server()
    ctx = rig.context(server)
    _send(ctx, "NAGLE-1")
    sockets = list(server._open)
    assert sockets
    assert all(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in sockets)
