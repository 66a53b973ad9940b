"""Outbound stage: queued requests become validated interchanges, one file per batch and partner.

Control numbers are allocated (and committed) before the file is built, so a crash can only leave a
harmless gap; the file, its envelopes and the requests' move to ``queued`` are one transaction, so a
request is never in two files. A request whose X12 fails the implementation guide is set aside as
``invalid`` (with the findings) instead of being sent.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gateway.lifecycle import FileState, RequestEvent, RequestState, SetState
from gateway.runtime.config import PartnerConfig
from gateway.runtime.context import Context
from gateway.stages.outbox import write_results
from gateway.store import RequestRow, StaleStateError
from transactions.envelope_writer import InterchangeHeader
from transactions.models import EligibilityInquiry
from transactions.outbound import OutboundBatch, Request, build_request_interchange
from transactions.requests_json import request_from_obj
from transactions.validation import validate

VERSIONS = {"HS": "005010X279A1", "HI": "005010X217"}


def release_expired(ctx: Context, dead: list[str]) -> int:
    """Requests a dead node was batching (lease expired, or its node known dead) return to ``new``."""
    with ctx.store.begin() as tx:
        return tx.requests.release_expired(dead_owners=dead)


def load_request(row: RequestRow) -> Request:
    body = {k: v for k, v in row.payload.items() if k != "client_reference"}
    return request_from_obj(body)


def _build(ctx: Context, partner: PartnerConfig, requests: list[Request]) -> OutboundBatch:
    ident = ctx.config.identity
    pair = (f"{ident.isa_qualifier}:{ident.isa_id}", f"{partner.isa_qualifier}:{partner.isa_id}")
    kinds = {isinstance(r, EligibilityInquiry) for r in requests}
    isa = ctx.store.allocate_control_numbers(*pair, "ISA13", 1)[0]
    groups = list(ctx.store.allocate_control_numbers(*pair, "GS06", len(kinds)))
    sets = list(ctx.store.allocate_control_numbers(*pair, "ST02", len(requests)))
    header = InterchangeHeader(
        ident.isa_qualifier,
        ident.isa_id,
        partner.isa_qualifier,
        partner.isa_id,
        isa,
        ctx.clock(),
        usage=ctx.config.gateway.usage,
    )
    return build_request_interchange(
        requests,
        header,
        application_sender=ident.gs_id,
        application_receiver=partner.gs_id,
        group_controls=groups,
        set_controls=sets,
    )


def _rejected_sets(data: bytes) -> dict[str, str]:
    """ST02 -> first finding, for every set of a freshly built interchange that the guide rejects."""
    report = validate(data)
    out: dict[str, str] = {}
    for ic in report.interchanges:
        for g in ic.groups:
            for s in g.sets:
                if not s.accepted:
                    first = next((f for f in s.findings if f.severity == "error"), None)
                    out[s.control_number] = first.message if first else "rejected by the implementation guide"
    return out


def batch_partner(ctx: Context, partner: PartnerConfig) -> int:
    """Build one file from up to ``max_transactions_per_file`` new requests; returns requests queued."""
    until = ctx.clock() + timedelta(seconds=ctx.config.gateway.lease_seconds)
    with ctx.store.begin() as tx:
        rows = tx.requests.claim(
            partner=partner.name, owner=ctx.node_id, until=until, limit=partner.max_transactions_per_file
        )
    if not rows:
        return 0
    requests = [load_request(r) for r in rows]
    batch = _build(ctx, partner, requests)
    rejected = _rejected_sets(batch.data)
    if rejected:
        _set_aside(ctx, batch, rejected, [r.tracking_number for r in rows])
        return batch_partner(ctx, partner)  # the rest, without the invalid ones
    kind = (
        "270"
        if all(isinstance(r, EligibilityInquiry) for r in requests)
        else ("278" if not any(isinstance(r, EligibilityInquiry) for r in requests) else "mixed")
    )
    name = partner.file_name(kind, batch.interchange_control, ctx.clock())
    sha, path = ctx.payloads.put(batch.data)
    try:
        _record(ctx, partner, rows, requests, batch, name, sha, str(path))
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


def _set_aside(ctx: Context, batch: OutboundBatch, rejected: dict[str, str], claimed: list[str]) -> None:
    """Invalid requests become ``invalid``; the valid ones go back to ``new`` for the next batch."""
    by_control = {f"{ctl:04d}": trace for trace, ctl in batch.set_controls}
    invalid = [t for c, t in by_control.items() if c in rejected]
    with ctx.store.begin() as tx:
        for valid in claimed:
            if valid not in invalid:
                tx.requests.transition(valid, RequestEvent.RELEASE, expect=RequestState.BATCHING)
        for control, why in rejected.items():
            tracking = by_control.get(control)
            if tracking:
                tx.requests.transition(
                    tracking,
                    RequestEvent.SET_ASIDE,
                    expect=RequestState.BATCHING,
                    reason=f"implementation guide: {why}",
                )
    write_results(ctx, invalid)
    ctx.log.warning("requests set aside as invalid", count=len(rejected), trace_numbers=invalid)


def _record(  # noqa: PLR0917 - one call site; the parts of one batch
    ctx: Context,
    partner: PartnerConfig,
    rows: list[RequestRow],
    requests: list[Request],
    batch: OutboundBatch,
    name: str,
    sha: str,
    path: str,
) -> None:
    ident = ctx.config.identity
    by_tracking = {r.tracking_number: r for r in rows}
    with ctx.store.begin() as tx:
        f = tx.files.record(
            direction="out",
            partner=partner.name,
            name=name,
            sha256=sha,
            size=len(batch.data),
            payload_path=path,
            state=FileState.QUEUED,
            detail={"requests": len(rows)},
        )
        ic = tx.envelopes.record_interchange(
            file_id=f.id,
            control_number=batch.interchange_control,
            sender=f"{ident.isa_qualifier}:{ident.isa_id}",
            receiver=f"{partner.isa_qualifier}:{partner.isa_id}",
            interchange_at=ctx.clock(),
        )
        group_ids: dict[str, Any] = {}
        fids = [
            fid
            for fid in ("HS", "HI")
            if any(isinstance(r, EligibilityInquiry) == (fid == "HS") for r in requests)
        ]
        for fid, control in zip(fids, batch.group_controls, strict=True):
            group_ids[fid] = tx.envelopes.record_group(
                interchange_id=ic.id, control_number=control, functional_id=fid, version=VERSIONS[fid]
            ).id
        for (tracking, control), req in zip(batch.set_controls, requests, strict=True):
            fid = "HS" if isinstance(req, EligibilityInquiry) else "HI"
            row = by_tracking[tracking]
            tx.envelopes.record_set(
                interchange_id=ic.id,
                group_id=group_ids[fid],
                control_number=f"{control:04d}",
                set_id="270" if fid == "HS" else "278",
                trace_numbers=[tracking],
                bht03=tracking,
                state=SetState.QUEUED,
                request_id=row.id,
            )
            tx.requests.transition(
                tracking, RequestEvent.QUEUE, expect=RequestState.BATCHING, detail={"file_id": f.id}
            )


def batch_all(ctx: Context) -> int:
    queued = 0
    for partner in ctx.config.partners:
        while (n := batch_partner(ctx, partner)) > 0:
            queued += n
    return queued
