"""``send_realtime``: one request sent now over CAQH CORE real time, its answer stored within a budget.

The API calls this for a request it has just stored whose partner is a real-time CORE partner:
usually queued and its first attempt started in the transaction that recorded the call
(``queue_now``, ``started=``), else ``new``. The request goes through the same steps as in the run
loop, only now and alone: it is claimed and built into its own interchange (batching), POSTed
(``gateway.realtime.exchange``), and the answer is stored by the inbound stage's steps (records,
outbox result file, state changes) in the transaction that records it. The exchange
runs in a worker thread so that an answer arriving after the budget is still stored as soon as it
comes (within the partner's ``timeout_seconds``); past that, or after a crash, the request stays
``queued``/``uploading`` and the run loop sends it again, no sooner than the rule allows.

The worker threads are a process-wide pool (``_DELIVERERS``), not a thread per call: starting a
thread, and the hand-offs of the interpreter lock among dozens of them, cost a busy ``serve`` more
than the gateway's own work on a call. The caller is handed the result document the delivery wrote
(``write_results``'s ``on_document``) instead of reading the request back; only when someone else
stores the answer (the run loop, another process) does it poll the store. The HTTP API runs its
whole call in one of these threads instead (``run_in_worker``, ``send_realtime(inline=True)``): the
recording, the POST and the storing of the answer without a hand-off between threads, the event loop
answering 202 on its own when the budget passes first (``gateway.web.api``).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from gateway.lifecycle import RequestState
from gateway.realtime import numbers
from gateway.realtime.exchange import (
    Attempt,
    Processing,
    attempt_detail,
    post_attempt,
    send_file,
)
from gateway.realtime.numbers import CallNumbers
from gateway.runtime.config import PartnerConfig
from gateway.runtime.context import Context
from gateway.stages import batching, inbound
from gateway.stages.outbox import result_document
from gateway.store import FileRow, RequestRow, Tx
from gateway.store.payloads import Payload
from mappings.mapper import MappingRules
from transactions.outbound import Request

# states in which the request's answer (or its refusal) is stored and its result file written
STORED = frozenset({RequestState.ANSWERED, RequestState.PENDED, RequestState.REJECTED, RequestState.INVALID})
_RULES: dict[int, MappingRules] = {}
_POLL_SECONDS = 0.05
# called once the request is stored, with what gives its result document (the one this call's
# delivery wrote, or a read in the transaction that found the request stored): a store failure
# reading it is the caller's to report
OnStored = Callable[[Callable[[], dict[str, Any]]], object]


class _Workers:
    """Daemon threads that run deliveries: started when none is idle (up to ``most``), then kept
    waiting for the next one. Daemons, as the thread per call was: a process that exits does not
    wait for a delivery in flight (its request is sent again by the run loop, as after a crash).
    Beyond ``most`` deliveries at once, a delivery waits for a free thread.

    ``_idle`` counts the threads that finished a job and will take the next one from the queue (each
    submit spends one, or starts a thread): a plain count under a C lock, where a
    ``threading.Semaphore`` ran a Python condition on the event loop's thread for every call."""

    def __init__(self, most: int) -> None:
        self._most = most
        self._jobs: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._started = 0

    def submit(self, job: Callable[[], object]) -> None:
        self._jobs.put(job)
        with self._lock:
            if self._idle > 0:
                self._idle -= 1
                return  # a waiting thread takes it
            if self._started >= self._most:
                return  # the next thread to finish takes it
            self._started += 1
            number = self._started
        threading.Thread(target=self._work, name=f"core-{number}", daemon=True).start()

    def _work(self) -> None:
        jobs, lock = self._jobs, self._lock
        while True:
            job = jobs.get()
            job()  # _deliver: never raises (every failure is logged and left to the run loop)
            with lock:
                self._idle += 1


# the delivery threads (an answer past the budget is still stored by one)
_DELIVERERS = _Workers(most=256)


def run_in_worker(job: Callable[[], object]) -> None:
    """Run ``job`` in one of the delivery threads: an API call's whole synchronous part (recording,
    sending with ``send_realtime(inline=True)``, storing the answer) in one thread, the event loop
    answering at the budget on its own; ``job`` must not raise (a worker thread would die)."""
    _DELIVERERS.submit(job)


def send_realtime(
    ctx: Context,
    request_id: int,
    *,
    budget_seconds: float,
    on_stored: OnStored | None = None,
    new_for: str | None = None,
    tracking: str | None = None,
    started: Attempt | None = None,
    inline: bool = False,
) -> bool:
    """Send the request with this store id now to its partner over CORE real time; receive, validate,
    map and store the answer exactly as the inbound stage does for SFTP (records, outbox result file,
    state changes); return True when the answer was stored within the budget, False otherwise (the
    request then stays queued and is retried/delivered by the normal run loop). ``on_stored`` is
    handed what gives the stored request's result document (the outbox file's): the one this call's
    delivery wrote or, when another worker stored the answer, a read where the request was found.
    ``new_for`` is the partner a caller that has just recorded the request (``new``) names: it is not
    read back first (if it is no longer new, its claim finds nothing and its file is looked up);
    ``tracking`` is that request's tracking number (its document is picked from the delivery's).
    ``started``: the attempt that caller started in the transaction that recorded the request
    (``queue_now``), to be POSTed now. ``inline``: the delivery runs in the calling thread, to its
    end (the caller answers at the budget on its own, see ``gateway.web.api``), instead of in a
    delivery thread this one waits for."""
    deadline = time.monotonic() + budget_seconds
    state, partner = _state_and_partner(ctx, request_id, new_for)
    if not is_realtime(partner):
        return False  # an SFTP or CORE batch partner: the run loop sends it with the next batch
    work: Attempt | FileRow | None = started
    if work is None and state == RequestState.NEW:
        work = _batched(ctx, partner, request_id)
    if work is None:  # queued by an earlier call or another worker: send its file if due
        with ctx.store.read() as tx:
            file_id = file_of(tx, request_id)
            work = tx.files.get(file_id) if file_id is not None else None
    if work is not None:
        delivery = _Delivery()
        deliver = partial(_deliver, ctx, partner, work, delivery)
        if inline:
            deliver()
        else:
            _DELIVERERS.submit(deliver)
        if delivery.done.wait(max(0.0, deadline - time.monotonic())):
            if delivery.outcome == "failed":
                return False  # the attempt failed: the run loop retries it, no sooner than the rule allows
            doc = delivery.documents.get(tracking) if tracking is not None else None
            if doc is not None and doc["state"] in STORED:  # written by this delivery: no read back
                if on_stored is not None:
                    on_stored(lambda: doc)
                return True
    return _wait_stored(ctx, request_id, deadline, on_stored)


class _Delivery:
    """What a delivery thread tells its caller: set ``done`` once the answer (if any) is processed,
    with the attempt's outcome (see ``exchange.Sent``) and the result documents it wrote."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.outcome = ""
        self.documents: dict[str, dict[str, Any]] = {}

    def written(self, doc: dict[str, Any]) -> None:
        self.documents[doc["tracking_number"]] = doc


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

    def start(_tx: Tx, queued: batching.Queued) -> None:
        started.append(Attempt(queued.file, queued.kind, detail, queued.sets))

    queued = batching.batch_partner(ctx, partner, request_id, on_queued=start, start_upload=detail)
    return started[0] if queued and started else None


@dataclass(frozen=True)
class QueueNow:
    """How a real-time API call's request is queued with the call: its tracking number and control
    numbers taken from this process's blocks (``gateway.realtime.numbers``), its interchange built,
    validated and stored before the call's transaction (``build``), then recorded in it with the
    request ``queued`` and the file's first attempt started (``record``: ``queued -> uploading``),
    for ``send_realtime(started=...)`` to POST after the commit. A crash before that commit leaves
    nothing of the call but gaps in the numbers (and a payload nothing refers to); after it, the file
    is ``uploading`` and the run loop sends it again if the call's own POST never happened."""

    ctx: Context
    partner: PartnerConfig

    def take_numbers(self) -> CallNumbers:
        """The call's tracking number (its request's) and control numbers."""
        return numbers.take(self.ctx, self.partner)

    def build(
        self, request: Request, taken: CallNumbers, *, also: tuple[Payload, ...] = ()
    ) -> batching.Built | None:
        """The request's interchange (None: it stays ``new``, see ``batching.build_one``); ``also``:
        the call's own staged payloads, kept by ``record`` with the interchange's (one statement)."""
        numbers = (taken.isa, taken.gs, taken.st)
        return batching.build_one(self.ctx, self.partner, request, numbers, also=also)

    def claimed(self) -> batching.ClaimedOnInsert:
        """How the call's request is inserted when its interchange was built: claimed and queued
        (``record`` then steps no UPDATE of it)."""
        return batching.claimed_on_insert(self.ctx)

    def record(self, tx: Tx, row: RequestRow, built: batching.Built) -> Attempt | None:
        """Queue the request ``row`` (recorded in ``tx``: ``new``, or inserted ``queued`` as ``claimed``
        says) with its interchange ``built``, its first attempt started; the attempt (None: not
        queued)."""
        detail = attempt_detail(self.partner)
        started: list[Attempt] = []

        def start(_tx: Tx, queued: batching.Queued) -> None:
            started.append(Attempt(queued.file, queued.kind, detail, queued.sets))

        queued = batching.record_built(
            self.ctx,
            tx,
            self.partner,
            row,
            built,
            on_queued=start,
            start_upload=detail,
            inserted_queued=row.state == RequestState.QUEUED,
        )
        return started[0] if queued and started else None


def queue_now(ctx: Context, partner: PartnerConfig) -> QueueNow:
    """What queues a request being recorded for ``partner`` (real time) with the call (``QueueNow``)."""
    return QueueNow(ctx, partner)


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
                    on_stored(partial(result_document, tx, row))
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


def _deliver(ctx: Context, partner: PartnerConfig, work: Attempt | FileRow, delivery: _Delivery) -> None:
    """Send the file (an attempt already started, or a file to start one for) and process its answer;
    any failure leaves the work to the run loop (logged). ``delivery`` gets the attempt's outcome
    and the result documents written once the answer, if any, was processed."""
    row = work.row if isinstance(work, Attempt) else work
    try:
        answer = Processing(rules_for(ctx), on_document=delivery.written)
        if isinstance(work, Attempt):
            sent = post_attempt(ctx, partner, work, answer=answer)
        else:
            sent = send_file(ctx, partner, work, answer=answer)
        if sent.claimed is not None:  # an answer stored in two steps (to be quarantined, large)
            inbound.process_claimed(ctx, sent.claimed, rules_for(ctx), on_document=delivery.written)
        delivery.outcome = sent.outcome
    except Exception as exc:  # noqa: BLE001 - a worker thread must not die silently; the run loop retries
        delivery.outcome = "failed"
        ctx.log.error(
            "real-time delivery failed; the run loop will retry", file_id=row.id, error=type(exc).__name__
        )
    finally:
        delivery.done.set()
