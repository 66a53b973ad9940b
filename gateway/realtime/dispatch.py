"""``send_realtime``: one request sent now over CAQH CORE real time, its answer stored within a budget.

The API calls this for a request it has just stored (state ``new``) whose partner is a real-time
CORE partner. The request goes through the same steps as in the run loop, only now and alone: it is
claimed and built into its own interchange (batching), POSTed (``gateway.realtime.exchange``), and the
answer is processed by the inbound stage (records, outbox result file, state changes). The exchange
runs in a worker thread so that an answer arriving after the budget is still stored as soon as it
comes (within the partner's ``timeout_seconds``); past that, or after a crash, the request stays
``queued``/``uploading`` and the run loop sends it again, no sooner than the rule allows.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from gateway.lifecycle import FileEvent, FileState, RequestState
from gateway.realtime.exchange import send_file
from gateway.runtime.config import PartnerConfig
from gateway.runtime.context import Context
from gateway.stages import batching, inbound
from gateway.store import Tx
from mappings.mapper import MappingRules

# states in which the request's answer (or its refusal) is stored and its result file written
STORED = frozenset({RequestState.ANSWERED, RequestState.PENDED, RequestState.REJECTED, RequestState.INVALID})
_RULES: dict[int, MappingRules] = {}
_POLL_SECONDS = 0.05


def send_realtime(ctx: Context, request_id: int, *, budget_seconds: float) -> bool:
    """Send the request with this store id now to its partner over CORE real time; receive, validate,
    map and store the answer exactly as the inbound stage does for SFTP (records, outbox result file,
    state changes); return True when the answer was stored within the budget, False otherwise (the
    request then stays queued and is retried/delivered by the normal run loop)."""
    deadline = time.monotonic() + budget_seconds
    with ctx.store.read() as tx:
        req = tx.requests.get(request_id)
    partner = ctx.config.partner(req.partner)
    if not is_realtime(partner):
        return False  # an SFTP or CORE batch partner: the run loop sends it with the next batch
    if req.state == RequestState.NEW:
        batching.batch_partner(ctx, partner, request_id)
    with ctx.store.read() as tx:
        file_id = file_of(tx, request_id)
    if file_id is not None:
        done = threading.Event()
        outcome: list[str] = []
        worker = threading.Thread(
            target=_deliver,
            args=(ctx, partner, file_id, done, outcome),
            name=f"core-{request_id}",
            daemon=True,
        )
        worker.start()
        done.wait(max(0.0, deadline - time.monotonic()))
        if outcome == ["failed"]:
            return False  # the attempt failed: the run loop retries it, no sooner than the rule allows
    return _wait_stored(ctx, request_id, deadline)


def is_realtime(partner: PartnerConfig) -> bool:
    """Whether requests of this partner are answered in real time (a CORE partner in realtime mode):
    the API waits for those up to its budget and answers 202 for the others."""
    return partner.core is not None and partner.core.mode == "realtime"


def file_of(tx: Tx, request_id: int) -> int | None:
    """The outbound file the request was last queued in (from its ``queue`` state change)."""
    for change in reversed(tx.audit.history("request", request_id)):
        if change.new_state == RequestState.QUEUED and change.detail and "file_id" in change.detail:
            return int(change.detail["file_id"])
    return None


def _wait_stored(ctx: Context, request_id: int, deadline: float) -> bool:
    """Whether the request reaches a stored state before the deadline (another worker may hold it)."""
    while True:
        with ctx.store.read() as tx:
            if tx.requests.get(request_id).state in STORED:
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_SECONDS)


def rules_for(ctx: Context) -> MappingRules:
    """The mapping rules of this configuration (loaded once per process and configuration)."""
    key = id(ctx.config)
    if key not in _RULES:
        from gateway.runtime.runner import load_mapping_rules  # noqa: PLC0415 - the runner imports the stages

        _RULES[key] = load_mapping_rules(ctx.config)
    return _RULES[key]


def _deliver(
    ctx: Context, partner: PartnerConfig, file_id: int, done: threading.Event, outcome: list[str]
) -> None:
    """Send the file and process its answer; any failure leaves the work to the run loop (logged).
    ``outcome`` gets the attempt's outcome (see ``exchange.Sent``)."""
    try:
        with ctx.store.read() as tx:
            row = tx.files.get(file_id)
        sent = send_file(ctx, partner, row)
        outcome.append(sent.outcome)
        if sent.inbound_file_id is not None:
            process_answer(ctx, sent.inbound_file_id)
    except Exception as exc:  # noqa: BLE001 - a worker thread must not die silently; the run loop retries
        outcome.append("failed")
        ctx.log.error(
            "real-time delivery failed; the run loop will retry", file_id=file_id, error=type(exc).__name__
        )
    finally:
        done.set()


def process_answer(ctx: Context, inbound_file_id: int) -> bool:
    """Process one downloaded answer now (claimed under a lease like the inbound stage does); False
    when another worker took it first."""
    until = ctx.clock() + timedelta(seconds=5 * ctx.config.gateway.lease_seconds)
    with ctx.store.begin() as tx:
        rows = tx.files.claim(
            event=FileEvent.START_PROCESSING,
            direction="in",
            owner=ctx.node_id,
            until=until,
            limit=1,
            file_id=inbound_file_id,
        )
    if not rows:
        return False
    try:
        inbound.process_file(ctx, rows[0], rules_for(ctx))
    except inbound._UNEXPECTED as exc:
        inbound._quarantine(ctx, rows[0], f"file could not be processed ({type(exc).__name__})")
    return rows[0].state == FileState.PROCESSING
