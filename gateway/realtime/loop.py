"""The run loop's exchange step for a ``transport = "core"`` partner.

Real-time mode: every queued outbound file (one request each) is POSTed now, and every file left
``uploading`` by an earlier failure, a budget the API gave up on or a crash is sent again once the
partner's ``retry_seconds`` have passed since its last attempt. Answers are recorded as downloaded
files, so the inbound stage, which runs next in the same cycle, stores them. Failures count towards
the partner's health (paused after too many), like SFTP failures. Batch mode submits the queued
files the same way and then picks up whatever results wait (``gateway.realtime.batch``).
"""

from __future__ import annotations

from gateway.errors import TransferError
from gateway.lifecycle import FileState
from gateway.realtime.batch import pick_up
from gateway.realtime.exchange import send_file
from gateway.runtime.config import PartnerConfig
from gateway.runtime.context import Context


def core_exchange(ctx: Context, partner: PartnerConfig) -> tuple[tuple[int, int], str | None]:
    """Send what is due for one CORE partner: ((files sent, answers received), last error or None)."""
    with ctx.store.read() as tx:
        rows = [
            row
            for state in (FileState.UPLOADING, FileState.QUEUED)
            for row in tx.files.query(state=state, direction="out", partner=partner.name, limit=500)
        ]
    rows.sort(key=lambda r: r.id)
    sent = got = 0
    error = None
    for row in rows:
        result = send_file(ctx, partner, row)
        if result.outcome == "skipped":
            continue
        sent += 1
        got += result.inbound_file_id is not None
        if result.outcome == "failed":
            error = result.error
            break  # the partner is failing: the rest waits for the next cycle
    if error is None and partner.core is not None and partner.core.mode == "batch":
        picked, error = pick_up(ctx, partner)
        got += picked
    return (sent, got), error


def as_transfer_error(partner: PartnerConfig, error: str) -> TransferError:
    return TransferError(error, retryable=True, partner=partner.name, operation="core post")
