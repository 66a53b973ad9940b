"""One CORE real-time exchange of one queued outbound file, recorded like an SFTP upload+download.

The outbound file (one interchange, built and recorded by the batching stage) goes ``queued ->
uploading`` before the POST (the attempt, its PayloadID and envelope style in the detail); the answer's
X12 is recorded as an inbound file (``downloaded``) in the same transaction that moves the outbound
file to ``sent`` and ``acknowledged`` (the HTTP answer is its acknowledgment) and its requests to
``sent``. The inbound stage then processes the answer exactly as a downloaded SFTP file (records,
outbox result files, a 999 rejecting the group). A crash between the POST and that transaction leaves
the file ``uploading``: it is sent again (a new PayloadID, the same X12), never sooner than the
partner's ``retry_seconds`` after the previous attempt, and the inbound stage ignores a duplicate
answer. A failed attempt is logged on the file (``uploading -> uploading``, with the error code).

The API's real-time sender saves commits without skipping a record: the first attempt starts in the
transaction that records the file (recorded ``uploading``: ``batching.record_built(start_upload=)``),
and the answer, validated and mapped before
its transaction, is recorded and processed in one (``post_attempt(answer=...)``: records, request
states, envelopes, ``downloaded -> processing -> processed``), leaving only the ``delivered`` marking
for after the result files. A crash before that commit leaves the file ``uploading`` (sent again, as
after a crash mid-POST), after it the answer ``processed`` (its results rewritten by the inbound
stage's recovery). An answer to quarantine goes the two-step way (recorded and claimed under a
lease, ``post_attempt(claim=True)``, then processed).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gateway.errors import StaleStateError
from gateway.lifecycle import (
    Entity,
    FileEvent,
    FileState,
    RequestEvent,
    RequestState,
    SetEvent,
    SetState,
    allows,
    target,
)
from gateway.realtime import slots
from gateway.runtime.config import PartnerConfig
from gateway.runtime.context import Context
from gateway.stages.batching import QueuedSet
from gateway.stages.inbound import (
    ANSWER_FAILURES,
    ANSWER_PROCESSING,
    DELIVERIES,
    answer_stored,
    claim_downloaded,
    info_dropped,
    prepare_answer,
    record_delivered,
    sealed_records,
    store_answer,
)
from gateway.stages.outbox import OnDocument, write_results
from gateway.store import FileRow, Tx
from gateway.store.payloads import Payload
from gateway.store.rows import RequestHead
from gateway.transport.core_client import CoreEndpoint, CoreError, CoreReply, post
from gateway.transport.core_envelope import (
    ELEMENTS,
    PAYLOAD_TYPES,
    CoreMessage,
    new_payload_id,
    sealed,
    timestamp,
)
from mappings.mapper import MappingRules

RESPONSE_KINDS = {v: k for k, v in PAYLOAD_TYPES.items()}
# an answer staged for its transaction: its payload's hash and path (None: a blob), the envelope's
# hash, the message, and both payloads for ``PayloadStore.record``
Kept = tuple[str, str | None, str, CoreMessage, tuple[Payload, Payload]]


@dataclass(frozen=True)
class Sent:
    """How one attempt ended: ``answered`` (answer stored, inbound file id), ``submitted`` (batch
    mode: taken, answers to pick up), ``rejected`` (the partner refused the payload; requests
    rejected), ``failed`` (try again later), ``skipped`` (not due yet, or another worker has it)."""

    outcome: str
    inbound_file_id: int | None = None
    error: str | None = None
    claimed: FileRow | None = None  # the answer, claimed for processing (``post_attempt(claim=True)``)


# partner config's id -> (that config, when made, its endpoint): see ``endpoint``
_ENDPOINTS: dict[int, tuple[PartnerConfig, float, CoreEndpoint]] = {}
ENDPOINT_RECHECK_SECONDS = 1.0  # how long a resolved password is used before it is read again
_MOST_ENDPOINTS = 64


def endpoint(partner: PartnerConfig) -> CoreEndpoint:
    """The partner's CORE endpoint (its password resolved, never logged), made once per partner
    configuration: the same for every call, and a password (environment or file: a file read is
    three system calls, each letting the interpreter lock go) is read again once
    ``ENDPOINT_RECHECK_SECONDS`` have passed, as ``core_client.LINKS`` looks at certificate files."""
    now = time.monotonic()
    found = _ENDPOINTS.get(id(partner))
    if found is not None and found[0] is partner:
        made_at, made = found[1], found[2]
        if made.auth != "basic" or now - made_at < ENDPOINT_RECHECK_SECONDS:
            return made
    made = _endpoint(partner)
    if len(_ENDPOINTS) >= _MOST_ENDPOINTS:  # configurations come and go (tests, reloads): start afresh
        _ENDPOINTS.clear()
    _ENDPOINTS[id(partner)] = (partner, now, made)  # one dict store: racing threads store equal ones
    return made


def _endpoint(partner: PartnerConfig) -> CoreEndpoint:
    """The partner's CORE endpoint, its password resolved now."""
    core = partner.core
    if core is None:
        raise ValueError(f"partner {partner.name} is not a CORE partner")
    return CoreEndpoint(
        url=core.url,
        style=core.envelope,
        partner=partner.name,
        ca_file=core.ca_file,
        auth=core.auth,
        username=core.username,
        password=core.password(partner.name) if core.auth == "basic" else None,
        client_cert=core.client_cert,
        client_key=core.client_key,
        timeout=core.timeout_seconds,
    )


def _set_kind(tx: Tx, file_id: int) -> str:
    kinds = {
        s.set_id
        for ic in tx.envelopes.interchanges_of_file(file_id)
        for g in tx.envelopes.groups_of_interchange(ic.id)
        for s in tx.envelopes.sets_of_group(g.id)
    }
    return kinds.pop() if len(kinds) == 1 else "270"


def _begin_attempt(ctx: Context, partner: PartnerConfig, row: FileRow, detail: dict[str, Any]) -> str | None:
    """Record the attempt before the POST; the set kind, or None when it is not this worker's turn
    (another worker moved the file, or the previous attempt is younger than ``retry_seconds``)."""
    core = partner.core
    assert core is not None  # noqa: S101 - only CORE partners get here
    with ctx.store.begin() as tx:
        current = tx.files.get(row.id)
        if current.state == FileState.QUEUED:
            try:
                tx.files.transition(row.id, FileEvent.START_UPLOAD, expect=FileState.QUEUED, detail=detail)
            except StaleStateError:
                return None
        elif current.state == FileState.UPLOADING:
            tx.files.lock(row.id)  # two workers never retry the same file at once
            last = tx.audit.history(Entity.FILE, row.id)[-1]
            # never sooner than the rule allows, nor while the last attempt may still be waiting
            wait = max(core.retry_seconds, core.timeout_seconds + 1.0)
            if ctx.clock() - last.at < timedelta(seconds=wait):
                return None
            tx.audit.record_change(Entity.FILE, row.id, FileState.UPLOADING, FileState.UPLOADING, detail)
        else:
            return None
        return _set_kind(tx, row.id)


@dataclass(frozen=True)
class Attempt:
    """One started attempt: the file (``uploading``), its set kind, and the attempt's detail (the
    PayloadID, envelope and mode) recorded on the ``queued -> uploading`` state change."""

    row: FileRow
    kind: str
    detail: dict[str, Any]
    sets: tuple[QueuedSet, ...] = ()  # the file's sets and requests as queued (empty: read them)


def attempt_detail(partner: PartnerConfig) -> dict[str, Any]:
    """What an attempt records before its POST, with a new PayloadID."""
    core = partner.core
    assert core is not None  # noqa: S101 - only CORE partners get here
    return {"transport": "core", "envelope": core.envelope, "mode": core.mode, "payload_id": new_payload_id()}


def send_file(
    ctx: Context,
    partner: PartnerConfig,
    row: FileRow,
    *,
    timeout: float | None = None,
    claim: bool = False,
    answer: Processing | None = None,
) -> Sent:
    """One attempt for one outbound file (``queued``, or ``uploading`` and due for a retry);
    ``claim`` and ``answer`` as ``post_attempt`` takes them."""
    detail = attempt_detail(partner)
    kind = _begin_attempt(ctx, partner, row, detail)
    if kind is None:
        return Sent("skipped")
    attempt = Attempt(row, kind, detail)
    return post_attempt(ctx, partner, attempt, timeout=timeout, claim=claim, answer=answer)


def post_attempt(
    ctx: Context,
    partner: PartnerConfig,
    attempt: Attempt,
    *,
    timeout: float | None = None,
    claim: bool = False,
    answer: Processing | None = None,
) -> Sent:
    """POST a started attempt and record how it ended. With ``claim`` the answer's inbound file is
    also claimed for processing by this node (under a lease) in the transaction that records it, for
    a caller that processes it at once. With ``answer`` (``dispatch.send_realtime``) the answer is
    validated and mapped first and stored, processed, in the transaction that records it, then its
    results are written and delivered (``claimed`` stays None); an answer that cannot be stored so
    (to be quarantined, too large) is recorded and claimed as with ``claim``.

    With ``answer``, the call counts as one of those whose ``delivered`` markings are recorded
    together (``inbound.Deliveries``) from before its POST until it is done: a marking left while
    calls are waiting for their payer is recorded in the next answer's transaction, and the last
    call out records what is left (a call alone, its own, before it returns)."""
    if answer is None:
        return _post_attempt(ctx, partner, attempt, timeout, claim, None)
    with _marking(ctx) as written:
        return _post_attempt(ctx, partner, attempt, timeout, claim, (answer, written))


@contextmanager
def _marking(ctx: Context) -> Iterator[list[int]]:
    """A call inside ``DELIVERIES`` while the block runs; the list gets its answer's file id once its
    results are durable. Leaving, the last call records the markings left, in a call slot."""
    DELIVERIES.enter(ctx)
    written: list[int] = []
    try:
        yield written
    finally:
        left = DELIVERIES.leave(ctx, written[0] if written else None)
        if left:
            with slots.CALLS, ctx.store.begin() as tx:
                record_delivered(tx, left)


def _post_attempt(  # noqa: PLR0917 - post_attempt's arguments
    ctx: Context,
    partner: PartnerConfig,
    attempt: Attempt,
    timeout: float | None,
    claim: bool,
    answer: tuple[Processing, list[int]] | None,
) -> Sent:
    """``post_attempt``; with ``answer``, the list its file id goes to (``_marking``)."""
    core = partner.core
    assert core is not None  # noqa: S101 - only CORE partners get here
    row, detail = attempt.row, attempt.detail
    batch = core.mode == "batch"
    try:
        reply = attempt_reply(ctx, partner, attempt, timeout)
    except CoreError as exc:
        return _failed(ctx, partner, row, detail, exc)
    if batch:
        _submitted(ctx, partner, row, detail, reply)
        return Sent("submitted")
    if answer is not None:
        done = _answered_and_stored(ctx, partner, attempt, reply, answer)
        if done is not None:
            return done
    inbound_id, claimed = _answered(ctx, partner, row, detail, reply, claim=claim or answer is not None)
    return Sent("answered", inbound_id, claimed=claimed)


def attempt_reply(ctx: Context, partner: PartnerConfig, attempt: Attempt, timeout: float | None) -> CoreReply:
    """The attempt's envelope POSTed and the partner's reply read and checked (CoreError when it
    failed, or when a real-time answer carries no payload)."""
    core = partner.core
    assert core is not None  # noqa: S101 - only CORE partners get here
    batch = core.mode == "batch"
    message = sealed(
        CoreMessage(
            payload_type=PAYLOAD_TYPES.get(attempt.kind, PAYLOAD_TYPES["270"]),
            processing_mode="Batch" if batch else "RealTime",
            payload_id=attempt.detail["payload_id"],
            timestamp=timestamp(ctx.clock()),
            sender_id=core.sender_id,
            receiver_id=core.receiver_id,
            payload=ctx.payloads.get(attempt.row.sha256),
        )
    )
    element = ELEMENTS["batch_submission" if batch else "realtime_request"]
    reply = post(endpoint(partner), message, element, timeout=timeout)
    if not batch and not reply.message.payload:
        raise CoreError(
            f"partner {partner.name}: CORE answer without a payload",
            retryable=True,
            partner=partner.name,
            code="empty_payload",
            status=reply.status,
            elapsed_ms=reply.elapsed_ms,
        )
    return reply


def _submitted(
    ctx: Context, partner: PartnerConfig, row: FileRow, detail: dict[str, Any], reply: CoreReply
) -> None:
    """Batch mode: the partner took the interchange (receipt confirmed); its 999 and answers are
    picked up later, so the file is ``sent`` (not yet acknowledged) and its requests ``sent``."""
    facts = {
        **detail,
        "http_status": reply.status,
        "response_payload_id": reply.message.payload_id,
        "response_payload_type": reply.message.payload_type,
        "elapsed_ms": reply.elapsed_ms,
    }
    with ctx.store.begin() as tx:
        tx.files.transition(row.id, FileEvent.FINISH_UPLOAD, expect=FileState.UPLOADING, detail=facts)
        _send_requests(ctx, tx, _mark_sets_sent(tx, row.id), ctx.clock())
    ctx.log.info(
        "core batch submitted",
        partner=partner.name,
        file_id=row.id,
        payload_id=detail["payload_id"],
        http_status=reply.status,
        elapsed_ms=reply.elapsed_ms,
    )


def _send_requests(ctx: Context, tx: Tx, request_ids: list[int], now: datetime) -> None:
    """Requests whose set went out become ``sent``, due back within the configured time (read and
    locked together, each moved from the state it was read in; their heads only: the payload is
    not unsealed)."""
    rows = {r.id: r for r in tx.requests.heads(request_ids)}
    for request_id in request_ids:
        req = rows.get(request_id) or tx.requests.get(request_id)  # get names a missing one
        if allows(Entity.REQUEST, req.state, RequestEvent.SEND):
            minutes = ctx.config.timeouts.response_overdue_minutes(req.kind)
            due = now + timedelta(minutes=minutes)
            tx.requests.transition(req.tracking_number, RequestEvent.SEND, was=req.state, due_at=due)


def _failed(
    ctx: Context, partner: PartnerConfig, row: FileRow, detail: dict[str, Any], exc: CoreError
) -> Sent:
    facts = {**detail, "error_code": exc.code, "http_status": exc.status, "elapsed_ms": exc.elapsed_ms}
    if exc.rejects_payload:
        trackings = _reject(ctx, row, facts, f"CORE envelope error {exc.code}")
        write_results(ctx, trackings)
        ctx.log.warning(
            "core payload rejected",
            partner=partner.name,
            file_id=row.id,
            error_code=exc.code,
            trace_numbers=trackings,
        )
        return Sent("rejected", error=str(exc))
    with ctx.store.begin() as tx:
        tx.audit.record_change(
            Entity.FILE, row.id, FileState.UPLOADING, FileState.UPLOADING, {**facts, "failed": str(exc)}
        )
    ctx.log.warning(
        "core exchange failed",
        partner=partner.name,
        file_id=row.id,
        payload_id=detail["payload_id"],
        error_code=exc.code,
        http_status=exc.status,
        retryable=exc.retryable,
    )
    return Sent("failed", error=str(exc))


def _reject(ctx: Context, row: FileRow, facts: dict[str, Any], reason: str) -> list[str]:
    """The partner refused the payload: the file is finished (sent, acknowledged ``R``) and its
    requests are rejected with the envelope's error code."""
    rejected: list[str] = []
    with ctx.store.begin() as tx:
        tx.files.transition(row.id, FileEvent.FINISH_UPLOAD, expect=FileState.UPLOADING, detail=facts)
        tx.files.transition(row.id, FileEvent.ACKNOWLEDGE, detail={"ack": "R", "by": "core envelope"})
        for request_id in _mark_sets_sent(tx, row.id):
            req = tx.requests.get(request_id)
            if allows(Entity.REQUEST, req.state, RequestEvent.REJECT):
                tx.requests.transition(req.tracking_number, RequestEvent.REJECT, reason=reason)
                rejected.append(req.tracking_number)
    return rejected


# the state a request moved by ``SEND`` from ``queued`` is in
_SENT_FROM_QUEUED = target(Entity.REQUEST, RequestState.QUEUED, RequestEvent.SEND)


def _mark_sets_sent(tx: Tx, file_id: int) -> list[int]:
    """The file's transaction sets become ``sent`` (in file order); their requests' ids."""
    sets = tx.envelopes.sets_of_file(file_id)
    tx.envelopes.transition_sets([set_id for set_id, _ in sets], SetEvent.SEND)
    return [request_id for _, request_id in sets if request_id is not None]


def _answered(
    ctx: Context,
    partner: PartnerConfig,
    row: FileRow,
    detail: dict[str, Any],
    reply: CoreReply,
    *,
    claim: bool,
) -> tuple[int | None, FileRow | None]:
    """Store the answer as a downloaded file and finish the outbound one, in one transaction (with
    ``claim``, the answer is claimed for processing there too). Returns the answer's file id (None
    when another attempt's answer finished the file first: this one is noted and dropped) and its
    row when claimed."""
    facts, stored = _answer_kept(ctx, detail, reply)
    with ctx.store.begin() as tx:
        inbound = _finish_exchange(ctx, tx, partner, Attempt(row, "", detail), facts, stored)
        # claimed as the inbound stage claims (a crash before processing leaves it to the lease)
        claimed = claim_downloaded(ctx, tx, inbound.id) if claim and inbound is not None else None
    inbound_id = inbound.id if inbound is not None else None
    _log_exchange(ctx, partner, row, detail, reply, inbound_id)
    return inbound_id, claimed


@dataclass(frozen=True)
class Processing:
    """How a caller that waits for the answer wants it stored: processed with these mapping rules in
    the transaction that records it, each result document handed to ``on_document`` once durable."""

    rules: MappingRules
    on_document: OnDocument | None = None


def _answered_and_stored(
    ctx: Context,
    partner: PartnerConfig,
    attempt: Attempt,
    reply: CoreReply,
    answer: tuple[Processing, list[int]],
) -> Sent | None:
    """Record the answer, finish the outbound file and store the answer's records, request states
    and envelopes, in one transaction (validation and mapping are done before it: they touch no
    store); then write the results and mark the answer delivered. None when the answer is to go the
    two-step way (``prepare_answer`` says so, or storing it met a plain Python error): nothing of it
    is committed then. A crash before the commit leaves the file ``uploading`` (sent again, as after
    a crash mid-POST), after it the answer ``processed`` (``recover`` writes its results). The
    ``delivered`` marking is left to ``inbound.Deliveries`` (``answer[1]`` gets the file's id, see
    ``post_attempt``); the markings other calls left are recorded in this answer's transaction."""
    with slots.CALLS:  # store-and-compute work: two calls at a time (``gateway.realtime.slots``)
        return _answer_stored_now(ctx, partner, attempt, reply, answer)


def _answer_stored_now(
    ctx: Context,
    partner: PartnerConfig,
    attempt: Attempt,
    reply: CoreReply,
    how: tuple[Processing, list[int]],
) -> Sent | None:
    """``_answered_and_stored`` inside a call slot; the answer's file id is added to ``how[1]`` once
    its results are durable (its marking left to ``DELIVERIES``); the markings waiting are recorded
    in the answer's transaction."""
    answer, written = how
    row, detail = attempt.row, attempt.detail
    prepared = prepare_answer(ctx, partner, reply.message.payload, answer.rules)
    if prepared is None:
        return None
    facts, stored = _answer_kept(ctx, detail, reply)
    taken: list[int] = []
    try:
        records = sealed_records(ctx, prepared)  # sealed before the transaction, not under its lock
        with ctx.store.begin() as tx:
            fresh: Fresh = ({}, {})
            inbound = _finish_exchange(
                ctx, tx, partner, attempt, facts, stored, ahead=ANSWER_PROCESSING, fresh=fresh
            )
            done = None
            if inbound is not None:
                render = answer.on_document is not None
                done = store_answer(
                    ctx,
                    tx,
                    inbound,
                    prepared,
                    render=render,
                    sealed=records,
                    fresh=fresh[0],
                    fresh_rows=fresh[1],
                )
                taken = DELIVERIES.take(ctx)  # other calls' markings commit with this answer
                record_delivered(tx, taken)
    except ANSWER_FAILURES as exc:
        DELIVERIES.put_back(ctx, taken)
        ctx.log.warning("real-time answer stored in two steps", file_id=row.id, error=type(exc).__name__)
        return None
    except BaseException:
        DELIVERIES.put_back(ctx, taken)
        raise
    _log_exchange(ctx, partner, row, detail, reply, inbound.id if inbound is not None else None)
    if inbound is None or done is None:
        return Sent("answered")
    outcome, documents = done
    answer_stored(
        ctx,
        inbound,
        (prepared, outcome),
        on_document=answer.on_document,
        documents=documents,
        written=written,
    )
    return Sent("answered", inbound.id)


def _answer_kept(ctx: Context, detail: dict[str, Any], reply: CoreReply) -> tuple[dict[str, Any], Kept]:
    """The answer's facts for the event log, and its X12 and whole envelope staged as payloads (kept
    in the store by the transaction that records the answer; files, durable now, when large)."""
    answer = reply.message
    facts = {
        **detail,
        "http_status": reply.status,
        "response_payload_id": answer.payload_id,
        "response_payload_type": answer.payload_type,
        "elapsed_ms": reply.elapsed_ms,
        "connect_ms": reply.connect_ms,
    }
    payload = ctx.payloads.stage(answer.payload)
    envelope = ctx.payloads.stage(reply.raw, companion_of=payload.sha256)  # kept as long as the X12
    return facts, (payload.sha256, payload.payload_path, envelope.sha256, answer, (payload, envelope))


# what an answer does to the outbound file: finished, and acknowledged (the HTTP answer is the ack)
_FINISH = (FileEvent.FINISH_UPLOAD, FileEvent.ACKNOWLEDGE)

# the requests an answer's transaction moved from ``queued``: their heads now, and the reason and
# payload their guarded UPDATEs returned (``inbound.Outcome.fresh`` and ``fresh_rows``)
Fresh = tuple[dict[int, RequestHead], dict[int, tuple[str | None, Mapping[str, Any]]]]


def _finish_exchange(  # noqa: PLR0917 - the parts of one answer
    ctx: Context,
    tx: Tx,
    partner: PartnerConfig,
    attempt: Attempt,
    facts: dict[str, Any],
    stored: Kept,
    *,
    ahead: tuple[FileEvent, ...] = (),
    fresh: Fresh | None = None,
) -> FileRow | None:
    """In the caller's transaction: the outbound file finished and the answer recorded as a
    downloaded file (already moved past ``ahead``, whose changes the caller logs: ``store_answer``);
    None when another attempt's answer finished the file first (this one is noted). The file's
    guarded UPDATE comes first (it locks the row as a locked read would, and says whether it was
    still ``uploading``); its changes are logged after the answer's file row, whose id their
    detail names. ``fresh`` gets the requests moved from ``queued`` (``_mark_sent``)."""
    row = attempt.row
    states = tx.files.move_unlogged(row.id, _FINISH, expect=FileState.UPLOADING)
    if states is None:
        current = tx.files.get(row.id)
        note = {**facts, "ignored": "another attempt's answer was stored first"}
        tx.audit.record_change(Entity.FILE, row.id, current.state, current.state, note)
        return None
    kind = RESPONSE_KINDS.get(stored[3].payload_type, "x12")
    return _record_answer(ctx, tx, partner, attempt, (facts, states, ahead), kind, stored, fresh)


def _log_exchange(  # noqa: PLR0917 - one exchange's facts
    ctx: Context,
    partner: PartnerConfig,
    row: FileRow,
    detail: dict[str, Any],
    reply: CoreReply,
    inbound_id: int | None,
) -> None:
    if info_dropped():
        return
    ctx.log.info(
        "core exchange",
        partner=partner.name,
        file_id=row.id,
        answer_file_id=inbound_id,
        envelope=detail["envelope"],
        payload_id=detail["payload_id"],
        response_payload_type=reply.message.payload_type,
        http_status=reply.status,
        elapsed_ms=reply.elapsed_ms,
    )


def _record_answer(  # noqa: PLR0917 - the parts of one answer
    ctx: Context,
    tx: Tx,
    partner: PartnerConfig,
    attempt: Attempt,
    moved: tuple[dict[str, Any], list[str], tuple[FileEvent, ...]],
    kind: str,
    stored: Kept,
    fresh: Fresh | None = None,
) -> FileRow:
    row = attempt.row
    facts, states, ahead = moved
    sha, path, envelope_sha, answer, payloads = stored
    ctx.payloads.record(tx, *payloads)  # the answer's X12 and envelope commit with the row naming them
    inbound = tx.files.record(
        direction="in",
        partner=partner.name,
        name=f"{partner.name}-core-{kind}-{facts['payload_id']}.x12",
        sha256=sha,
        size=len(answer.payload),
        payload_path=path,
        state=FileState.DOWNLOADED,
        detail={**facts, "answers_file": row.id, "envelope_sha256": envelope_sha},
        ahead=ahead,
    )
    details: list[dict[str, Any] | None] = [
        {**facts, "answer_file": inbound.id},
        {"ack": "A", "by": "core answer"},  # the HTTP answer is the ack
    ]
    tx.audit.record_change_rows(
        [
            (Entity.FILE, row.id, old, new, detail)
            for detail, old, new in zip(details, states[:-1], states[1:], strict=True)
            if old != new
        ]
    )
    _mark_sent(ctx, tx, row.id, attempt.sets, fresh)
    return inbound


def _mark_sent(ctx: Context, tx: Tx, file_id: int, known: tuple[QueuedSet, ...], fresh: Fresh | None) -> None:
    """The file's sets and their requests become ``sent``: from the states the sender queued them
    in (``known``: guarded UPDATEs, nothing read back), else as read (``_mark_sets_sent``). The
    requests moved from ``queued`` by a guarded UPDATE go to ``fresh`` when given (their heads now,
    and the reason and payload that UPDATE returned: see ``inbound.Outcome.fresh``, ``fresh_rows``)."""
    now = ctx.clock()
    if not known or not tx.envelopes.transition_sets_from(
        [s.set_row_id for s in known], SetEvent.SEND, expect=SetState.QUEUED
    ):
        _send_requests(ctx, tx, _mark_sets_sent(tx, file_id), now)
        return
    left: list[int] = []
    for s in known:
        due = now + timedelta(minutes=ctx.config.timeouts.response_overdue_minutes(s.kind))
        if fresh is None:  # nobody renders its document in this transaction: nothing returned
            if not tx.requests.move_from(
                s.request_id, RequestEvent.SEND, expect=RequestState.QUEUED, due_at=due
            ):
                left.append(s.request_id)  # moved meanwhile (a resend): as read, as for any file
            continue
        row = tx.requests.move_from_reading(
            s.request_id, RequestEvent.SEND, expect=RequestState.QUEUED, due_at=due
        )
        if row is None:
            left.append(s.request_id)
        else:
            fresh[0][s.request_id] = RequestHead(s.request_id, s.tracking_number, s.kind, _SENT_FROM_QUEUED)
            fresh[1][s.request_id] = row
    _send_requests(ctx, tx, left, now)
