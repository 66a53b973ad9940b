"""SFTP stages: upload queued files and download what the clearinghouse has for us, per partner.

Every side effect is bracketed by state changes: ``queued -> uploading -> sent`` (the upload itself is
idempotent by final name and size, so a crash mid-upload re-sends safely) and, for downloads, the file
is recorded before the remote copy is deleted or moved (a crash in between downloads it again, finds
the same content and only finishes the clean-up; see ``downloads``). A partner that keeps failing is
paused; the others go on. Each exchange keeps to the partner's ``Budget`` for a cycle.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from gateway.errors import TransferError
from gateway.lifecycle import (
    Entity,
    FileEvent,
    FileState,
    PartnerEvent,
    PartnerState,
    RequestEvent,
    SetEvent,
    allows,
)
from gateway.runtime.config import PartnerConfig
from gateway.runtime.context import Context
from gateway.runtime.health import stored_move
from gateway.stages.downloads import Budget, download_all, listing_cap, retry_within
from gateway.store import FileRow, Tx
from gateway.transport.sftp import SftpClient

__all__ = ["Budget", "download_all", "exchange", "listing_cap", "paused", "upload_all", "upload_one"]


def paused(ctx: Context, partner: PartnerConfig) -> bool:
    return ctx.health.of(partner.name).is_paused(ctx.clock())


def _failed(ctx: Context, partner: PartnerConfig, exc: TransferError) -> None:
    health = ctx.health.of(partner.name)
    paused_now = health.failed(
        ctx.clock(),
        str(exc),
        retryable=exc.retryable,
        pause_after=partner.pause_after_failures,
        pause_minutes=partner.pause_minutes,
    )
    ctx.log.warning(
        "partner exchange failed",
        partner=partner.name,
        operation=exc.operation,
        error=str(exc),
        retryable=exc.retryable,
        consecutive_failures=health.failures,
    )
    if paused_now:
        ctx.log.error("partner paused", partner=partner.name, minutes=partner.pause_minutes, error=str(exc))
        with ctx.store.begin() as tx:
            tx.audit.record_move(
                Entity.PARTNER,
                0,
                PartnerState.ACTIVE,
                PartnerEvent.PAUSE,
                {"partner": partner.name, "reason": str(exc), "minutes": partner.pause_minutes},
            )


def exchange(ctx: Context, partner: PartnerConfig, stop: threading.Event | None = None) -> tuple[int, int]:
    """Upload then download for one partner within its budget for a cycle; (files uploaded, files
    downloaded). The partner's failures are logged, counted and pause it after too many; a failure of
    our own machine (disk full, no descriptors: ``TransferError.local``, ``LocalIOError``) is raised for
    the run loop to log and retry next cycle, and is never counted against the partner."""
    if paused(ctx, partner):
        return 0, 0
    budget = Budget.of(partner, stop)
    try:
        if partner.transport == "core":
            sent, got = _core(ctx, partner)
        else:
            with SftpClient(partner.sftp_endpoint()) as client:
                sent = upload_all(ctx, partner, client, budget)
                got = download_all(ctx, partner, client, budget)
    except TransferError as exc:
        if exc.local:
            raise
        if budget.spent() == "stop":  # cut short by the gateway's own shutdown: not the partner's fault
            ctx.log.info("partner exchange stopped for shutdown", partner=partner.name)
            return 0, 0
        _failed(ctx, partner, exc)
        return 0, 0
    if ctx.health.of(partner.name).succeeded():
        with ctx.store.begin() as tx:
            tx.audit.record_move(
                Entity.PARTNER, 0, PartnerState.FAILING, PartnerEvent.RECOVER, {"partner": partner.name}
            )
    else:
        _resume_if_stored_paused(ctx, partner)
    return sent, got


def _core(ctx: Context, partner: PartnerConfig) -> tuple[int, int]:
    """A CAQH CORE partner (gateway.realtime): POST what is queued or due again; failures raise."""
    from gateway.realtime.loop import as_transfer_error, core_exchange  # noqa: PLC0415 - CORE partners only

    counts, error = core_exchange(ctx, partner)
    if error is not None:
        raise as_transfer_error(partner, error)
    return counts


def _resume_if_stored_paused(ctx: Context, partner: PartnerConfig) -> None:
    """A pause another process logged (``run --once``, a restart) ends with this process's first
    successful exchange, so ``x12gw status`` does not show the partner paused forever."""
    with ctx.store.read() as tx:
        last = stored_move(tx, partner.name)
    if last is None or last.new_state != PartnerState.PAUSED:
        return
    with ctx.store.begin() as tx:
        tx.audit.record_move(
            Entity.PARTNER, 0, PartnerState.PAUSED, PartnerEvent.RESUME, {"partner": partner.name}
        )
    ctx.log.info("partner resumed", partner=partner.name)


def upload_all(ctx: Context, partner: PartnerConfig, client: SftpClient, budget: Budget | None = None) -> int:
    """Upload what is queued for the partner (oldest first) until the cycle's time runs out."""
    with ctx.store.read() as tx:
        rows = [
            row
            for state in (FileState.RENAMING, FileState.UPLOADING, FileState.QUEUED)
            for row in tx.files.query(state=state, direction="out", partner=partner.name, limit=500)
        ]
    rows.sort(key=lambda r: r.id)
    done = 0
    for row in rows:
        if budget is not None and budget.spent() in {"time", "stop"}:
            break
        upload_one(ctx, partner, client, row, budget)
        done += 1
    return done


def upload_one(
    ctx: Context, partner: PartnerConfig, client: SftpClient, row: FileRow, budget: Budget | None = None
) -> None:
    """``queued -> uploading -> renaming -> sent``. ``renaming`` is committed once the data is
    verified on the server, before the rename: from then on (after a crash or a lost reply) only the
    rename is finished, never the data sent again, because the partner may already have taken the
    file away, and a second copy would be a second transaction."""
    if row.state == FileState.QUEUED:
        with ctx.store.begin() as tx:
            tx.files.transition(row.id, FileEvent.START_UPLOAD, expect=FileState.QUEUED)
    local = ctx.payloads.file_for(row.sha256)  # a file even when the payload is kept in the store
    phase = FileState.RENAMING if row.state == FileState.RENAMING else FileState.UPLOADING

    def renaming() -> None:
        nonlocal phase
        with ctx.store.begin() as tx:
            tx.files.transition(row.id, FileEvent.VERIFY_UPLOAD, expect=FileState.UPLOADING)
        phase = FileState.RENAMING

    def attempt() -> object:
        if phase == FileState.RENAMING:
            return client.finish_upload(partner.upload_dir, row.name) or "taken"
        return client.upload(
            local,
            partner.upload_dir,
            row.name,
            before_rename=renaming,
            deadline=budget.deadline if budget is not None else None,
            stop=budget.stop if budget is not None else None,
        )

    outcome = retry_within(ctx, partner, attempt, "upload", budget)
    if outcome == "taken":
        ctx.log.info("upload had finished before an interruption", partner=partner.name, file=row.name)
    now = ctx.clock()
    with ctx.store.begin() as tx:
        tx.files.transition(row.id, FileEvent.FINISH_UPLOAD, expect=phase)
        traces = _mark_sent(ctx, tx, row.id, now)
    ctx.log.info(
        "file uploaded",
        partner=partner.name,
        file=row.name,
        file_id=row.id,
        size=row.size,
        trace_numbers=traces,
    )


def _mark_sent(ctx: Context, tx: Tx, file_id: int, now: datetime) -> list[str]:
    """A sent file's sets move to ``sent``, and its requests too with their response due time
    (those still waiting for it), a batch at a time; their tracking numbers."""
    sets = [
        st
        for ic in tx.envelopes.interchanges_of_file(file_id)
        for g in tx.envelopes.groups_of_interchange(ic.id)
        for st in tx.envelopes.sets_of_group(g.id)
    ]
    tx.envelopes.transition_sets([st.id for st in sets], SetEvent.SEND)
    ids = [st.request_id for st in sets if st.request_id is not None]
    # answered or rejected while the upload was being finished: left as they are
    waiting = [r for r in tx.requests.heads(ids) if allows(Entity.REQUEST, r.state, RequestEvent.SEND)]
    due = {
        r.tracking_number: now + timedelta(minutes=ctx.config.timeouts.response_overdue_minutes(r.kind))
        for r in waiting
    }
    tx.requests.transition_many(list(due), RequestEvent.SEND, due_at=due)
    return list(due)
