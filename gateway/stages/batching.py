"""Outbound stage: queued requests become validated interchanges, one file per batch and partner.

Control numbers are allocated and committed with the claim of the requests, before the file is
built, so a crash can only leave a harmless gap; the file, its envelopes and the requests' move to
``queued`` are one transaction, so a request is never in two files. A request whose X12 fails the
implementation guide, or that cannot be written as X12 at all (a value holding a delimiter
character), is set aside as ``invalid`` (with the reason) instead of being sent, so it cannot block
the requests batched with it, cycle after cycle. A real-time API call's request is built and queued
in the transaction that records the call (``build_one`` before it, ``record_built`` in it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gateway.lifecycle import Entity, FileEvent, FileState, RequestEvent, RequestState, SetState
from gateway.runtime.config import PartnerConfig
from gateway.runtime.context import Context
from gateway.stages.outbox import write_results
from gateway.store import FileRow, RequestRow, StaleStateError, Tx, sealing
from gateway.store.payloads import Payload
from gateway.store.repos.envelopes import NewSet
from transactions.envelope_writer import InterchangeHeader
from transactions.errors import X12WriteError
from transactions.findings import SetReport
from transactions.outbound import OutboundBatch, Request, build_request_interchange, request_kind
from transactions.requests_json import request_from_obj
from transactions.segment import Delimiters
from transactions.validation import validate, validate_written


def release_expired(ctx: Context, dead: list[str]) -> int:
    """Requests a dead node was batching (lease expired, or its node known dead) return to ``new``."""
    with ctx.store.begin() as tx:
        return tx.requests.release_expired(dead_owners=dead)


def load_request(row: RequestRow) -> Request:
    body = {k: v for k, v in row.payload.items() if k != "client_reference"}
    return request_from_obj(body)


@dataclass(frozen=True)
class _Numbers:
    """The control numbers of one interchange, taken with the claim of its requests."""

    isa: int
    groups: list[int]
    sets: list[int]


def _numbers(ctx: Context, tx: Tx, partner: PartnerConfig, requests: list[Request]) -> _Numbers:
    """ISA13, one GS06 per functional group and one ST02 per request, in the claim's transaction: the
    claim and its numbers are one commit, and both are committed before the file is built."""
    ident = ctx.config.identity
    pair = (f"{ident.isa_qualifier}:{ident.isa_id}", f"{partner.isa_qualifier}:{partner.isa_id}")
    kinds = {request_kind(r).functional_id for r in requests}
    take = ctx.store.allocate_control_numbers
    return _Numbers(
        take(*pair, "ISA13", 1, tx=tx)[0],
        list(take(*pair, "GS06", len(kinds), tx=tx)),
        list(take(*pair, "ST02", len(requests), tx=tx)),
    )


def _build(
    ctx: Context,
    partner: PartnerConfig,
    requests: list[Request],
    numbers: _Numbers,
    *,
    keep_segments: bool = False,
) -> OutboundBatch:
    ident = ctx.config.identity
    header = InterchangeHeader(
        ident.isa_qualifier,
        ident.isa_id,
        partner.isa_qualifier,
        partner.isa_id,
        numbers.isa,
        ctx.clock(),
        usage=ctx.config.gateway.usage,
    )
    return build_request_interchange(
        requests,
        header,
        application_sender=ident.gs_id,
        application_receiver=partner.gs_id,
        group_controls=numbers.groups,
        set_controls=numbers.sets,
        keep_segments=keep_segments,
    )


def _rejected_sets(data: bytes) -> dict[str, str]:
    """ST02 -> first finding, for every set of a freshly built interchange that the guide rejects."""
    report = validate(data)
    return _rejected([s for ic in report.interchanges for g in ic.groups for s in g.sets])


def _rejected_written(batch: OutboundBatch) -> dict[str, str]:
    """``_rejected_sets(batch.data)`` from the segments the batch kept (built with ``keep_segments``),
    without reading its bytes back: the same verdicts (``tests/test_batching_written.py``)."""
    return _rejected(validate_written(batch.written, Delimiters()))


def _rejected(sets: list[SetReport]) -> dict[str, str]:
    out: dict[str, str] = {}
    for s in sets:
        if not s.accepted:
            first = next((f for f in s.findings if f.severity == "error"), None)
            out[s.control_number] = first.message if first else "rejected by the implementation guide"
    return out


@dataclass(frozen=True)
class QueuedSet:
    """One transaction set of a file just queued, as recorded: what sending the file moves (its
    set row, and its request, ``queued``), so the sender need not read it back."""

    set_row_id: int
    request_id: int
    tracking_number: str
    kind: str


@dataclass(frozen=True)
class Queued:
    """A new outbound file as recorded (``queued``, or ``uploading`` when its first attempt was
    started with it), its set kind (or ``mixed``) and its sets in file order."""

    file: FileRow
    kind: str
    sets: tuple[QueuedSet, ...]


# called inside the transaction that records a new outbound file: the real-time sender starts its
# attempt there (``start_upload``), so recording the file and starting the upload are one commit
OnQueued = Callable[[Tx, Queued], None]


def batch_partner(
    ctx: Context,
    partner: PartnerConfig,
    request_id: int | None = None,
    kind: str | None = None,
    *,
    on_queued: OnQueued | None = None,
    start_upload: Mapping[str, Any] | None = None,
) -> int:
    """Build one file from up to ``max_transactions_per_file`` new requests (only ``request_id`` when
    given: a real-time request sent now; only ``kind``, when given); returns requests queued.
    ``on_queued(tx, queued)`` runs in the transaction that records the file; with ``start_upload``
    (an attempt's detail) the file is recorded with its first attempt started (``queued ->
    uploading``, logged with that detail)."""
    until = ctx.clock() + timedelta(seconds=ctx.config.gateway.lease_seconds)
    with ctx.store.begin() as tx:
        rows = tx.requests.claim(
            partner=partner.name,
            owner=ctx.node_id,
            until=until,
            limit=partner.max_transactions_per_file,
            request_id=request_id,
            kind=kind,
        )
        requests = [load_request(r) for r in rows]
        numbers = _numbers(ctx, tx, partner, requests) if rows else None
    if numbers is None:
        return 0
    claimed = [r.tracking_number for r in rows]
    try:
        batch = _build(ctx, partner, requests, numbers)
    except X12WriteError:
        unwritable = _unwritable(ctx, partner, requests)
        if not unwritable:
            raise
        _set_aside(ctx, unwritable, claimed)
        return batch_partner(ctx, partner, request_id, kind, on_queued=on_queued, start_upload=start_upload)
    rejected = _rejected_sets(batch.data)
    if rejected:
        by_control = {s.control_number: s.trace_number for s in batch.sets}
        why = {by_control[c]: f"implementation guide: {m}" for c, m in rejected.items() if c in by_control}
        _set_aside(ctx, why, claimed)
        # without the invalid
        return batch_partner(ctx, partner, request_id, kind, on_queued=on_queued, start_upload=start_upload)
    kinds = {s.set_id for s in batch.sets}
    set_kind = kinds.pop() if len(kinds) == 1 else "mixed"
    name = partner.file_name(set_kind, batch.interchange_control, ctx.clock())
    sha, path = ctx.payloads.put(batch.data)
    try:
        with ctx.store.begin() as tx:
            stored = (name, sha, str(path), set_kind)
            _record(ctx, tx, partner, rows, batch, stored, _Then(on_queued, start_upload))
    except StaleStateError:
        return 0  # another worker took some of these requests; the numbers are a harmless gap
    ctx.log.info(
        "batch queued",
        partner=partner.name,
        file=name,
        interchange=batch.interchange_control,
        requests=len(rows),
        trace_numbers=[r.tracking_number for r in rows],
    )
    return len(rows)


def _unwritable(ctx: Context, partner: PartnerConfig, requests: list[Request]) -> dict[str, str]:
    """Tracking number -> reason, for each request that cannot be written as X12 at all (a value holds
    a delimiter character). Each is built alone, with placeholder control numbers: nothing allocated."""
    ident = ctx.config.identity
    header = InterchangeHeader(
        ident.isa_qualifier, ident.isa_id, partner.isa_qualifier, partner.isa_id, 1, ctx.clock()
    )
    out: dict[str, str] = {}
    for req in requests:
        try:
            build_request_interchange(
                [req],
                header,
                application_sender=ident.gs_id,
                application_receiver=partner.gs_id,
                group_controls=[1],
                set_controls=[1],
            )
        except X12WriteError as exc:
            out[req.trace_number] = f"cannot be written as X12: {exc}"
    return out


def _set_aside(ctx: Context, invalid: dict[str, str], claimed: list[str]) -> None:
    """Requests in ``invalid`` (tracking number -> reason) become ``invalid``; the other claimed ones
    go back to ``new`` for the next batch."""
    with ctx.store.begin() as tx:
        for valid in claimed:
            if valid not in invalid:
                tx.requests.transition(valid, RequestEvent.RELEASE, expect=RequestState.BATCHING)
        for tracking, why in invalid.items():
            tx.requests.transition(tracking, RequestEvent.SET_ASIDE, expect=RequestState.BATCHING, reason=why)
    write_results(ctx, list(invalid))
    ctx.log.warning("requests set aside as invalid", count=len(invalid), trace_numbers=list(invalid))


@dataclass(frozen=True)
class _Then:
    """What ``_record`` does besides recording: ``on_queued``, the first attempt's detail when the
    file is recorded ``uploading`` (``start_upload``), and whether the requests were already moved
    to ``queued`` by their claim (``record_built``: only their last change is left to log)."""

    on_queued: OnQueued | None = None
    start_upload: Mapping[str, Any] | None = None
    requests_moved: bool = False


def _record(  # noqa: PLR0917 - the parts of one batch
    ctx: Context,
    tx: Tx,
    partner: PartnerConfig,
    rows: list[RequestRow],
    batch: OutboundBatch,
    stored: tuple[str, str, str | None, str],
    then: _Then,
) -> None:
    """In the caller's transaction: the file, its envelopes (as the batch says they were written) and
    the requests' move to queued (``stored``: the file's name, payload hash and path, and its set kind
    or ``mixed``)."""
    name, sha, path, set_kind = stored
    ident = ctx.config.identity
    by_tracking = {r.tracking_number: r for r in rows}
    upload = [(FileEvent.START_UPLOAD, then.start_upload)] if then.start_upload is not None else []
    f = tx.files.record(
        direction="out",
        partner=partner.name,
        name=name,
        sha256=sha,
        size=len(batch.data),
        payload_path=path,
        state=FileState.QUEUED,
        detail={"requests": len(rows)},
        then=upload,
    )
    ic = tx.envelopes.record_interchange(
        file_id=f.id,
        control_number=batch.interchange_control,
        sender=f"{ident.isa_qualifier}:{ident.isa_id}",
        receiver=f"{partner.isa_qualifier}:{partner.isa_id}",
        interchange_at=ctx.clock(),
    )
    group_ids: dict[str, Any] = {}
    for g in batch.groups:
        group_ids[g.functional_id] = tx.envelopes.record_group(
            interchange_id=ic.id,
            control_number=g.control_number,
            functional_id=g.functional_id,
            version=g.version,
        ).id
    set_ids = tx.envelopes.record_sets(
        [
            NewSet(
                interchange_id=ic.id,
                group_id=group_ids[written.functional_id],
                control_number=written.control_number,
                set_id=written.set_id,
                trace_numbers=(written.trace_number,),
                bht03=written.trace_number,
                state=SetState.QUEUED,
                request_id=by_tracking[written.trace_number].id,
            )
            for written in batch.sets
        ]
    )
    queued = [w.trace_number for w in batch.sets]
    if then.requests_moved:  # moved with their claim: the queue step's log rows are left
        changes = [(by_tracking[t].id, RequestState.BATCHING, RequestState.QUEUED) for t in queued]
        tx.audit.record_changes(Entity.REQUEST, changes, {"file_id": f.id})
    else:
        tx.requests.transition_many(
            queued, RequestEvent.QUEUE, expect=RequestState.BATCHING, detail={"file_id": f.id}
        )
    if then.on_queued is not None:
        sets = tuple(
            QueuedSet(set_id, by_tracking[w.trace_number].id, w.trace_number, w.set_id)
            for set_id, w in zip(set_ids, batch.sets, strict=True)
        )
        then.on_queued(tx, Queued(f, set_kind, sets))


@dataclass(frozen=True)
class Built:
    """One request's interchange built, validated and stored (payload durable) before the
    transaction that records it (``record_built``): the batch and its file's name, hash and path."""

    batch: OutboundBatch
    stored: tuple[str, str, str | None, str]  # name, payload hash, payload path (None: a blob), set kind
    payload: Payload  # kept in the store by ``record_built``'s transaction (when small)
    also: tuple[Payload, ...] = ()  # other staged payloads that transaction keeps (one statement)


def build_one(
    ctx: Context,
    partner: PartnerConfig,
    request: Request,
    numbers: tuple[int, int, int],
    *,
    also: tuple[Payload, ...] = (),
) -> Built | None:
    """The interchange of one request with these (ISA13, GS06, ST02), built, validated and its payload
    stored, outside any transaction (a real-time API call: see ``gateway.realtime.numbers``); None when
    it cannot be written as X12 or the guide rejects its set (the request is then recorded ``new`` and
    ``batch_partner`` sets it aside with the reason, as for any batch; the numbers are a gap).
    ``also``: payloads staged by the caller that ``record_built`` keeps in the same statement."""
    isa, gs, st = numbers
    try:
        batch = _build(ctx, partner, [request], _Numbers(isa, [gs], [st]), keep_segments=True)
    except X12WriteError:
        return None
    if _rejected_written(batch):
        return None
    set_kind = batch.sets[0].set_id
    name = partner.file_name(set_kind, batch.interchange_control, ctx.clock())
    seal_names_ahead(ctx, name)
    payload = ctx.payloads.stage(batch.data)
    return Built(batch, (name, payload.sha256, payload.payload_path, set_kind), payload, also)


@dataclass(frozen=True)
class ClaimedOnInsert:
    """How a request recorded for a real-time call whose interchange is ``built`` already is
    inserted claimed and queued (``RequestsRepo.insert(then=, ahead=, lease=)``): the claim's step
    logged with the insert, the move to ``queued`` left for ``record_built`` to log with the file's
    id. The same row and event log as inserting it ``new`` and claiming it in an UPDATE, one
    statement less (``tests/test_realtime_claim_insert.py``)."""

    then: tuple[tuple[RequestEvent, Mapping[str, Any] | None], ...]
    ahead: tuple[RequestEvent, ...]
    lease: tuple[str, datetime]


def claimed_on_insert(ctx: Context) -> ClaimedOnInsert:
    """The claim (this node, for ``lease_seconds``) and queueing a request is inserted with."""
    until = ctx.clock() + timedelta(seconds=ctx.config.gateway.lease_seconds)
    claim = ((RequestEvent.CLAIM_FOR_BATCH, {"node": ctx.node_id}),)
    return ClaimedOnInsert(claim, (RequestEvent.QUEUE,), (ctx.node_id, until))


def seal_names_ahead(ctx: Context, *names: str) -> None:
    """Seal file names that a transaction about to begin records, before it: the key ring keeps a
    name's token (``KeyRing.seal_name``: deterministic, the same token whenever it is sealed), so the
    INSERT's binding finds it instead of encrypting under the writer lock. What is stored is the
    same; a ring that dropped the pair meanwhile seals it again."""
    ring = sealing.ring_of(ctx.store.engine.dialect)
    if ring is not None:
        for name in names:
            ring.seal_name(name)


def record_built(
    ctx: Context,
    tx: Tx,
    partner: PartnerConfig,
    row: RequestRow,
    built: Built,
    *,
    on_queued: OnQueued,
    start_upload: Mapping[str, Any] | None = None,
    inserted_queued: bool = False,
) -> bool:
    """Queue a request recorded ``new`` in this transaction with its interchange ``built`` before it:
    its claim, the file (with ``start_upload``, its first attempt started), its envelopes, the
    request's ``new -> batching -> queued`` and ``on_queued``, all in the caller's commit (the API's
    real-time call: recording it and queueing its interchange are one commit, so a crash leaves all
    of it or none, and the client retries). The request moves to ``queued`` in the claim's one
    UPDATE (both changes logged): nobody else can see a row this transaction has not committed.
    ``inserted_queued``: the request was inserted claimed and queued already (``claimed_on_insert``),
    so no UPDATE at all; only its move to ``queued`` is left to log."""
    if not inserted_queued:
        until = ctx.clock() + timedelta(seconds=ctx.config.gateway.lease_seconds)
        claimed = tx.requests.claim_recorded(
            row.id, partner=partner.name, owner=ctx.node_id, until=until, then=RequestEvent.QUEUE
        )
        if not claimed:
            ctx.payloads.record(tx, *built.also)  # the caller's, kept all the same
            return False
    elif row.state != RequestState.QUEUED or row.partner != partner.name:
        raise ValueError("record_built(inserted_queued=True) needs a request inserted queued for the partner")
    ctx.payloads.record(tx, *built.also, built.payload)  # our 270 commits with the file row naming it
    then = _Then(on_queued, start_upload, requests_moved=True)
    _record(ctx, tx, partner, [row], built.batch, built.stored, then)
    return True


def batch_all(ctx: Context) -> int:
    queued = 0
    for partner in ctx.config.partners:
        # a CORE batch submission carries one payload type: 270s and 278s go in separate interchanges
        by_kind = partner.core is not None and partner.core.mode == "batch"
        for kind in ("270", "278") if by_kind else (None,):
            while (n := batch_partner(ctx, partner, kind=kind)) > 0:
                queued += n
    return queued
