"""CAQH CORE batch mode, for a partner that uses it instead of SFTP: submit, then pick up results.

Submitting is ``exchange.send_file`` with ProcessingMode Batch (the file goes ``sent`` on the
partner's receipt confirmation). Picking up asks for batch results per request kind until the
partner has none left; each result (a 999, a 271 or 278 response interchange) is recorded as a
downloaded file named after its PayloadID *before* it is acknowledged to the partner by that
PayloadID, so a crash in between fetches the same result again and finds it already recorded: nothing
is lost and nothing is stored twice. The inbound stage then processes the files as SFTP downloads.
"""

from __future__ import annotations

from gateway.lifecycle import FileState
from gateway.realtime.exchange import RESPONSE_KINDS, endpoint
from gateway.runtime.config import PartnerConfig
from gateway.runtime.context import Context
from gateway.transport.core_client import CoreEndpoint, CoreError, CoreReply, post
from gateway.transport.core_envelope import (
    BATCH_RESULTS_ACK,
    BATCH_RESULTS_REQUEST,
    ELEMENTS,
    CoreMessage,
    new_payload_id,
    timestamp,
)

MAX_PICKUPS = 100  # per kind and cycle; the rest waits for the next cycle


def pick_up(ctx: Context, partner: PartnerConfig) -> tuple[int, str | None]:
    """Fetch, record and acknowledge every waiting result; (files recorded, error or None)."""
    target = endpoint(partner)
    got = 0
    for kind, payload_type in BATCH_RESULTS_REQUEST.items():
        for _ in range(MAX_PICKUPS):
            try:
                reply = post(
                    target,
                    _ask(ctx, partner, payload_type, new_payload_id()),
                    ELEMENTS["batch_results_request"],
                )
            except CoreError as exc:
                return got, str(exc)
            if not reply.message.payload:
                break
            got += _record(ctx, partner, kind, reply)
            try:
                _acknowledge(ctx, partner, target, reply.message.payload_id)
            except CoreError as exc:
                return got, str(exc)
    return got, None


def _ask(ctx: Context, partner: PartnerConfig, payload_type: str, payload_id: str) -> CoreMessage:
    core = partner.core
    assert core is not None  # noqa: S101 - only CORE partners get here
    return CoreMessage(
        payload_type=payload_type,
        processing_mode="Batch",
        payload_id=payload_id,
        timestamp=timestamp(ctx.clock()),
        sender_id=core.sender_id,
        receiver_id=core.receiver_id,
    )


def _record(ctx: Context, partner: PartnerConfig, kind: str, reply: CoreReply) -> int:
    """The result as a downloaded file (1), unless a previous pick-up recorded it already (0)."""
    message = reply.message
    name = (
        f"{partner.name}-core-batch-{RESPONSE_KINDS.get(message.payload_type, kind)}-{message.payload_id}.x12"
    )
    with ctx.store.read() as tx:
        if tx.files.find(direction="in", partner=partner.name, name=name, size=len(message.payload)):
            return 0
    sha, path = ctx.payloads.put(message.payload)
    facts = {
        "transport": "core",
        "mode": "batch",
        "envelope": partner.core.envelope if partner.core else "",
        "response_payload_id": message.payload_id,
        "response_payload_type": message.payload_type,
        "http_status": reply.status,
        "elapsed_ms": reply.elapsed_ms,
    }
    with ctx.store.begin() as tx:
        tx.files.record(
            direction="in",
            partner=partner.name,
            name=name,
            sha256=sha,
            size=len(message.payload),
            payload_path=str(path),
            state=FileState.DOWNLOADED,
            detail=facts,
        )
    ctx.log.info("core batch results picked up", partner=partner.name, **facts)
    return 1


def _acknowledge(ctx: Context, partner: PartnerConfig, target: CoreEndpoint, results_id: str) -> None:
    """Tell the partner the results with this PayloadID are stored (it may delete them now)."""
    post(target, _ask(ctx, partner, BATCH_RESULTS_ACK, results_id), ELEMENTS["batch_ack"])
