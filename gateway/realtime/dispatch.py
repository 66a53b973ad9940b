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
from collections.abc import Callable

from gateway.lifecycle import RequestState
from gateway.realtime.exchange import Attempt, attempt_detail, post_attempt, send_file, start_queued
from gateway.runtime.config import PartnerConfig
from gateway.runtime.context import Context
from gateway.stages import batching, inbound
from gateway.store import FileRow, RequestRow, Tx
from mappings.mapper import MappingRules

# states in which the request's answer (or its refusal) is stored and its result file written
STORED = frozenset({RequestState.ANSWERED, RequestState.PENDED, RequestState.REJECTED, RequestState.INVALID})
_RULES: dict[int, MappingRules] = {}
_POLL_SECONDS = 0.05
OnStored = Callable[[Tx, RequestRow], object]  # called with the request found stored, in that read


def send_realtime(
    ctx: Context,
    request_id: int,
    *,
    budget_seconds: float,
    on_stored: OnStored | None = None,
    new_for: str | None = None,
) -> bool:
    """Send the request with this store id now to its partner over CORE real time; receive, validate,
    map and store the answer exactly as the inbound stage does for SFTP (records, outbox result file,
    state changes); return True when the answer was stored within the budget, False otherwise (the
    request then stays queued and is retried/delivered by the normal run loop). ``on_stored(tx, row)``
    runs in the read that found the request stored (the API reads its result there: one read, not two).
    ``new_for`` is the partner a caller that has just recorded the request (``new``) names: it is not
    read back first (if it is no longer new, its claim finds nothing and its file is looked up)."""
    deadline = time.monotonic() + budget_seconds
    state, partner = _state_and_partner(ctx, request_id, new_for)
    if not is_realtime(partner):
        return False  # an SFTP or CORE batch partner: the run loop sends it with the next batch
    work: Attempt | FileRow | None = None
    if state == RequestState.NEW:
        work = _batched(ctx, partner, request_id)
    if work is None:  # queued by an earlier call or another worker: send its file if due
        with ctx.store.read() as tx:
            file_id = file_of(tx, request_id)
            work = tx.files.get(file_id) if file_id is not None else None
    if work is not None:
        done = threading.Event()
        outcome: list[str] = []
        worker = threading.Thread(
            target=_deliver, args=(ctx, partner, work, done, outcome), name=f"core-{request_id}", daemon=True
        )
        worker.start()
        done.wait(max(0.0, deadline - time.monotonic()))
        if outcome == ["failed"]:
            return False  # the attempt failed: the run loop retries it, no sooner than the rule allows
    return _wait_stored(ctx, request_id, deadline, on_stored)


def _state_and_partner(ctx: Context, request_id: int, new_for: str | None) -> tuple[str, PartnerConfig]:
    """The request's state and partner: read, or as a caller that has just recorded it says."""
    if new_for is not None:
        return RequestState.NEW, ctx.config.partner(new_for)
    with ctx.store.read() as tx:
        req = tx.requests.get(request_id)
    return req.state, ctx.config.partner(req.partner)


def _batched(ctx: Context, partner: PartnerConfig, request_id: int) -> Attempt | None:
    """Build the request's own interchange and start its first attempt in the transaction that
    records the file (``queued -> uploading``); None when another worker took the request first."""
    detail = attempt_detail(partner)
    started: list[Attempt] = []

    def start(tx: Tx, row: FileRow, kind: str) -> None:
        started.append(start_queued(tx, row, kind, detail))

    queued = batching.batch_partner(ctx, partner, request_id, on_queued=start)
    return started[0] if queued and started else None


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


def _wait_stored(ctx: Context, request_id: int, deadline: float, on_stored: OnStored | None) -> bool:
    """Whether the request reaches a stored state before the deadline (another worker may hold it)."""
    while True:
        with ctx.store.read() as tx:
            row = tx.requests.get(request_id)
            if row.state in STORED:
                if on_stored is not None:
                    on_stored(tx, row)
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
    ctx: Context,
    partner: PartnerConfig,
    work: Attempt | FileRow,
    done: threading.Event,
    outcome: list[str],
) -> None:
    """Send the file (an attempt already started, or a file to start one for) and process its answer;
    any failure leaves the work to the run loop (logged). ``outcome`` gets the attempt's outcome (see
    ``exchange.Sent``) once the answer, if any, was processed."""
    row = work.row if isinstance(work, Attempt) else work
    try:
        if isinstance(work, Attempt):
            sent = post_attempt(ctx, partner, work, claim=True)
        else:
            sent = send_file(ctx, partner, work, claim=True)
        if sent.claimed is not None:
            _process_claimed(ctx, sent.claimed)
        outcome.append(sent.outcome)
    except Exception as exc:  # noqa: BLE001 - a worker thread must not die silently; the run loop retries
        outcome.append("failed")
        ctx.log.error(
            "real-time delivery failed; the run loop will retry", file_id=row.id, error=type(exc).__name__
        )
    finally:
        done.set()


def _process_claimed(ctx: Context, row: FileRow) -> None:
    """Process an answer claimed for this node (claimed with its recording: see ``post_attempt``)."""
    inbound.process_claimed(ctx, row, rules_for(ctx))
