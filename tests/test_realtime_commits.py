"""The commits of a real-time API call, and what a crash between them leaves.

A call to a real-time partner is recorded, queued and its first attempt started in ONE commit
(``apirecord.submit(queue=...)``); the answer is recorded and processed in ONE commit
(``post_attempt(answer=...)``); only the ``delivered`` marking follows the result files. Each test
stops the call at one point (an exception where a crash would stop the process), then lets the
run loop finish, and checks with the real-time exactly-once audit that nothing was lost or doubled.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import func, select

from gateway.lifecycle import FileState, RequestState
from gateway.realtime import exchange, numbers
from gateway.realtime.dispatch import QueueNow, queue_now, rules_for
from gateway.realtime.exchange import Processing
from gateway.runtime.runner import Gateway
from gateway.stages import inbound
from gateway.stages.batching import Built
from gateway.store import RequestRow, Tx
from gateway.store import schema as s
from gateway.web import apiauth, apirecord
from tests import exactly_once
from tests.api_support import Api, sample, serving
from tests.core_support import request_state
from transactions.requests_json import request_from_obj

if TYPE_CHECKING:
    from gateway.realtime.exchange import Attempt
    from gateway.runtime.context import Context
    from tests.core_support import CoreRig

pytest_plugins = ["tests.core_fixtures"]

REF = "RT-COMMIT-1"


class PowerCutError(Exception):
    """Where a crash would stop the process: raised at a chosen point of a call."""


def _body() -> dict[str, Any]:
    doc = sample("270-subscriber") | {"trace_number": REF}
    doc["subscriber"] = {**doc["subscriber"], "member_id": "ZZM900000001"}
    return doc


def _count(ctx: Context, table: Any) -> int:
    with ctx.store.read() as tx:
        return int(tx.conn.execute(select(func.count()).select_from(table)).scalar_one())


def _submit(ctx: Context, key: str | None, queue: Any) -> apirecord.Submission:
    """Record one call as the API does (its body, checked request and partner), queued by ``queue``."""
    client, _ = apiauth.add_client(ctx.store, f"billing-{_count(ctx, s.api_clients)}", ("eligibility:write",))
    body = _body()
    req = request_from_obj({**body, "type": "270"})
    raw = json.dumps(body).encode()
    return apirecord.submit(ctx, client, raw, req, "acme", idempotency_key=key, budget=15.0, queue=queue)


def _audit(ctx: Context, received: list[bytes], *, retransmissions: bool = False) -> list[str]:
    return exactly_once.audit_realtime(
        ctx.store, ctx.config.folders, received, {REF: "270"}, retransmissions=retransmissions
    )


def _cycle_until_answered(ctx: Context, later: bool = False) -> None:
    """Real run-loop cycles (the clock two hours on with ``later``: any retry interval has passed)."""
    if later:
        now = ctx.clock
        ctx.clock = lambda: now() + timedelta(hours=2)
    gateway = Gateway(ctx)
    for _ in range(50):
        with ctx.store.read() as tx:
            rows = tx.requests.query(limit=10)
            files = tx.files.query(state=FileState.PROCESSED, direction="in", limit=10)
        if rows and all(r.state == RequestState.ANSWERED for r in rows) and not files:
            return
        gateway.cycle()
    raise AssertionError("the run loop did not answer the request")


def test_a_crash_before_the_calls_one_commit_leaves_nothing_and_the_retry_is_answered_once(
    rig: CoreRig,
) -> None:
    """The call's file, request, idempotency record, claim, outbound file and first attempt are one
    commit: stopped just before it, nothing of the call is in the store and nothing was sent; the
    client's retry under the same Idempotency-Key is answered (200), one request, one POST."""
    server = rig.server()
    ctx = rig.context(server)

    class QueueThenCrash(QueueNow):
        def record(self, tx: Tx, row: RequestRow, built: Built) -> Attempt | None:
            assert super().record(tx, row, built) is not None  # queued and started, not yet committed
            raise PowerCutError

    with pytest.raises(PowerCutError):
        _submit(ctx, "key-1", QueueThenCrash(ctx, ctx.config.partner("acme")))
    assert [_count(ctx, t) for t in (s.requests, s.api_requests, s.files, s.interchanges)] == [0, 0, 0, 0]
    _, key = apiauth.add_client(ctx.store, "billing", ("eligibility:write",))
    assert key is not None
    with serving(ctx.config) as port:
        api = Api("127.0.0.1", port)
        status, _, doc = api.call(
            "POST", "/eligibility", _body(), key=key, headers={"Idempotency-Key": "key-1"}
        )
    assert status == 200, doc
    assert doc["state"] == RequestState.ANSWERED
    assert _count(ctx, s.requests) == 1
    assert _audit(ctx, [r.payload for r in server.received]) == []


def test_a_crash_after_the_calls_commit_before_its_post_is_sent_by_the_run_loop(rig: CoreRig) -> None:
    """Stopped after the call's commit, before the POST: the request is ``queued`` and its file
    ``uploading`` with the attempt recorded; the run loop sends it (once the retry interval has
    passed) and stores the answer: one POST, one answer, one result."""
    server = rig.server()
    ctx = rig.context(server)
    sub = _submit(ctx, "key-2", queue_now(ctx, ctx.config.partner("acme")))
    assert sub.started is not None
    assert sub.request_id is not None
    assert request_state(ctx, sub.request_id) == RequestState.QUEUED
    with ctx.store.read() as tx:
        assert tx.files.get(sub.started.row.id).state == FileState.UPLOADING
        history = [c.new_state for c in tx.audit.history("request", sub.request_id)]
    assert history == ["new", "batching", "queued"]
    assert server.received == []
    _cycle_until_answered(ctx, later=True)
    assert len(server.received) == 1
    assert _audit(ctx, [r.payload for r in server.received]) == []


def test_a_crash_after_the_answers_commit_before_its_delivery_is_delivered_by_the_run_loop(
    rig: CoreRig,
) -> None:
    """The answer is recorded and processed in one commit (its file ``downloaded -> processing ->
    processed`` with the outbound file ``sent`` and ``acknowledged`` and the request ``answered``);
    stopped before the ``delivered`` marking, the run loop's recovery rewrites the result and
    delivers the file: one POST, one answer, one result."""
    server = rig.server()
    ctx = rig.context(server)
    partner = ctx.config.partner("acme")
    sub = _submit(ctx, None, queue_now(ctx, partner))
    assert sub.started is not None

    def crash(_doc: dict[str, Any]) -> None:
        raise PowerCutError

    with pytest.raises(PowerCutError):
        exchange.post_attempt(ctx, partner, sub.started, answer=Processing(rules_for(ctx), on_document=crash))
    assert sub.request_id is not None
    assert request_state(ctx, sub.request_id) == RequestState.ANSWERED
    with ctx.store.read() as tx:
        (answer,) = tx.files.query(direction="in", partner="acme", limit=10)
        history = [c.new_state for c in tx.audit.history("file", answer.id)]
        outbound = [c.new_state for c in tx.audit.history("file", sub.started.row.id)]
    assert history == ["downloaded", "processing", "processed"]
    assert outbound == ["queued", "uploading", "sent", "acknowledged"]
    _cycle_until_answered(ctx)
    with ctx.store.read() as tx:
        assert tx.files.get(answer.id).state == FileState.DELIVERED
    assert len(server.received) == 1
    assert _audit(ctx, [r.payload for r in server.received]) == []


def test_an_answer_to_quarantine_is_recorded_and_set_aside_in_two_steps(rig: CoreRig) -> None:
    """An answer that cannot be stored at once (here: no interchange in it) is not processed in the
    transaction recording it: it is recorded ``downloaded`` and claimed for the inbound stage's own
    processing (which quarantines it with its reason); the outbound file is finished all the same."""
    server = rig.server(not_x12=1)
    ctx = rig.context(server)
    partner = ctx.config.partner("acme")
    sub = _submit(ctx, None, queue_now(ctx, partner))
    assert sub.started is not None
    sent = exchange.post_attempt(ctx, partner, sub.started, answer=Processing(rules_for(ctx)))
    assert sent.outcome == "answered"
    assert sent.claimed is not None
    with ctx.store.read() as tx:
        assert tx.files.get(sub.started.row.id).state == FileState.ACKNOWLEDGED
        assert [c.new_state for c in tx.audit.history("file", sent.claimed.id)] == [
            "downloaded",
            "processing",
        ]
    inbound.process_claimed(ctx, sent.claimed, rules_for(ctx))  # what send_realtime's delivery does next
    with ctx.store.read() as tx:
        assert tx.files.get(sent.claimed.id).state == FileState.QUARANTINED
    assert len(server.received) == 1


def test_a_calls_numbers_come_from_blocks_and_are_never_handed_out_twice(rig: CoreRig) -> None:
    """Tracking and control numbers for real-time calls are taken BLOCK at a time in one commit: the
    calls of one block get consecutive numbers, a restart leaves the rest of its block as a gap, and
    neither collides with what the store hands out to anyone else (the run loop's batches)."""
    ctx = rig.context(rig.server())
    partner = ctx.config.partner("acme")
    first = [numbers.take(ctx, partner) for _ in range(3)]
    numbers.drop_blocks()  # the process ends: the rest of its block is never used
    second = [numbers.take(ctx, partner) for _ in range(3)]
    taken = first + second
    assert [n.isa for n in first] == [first[0].isa + i for i in range(3)]
    assert second[0].isa == first[0].isa + numbers.BLOCK  # a gap, never a reuse
    ident = ctx.config.identity
    pair = (f"{ident.isa_qualifier}:{ident.isa_id}", f"{partner.isa_qualifier}:{partner.isa_id}")
    others = list(ctx.store.allocate_control_numbers(*pair, "ISA13", 5))
    assert len({n.isa for n in taken} | set(others)) == len(taken) + len(others)
    trackings = [n.tracking for n in taken] + ctx.store.new_tracking_numbers(5)
    assert len(set(trackings)) == len(trackings)
    for kind in ("gs", "st"):
        assert len({getattr(n, kind) for n in taken}) == len(taken)
