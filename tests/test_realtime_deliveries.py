"""The ``delivered`` markings of real-time answers recorded together (``inbound.Deliveries``): a call
alone records its own before it returns; one that finishes while another call is storing its answer
leaves it to that call's answer transaction (or to the last call out); a crash before it is recorded
leaves the file ``processed`` and the run loop delivers it, the result rewritten byte for byte."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.lifecycle import FileState
from gateway.realtime.dispatch import send_realtime
from gateway.runtime.runner import Gateway
from gateway.stages.inbound import DELIVERIES, Deliveries, record_delivered
from tests import exactly_once
from tests.core_support import drop_request

if TYPE_CHECKING:
    from gateway.runtime.context import Context
    from tests.core_support import CoreRig

pytest_plugins = ["tests.core_fixtures"]

BUDGET = 15.0  # generous: nothing here passes or fails on wall time


def _answers(ctx: Context) -> list[tuple[int, str]]:
    """The answers' inbound files (id, state), oldest first."""
    with ctx.store.read() as tx:
        return sorted((f.id, f.state) for f in tx.files.query(direction="in", partner="acme", limit=50))


def _history(ctx: Context, file_id: int) -> list[str]:
    with ctx.store.read() as tx:
        return [c.new_state for c in tx.audit.history("file", file_id)]


def test_a_call_alone_has_its_answer_delivered_before_it_returns(rig: CoreRig) -> None:
    """With no other call storing an answer, the call records its own marking: delivered on return,
    and nothing is left waiting."""
    ctx = rig.context(rig.server())
    rid = drop_request(ctx, "270-subscriber", "RT-DLV-1")
    assert send_realtime(ctx, rid, budget_seconds=BUDGET)
    [(answer, state)] = _answers(ctx)
    assert state == FileState.DELIVERED
    assert _history(ctx, answer) == ["downloaded", "processing", "processed", "delivered"]
    DELIVERIES.enter(ctx)
    assert DELIVERIES.take(ctx) == []
    assert DELIVERIES.leave(ctx, None) == []


def test_a_marking_left_while_another_call_is_inside_commits_with_the_next_answer(rig: CoreRig) -> None:
    """While another call is storing its answer (entered here), a call's marking waits (its file
    ``processed``, its result written); the next call's answer transaction records it; the last
    call out records what is left. Every answer ends delivered once, each request answered once."""
    server = rig.server()
    ctx = rig.context(server)
    first = drop_request(ctx, "270-subscriber", "RT-DLV-2")
    second = drop_request(ctx, "270-subscriber", "RT-DLV-3")
    DELIVERIES.enter(ctx)  # another call, storing its answer
    assert send_realtime(ctx, first, budget_seconds=BUDGET)
    [(one, state)] = _answers(ctx)
    assert state == FileState.PROCESSED  # its results are written; the marking waits
    assert send_realtime(ctx, second, budget_seconds=BUDGET)
    [(_, first_state), (two, second_state)] = _answers(ctx)
    assert (first_state, second_state) == (FileState.DELIVERED, FileState.PROCESSED)
    left = DELIVERIES.leave(ctx, None)  # the other call, last out, records what is left
    assert left == [two]
    with ctx.store.begin() as tx:
        record_delivered(tx, left)
    assert [s for _, s in _answers(ctx)] == [FileState.DELIVERED, FileState.DELIVERED]
    for file_id in (one, two):
        assert _history(ctx, file_id) == ["downloaded", "processing", "processed", "delivered"]
    fed = {"RT-DLV-2": "270", "RT-DLV-3": "270"}
    received = [r.payload for r in server.received]
    assert (
        exactly_once.audit_realtime(ctx.store, ctx.config.folders, received, fed, retransmissions=False) == []
    )


def test_a_marking_lost_in_a_crash_is_delivered_by_the_run_loop_with_the_same_result(rig: CoreRig) -> None:
    """A crash while the marking waits (never recorded) leaves the answer ``processed``; the run
    loop's recovery rewrites its result (the same bytes) and delivers it, once."""
    server = rig.server()
    ctx = rig.context(server)
    rid = drop_request(ctx, "270-subscriber", "RT-DLV-4")
    DELIVERIES.enter(ctx)
    try:
        assert send_realtime(ctx, rid, budget_seconds=BUDGET)
    finally:
        lost = DELIVERIES.leave(ctx, None)  # the process dies: nobody records them
    [(answer, state)] = _answers(ctx)
    assert (lost, state) == ([answer], FileState.PROCESSED)
    [result] = ctx.config.folders.outbox.glob("*.json")
    before = result.read_bytes()
    result.unlink()
    Gateway(ctx).cycle()
    assert _answers(ctx) == [(answer, FileState.DELIVERED)]
    assert result.read_bytes() == before
    received = [r.payload for r in server.received]
    audit = exactly_once.audit_realtime(
        ctx.store, ctx.config.folders, received, {"RT-DLV-4": "270"}, retransmissions=False
    )
    assert audit == []


def test_markings_taken_by_a_transaction_that_failed_wait_again() -> None:
    """``put_back`` returns taken markings; only the last call out gets them, each once."""

    class Ctx:
        store = object()

    ctx: Context = Ctx()  # type: ignore[assignment]
    marks = Deliveries()
    marks.enter(ctx)
    marks.enter(ctx)
    assert marks.leave(ctx, 7) == []  # another call is still inside
    taken = marks.take(ctx)
    assert taken == [7]
    marks.put_back(ctx, taken)  # its transaction rolled back
    assert marks.leave(ctx, 8) == [7, 8]
    marks.enter(ctx)
    assert marks.leave(ctx, None) == []
