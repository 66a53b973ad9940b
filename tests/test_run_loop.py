"""The run loop's parts: every registered stage has the one Stage shape, the runner's per-stage error
handling, partner health transitions (alone and driven by a partner that refuses connections), and
the one outbox writer giving the same bytes whoever calls it."""

from __future__ import annotations

import inspect
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from gateway.lifecycle import FileEvent, FileState, RequestEvent, RequestState
from gateway.runtime.config import parse_config
from gateway.runtime.context import Context
from gateway.runtime.health import PartnerHealth
from gateway.runtime.runner import Gateway, mark_overdue, open_context
from gateway.stages import batching, exchange, inbound, intake, pipeline
from gateway.stages.base import RECOVER, Cycle, Stage
from gateway.stages.outbox import render_result, result_document
from gateway.store import schema
from tests.e2e_harness import REQUESTS
from tests.sftp_support import write_private_key
from tests.test_precert import KEY, OFFICE, RULES_FILE, drop_278, minimal_config

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _free_port() -> int:
    """A local port nobody listens on (bound, then released): connecting to it is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
def make_ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Real contexts (SQLite store, folders) from the pre-cert tests' minimal config plus changes."""
    monkeypatch.setenv("X12GW_MEMBER_HASH_KEY", KEY)
    opened: list[Context] = []

    def make(partner: dict[str, Any] | None = None, **precert: Any) -> Context:
        base = tmp_path / f"gw{len(opened)}"
        data = minimal_config(base, **precert)
        data["partners"][0].update(partner or {})
        ctx = open_context(parse_config(data, base))
        opened.append(ctx)
        return ctx

    yield make
    for ctx in opened:
        ctx.store.close()


# ------------------------------------------------------------------------------------------ stages


def test_every_registered_stage_has_the_one_stage_shape(make_ctx: Any) -> None:
    """Recovery and work stages are Stage objects: a non-empty name and a call taking (ctx, cycle)."""
    gateway = Gateway(make_ctx())
    for stage in (*gateway.recovery, *gateway.stages):
        assert isinstance(stage, Stage), type(stage).__name__
        assert isinstance(stage.name, str)
        assert stage.name
        params = list(inspect.signature(stage.__call__).parameters.values())
        assert [p.kind for p in params] == [inspect.Parameter.POSITIONAL_ONLY] * 2, type(stage).__name__
        assert type(stage).__call__.__annotations__.get("return") in (None, "None")


def test_stages_are_registered_in_the_run_loop_order_with_their_log_names(make_ctx: Any) -> None:
    """Recovery steps are all called "recover"; the work runs inbox skips, intake, batch, one exchange
    per partner, inbound, overdue, ack overdue, alerts (the names the logs use)."""
    gateway = Gateway(make_ctx())
    assert [s.name for s in gateway.recovery] == [RECOVER] * 6
    assert [s.name for s in gateway.stages] == [
        "inbox skips",
        "intake",
        "batch",
        "exchange",
        "inbound",
        "overdue",
        "ack overdue",
        "alerts",
    ]
    (ex,) = [s for s in gateway.stages if isinstance(s, pipeline.Exchange)]
    assert ex.partner.name == "acme"


@dataclass
class Probe:
    """A stage that records that it ran, and fails the way it is told to."""

    name: str
    error: Exception | None = None
    ran: int = 0

    def __call__(self, _ctx: Context, cycle: Cycle, /) -> None:
        self.ran += 1
        if self.error is not None:
            raise self.error
        cycle.summary.taken += 1


def test_a_failing_stage_is_counted_and_the_next_stages_still_run(make_ctx: Any) -> None:
    """An expected error and a bug in two stages: both counted as errors, the stages after them run."""
    from transactions.errors import X12GatewayError  # noqa: PLC0415

    gateway = Gateway(make_ctx())
    first, second, last = Probe("a", X12GatewayError("no")), Probe("b", KeyError("PHI?")), Probe("c")
    gateway.recovery = ()
    gateway.stages = (first, second, last)
    summary = gateway.cycle()
    assert (first.ran, second.ran, last.ran) == (1, 1, 1)
    assert (summary.errors, summary.taken) == (2, 1)


def test_after_a_stop_only_recovery_runs(make_ctx: Any) -> None:
    """Once a stop is asked for, the recovery stages still run and the work stages are skipped."""
    gateway = Gateway(make_ctx())
    recovery, work = Probe(RECOVER), Probe("intake")
    gateway.recovery, gateway.stages = (recovery,), (work,)
    gateway.stop.set()
    gateway.cycle()
    assert (recovery.ran, work.ran) == (1, 0)


# ------------------------------------------------------------------------------------ partner health


def test_partner_health_pauses_after_repeated_failures_and_recovers() -> None:
    """Retryable failures pause only at the threshold, for pause_minutes; a success forgets them all."""
    health = PartnerHealth()

    def fail(why: str) -> bool:
        return health.failed(T0, why, retryable=True, pause_after=3, pause_minutes=10)

    assert fail("refused") is False
    assert fail("refused") is False
    assert not health.is_paused(T0)
    assert fail("timed out") is True
    assert (health.failures, health.paused_why) == (3, "timed out")
    assert health.is_paused(T0 + timedelta(minutes=9, seconds=59))
    assert not health.is_paused(T0 + timedelta(minutes=10))
    assert health.succeeded() is True
    assert (health.failures, health.paused_until, health.paused_why) == (0, None, None)
    assert health.succeeded() is False, "a success after a success is not a recovery"


def test_a_failure_retrying_cannot_fix_pauses_at_once() -> None:
    """A non-retryable failure (say, authentication) pauses the partner on the first occurrence."""
    health = PartnerHealth()
    assert health.failed(T0, "auth", retryable=False, pause_after=5, pause_minutes=1) is True
    assert health.is_paused(T0)


def test_a_refusing_partner_is_paused_then_tried_again_after_the_pause(make_ctx: Any, tmp_path: Path) -> None:
    """Against a port that refuses connections: failures counted, the partner paused (and logged in
    state_changes) at the threshold, not contacted while paused, tried again once the pause is over."""
    key = str(write_private_key(tmp_path / "client"))
    settings = {"port": _free_port(), "pause_after_failures": 2, "pause_minutes": 5, "retry_attempts": 1}
    ctx = make_ctx({**settings, "key_file": key})
    now = [T0]
    ctx.clock = lambda: now[0]
    (partner,) = ctx.config.partners
    health = ctx.health.of(partner.name)
    assert exchange.exchange(ctx, partner) == (0, 0)
    assert (health.failures, health.is_paused(T0)) == (1, False)
    exchange.exchange(ctx, partner)
    assert health.paused_until == T0 + timedelta(minutes=5)
    assert health.paused_why
    exchange.exchange(ctx, partner)
    assert health.failures == 2, "not contacted while paused"
    now[0] = T0 + timedelta(minutes=5)
    exchange.exchange(ctx, partner)
    assert health.failures == 3
    assert health.paused_until == T0 + timedelta(minutes=10)
    with ctx.store.read() as tx:
        moves = [(h.old_state, h.new_state) for h in tx.audit.history("partner", 0)]
    assert moves == [("active", "paused"), ("active", "paused")]


# ------------------------------------------------------------------------------------------- outbox


def _written(ctx: Context, tracking: str) -> bytes:
    return (ctx.config.folders.outbox / f"{tracking}.json").read_bytes()


def _rendered(ctx: Context, tracking: str) -> bytes:
    """What the one writer renders for the request's current state."""
    with ctx.store.read() as tx:
        req = tx.requests.get_by_tracking(tracking)
        assert req is not None
        return render_result(result_document(tx, req))


def test_every_outbox_caller_writes_what_the_one_writer_renders(make_ctx: Any) -> None:
    """The pre-cert gate, the overdue check and inbound delivery each leave exactly the writer's
    rendering; for the same request state, two callers leave byte-identical files."""
    ctx = make_ctx(rules_file=str(RULES_FILE), answer_not_required=True)
    drop_278(ctx, "office", trace_number="AU-OFFICE", lines=OFFICE)
    drop_278(ctx, "mri", trace_number="AU-MRI")
    intake.intake(ctx)
    with ctx.store.read() as tx:
        by_ref = {r.payload["client_reference"]: r.tracking_number for r in tx.requests.query()}
    office, mri = by_ref["AU-OFFICE"], by_ref["AU-MRI"]
    assert _written(ctx, office) == _rendered(ctx, office)  # the gate's answer
    assert json.loads(_written(ctx, office))["authorization"]["status"] == "not_required"

    assert batching.batch_all(ctx) == 1
    with ctx.store.begin() as tx:
        tx.requests.transition(
            mri, RequestEvent.SEND, expect=RequestState.QUEUED, due_at=ctx.clock() - timedelta(minutes=1)
        )
    assert mark_overdue(ctx) == 1
    by_overdue = _written(ctx, mri)
    assert by_overdue == _rendered(ctx, mri)
    assert json.loads(by_overdue)["state"] == "overdue"

    with ctx.store.begin() as tx:
        row = tx.files.record(
            direction="in",
            partner="acme",
            name="271.x12",
            sha256="0" * 64,
            size=0,
            payload_path=None,
            state=FileState.DOWNLOADED,
        )
        tx.files.transition(row.id, FileEvent.START_PROCESSING, expect=FileState.DOWNLOADED)
        tx.files.transition(row.id, FileEvent.PROCESS, expect=FileState.PROCESSING)
    inbound.deliver(ctx, row.id, [mri])
    assert _written(ctx, mri) == by_overdue, "same state, same bytes, whichever stage wrote it"
    assert (ctx.config.folders.outbox / f"summary-{row.id}.csv").exists()


def test_a_request_that_cannot_be_written_as_x12_is_set_aside_and_the_others_go_out(make_ctx: Any) -> None:
    """A delimiter in a stored value (intake refuses one now, but a row an older release took may hold
    it): that request becomes invalid with the element named, its outbox file is the writer's
    rendering, and the other request is queued."""
    ctx = make_ctx()
    good = json.loads((REQUESTS / "270-subscriber.json").read_text())
    (ctx.config.folders.inbox / "two.json").write_text(json.dumps([good, {**good, "trace_number": "EL-BAD"}]))
    intake.intake(ctx)
    with ctx.store.begin() as tx:
        (row,) = [r for r in tx.requests.query() if r.payload["client_reference"] == "EL-BAD"]
        payload = {**row.payload, "payer": {**row.payload["payer"], "name": "ACME~PLAN"}}
        tx.conn.execute(update(schema.requests).where(schema.requests.c.id == row.id).values(payload=payload))
    assert batching.batch_all(ctx) == 1
    with ctx.store.read() as tx:
        got = {
            r.payload["client_reference"]: (r.state, r.reason, r.tracking_number) for r in tx.requests.query()
        }
    assert got["EL-0001"][0] == "queued"
    state, reason, tracking = got["EL-BAD"]
    assert (state, reason) == ("invalid", "cannot be written as X12: NM103 contains a delimiter character")
    assert _written(ctx, tracking) == _rendered(ctx, tracking)
    assert batching.batch_all(ctx) == 0, "not tried again"
