"""The run loop's exchange step for a ``transport = "core"`` partner.

Real-time mode: every queued outbound file (one request each) is POSTed now (``max_connections``
at a time), and every file left ``uploading`` by an earlier failure, a budget the API gave up on or
a crash is sent again once the partner's ``retry_seconds`` have passed since its last attempt.
Answers are recorded as downloaded files, so the inbound stage, which runs next in the same cycle,
stores them. Failures count towards the partner's health (paused after too many), like SFTP
failures. Batch mode submits the queued files the same way and then picks up whatever results wait
(``gateway.realtime.batch``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from gateway.errors import TransferError
from gateway.lifecycle import FileState
from gateway.realtime.batch import pick_up
from gateway.realtime.exchange import send_file
from gateway.runtime.config import PartnerConfig
from gateway.runtime.context import Context


def core_exchange(ctx: Context, partner: PartnerConfig) -> tuple[tuple[int, int], str | None]:
    """Send what is due for one CORE partner: ((files sent, answers received), last error or None).
    Real time sends up to ``max_connections`` files at once (each file is one request)."""
    core = partner.core
    assert core is not None  # noqa: S101 - only CORE partners get here
    with ctx.store.read() as tx:
        rows = [
            row
            for state in (FileState.UPLOADING, FileState.QUEUED)
            for row in tx.files.query(state=state, direction="out", partner=partner.name, limit=500)
        ]
    rows.sort(key=lambda r: r.id)
    workers = core.max_connections if core.mode == "realtime" else 1
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"core-{partner.name}") as pool:
        results = list(pool.map(lambda row: send_file(ctx, partner, row), rows))
    done = [r for r in results if r.outcome != "skipped"]
    sent = len(done)
    got = sum(r.inbound_file_id is not None for r in done)
    error = next((r.error for r in done if r.outcome == "failed"), None)
    if error is None and core.mode == "batch":
        picked, error = pick_up(ctx, partner)
        got += picked
    return (sent, got), error


def as_transfer_error(partner: PartnerConfig, error: str) -> TransferError:
    return TransferError(error, retryable=True, partner=partner.name, operation="core post")
