"""SFTP stages: upload queued files and download what the clearinghouse has for us, per partner.

Every side effect is bracketed by state changes: ``queued -> uploading -> sent`` (the upload itself is
idempotent by final name and size, so a crash mid-upload re-sends safely) and, for downloads, the file
is recorded before the remote copy is deleted or moved (a crash in between finds the record on the next
listing and only finishes the clean-up). A partner that keeps failing is paused; the others go on.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

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
from gateway.runtime.fsutil import ensure_dir, io_errors
from gateway.runtime.health import stored_move
from gateway.store import FileRow
from gateway.store.repos.listings import Listing
from gateway.transport.sftp import SftpClient, retry


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


def exchange(ctx: Context, partner: PartnerConfig) -> tuple[int, int]:
    """Upload then download for one partner; (files uploaded, files downloaded). Never raises
    TransferError: failures are logged, counted and pause the partner after too many."""
    if paused(ctx, partner):
        return 0, 0
    try:
        if partner.transport == "core":
            sent, got = _core(ctx, partner)
        else:
            with SftpClient(partner.sftp_endpoint()) as client:
                sent = upload_all(ctx, partner, client)
                got = download_all(ctx, partner, client)
    except TransferError as exc:
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


def _retry(ctx: Context, partner: PartnerConfig, op, what: str):  # type: ignore[no-untyped-def]
    def note(attempt: int, exc: TransferError, delay: float) -> None:
        ctx.log.info(
            "retrying",
            partner=partner.name,
            operation=what,
            attempt=attempt,
            delay=round(delay, 2),
            error=str(exc),
        )

    return retry(op, attempts=partner.retry_attempts, base_delay=0.5, max_delay=10.0, on_retry=note)


def upload_all(ctx: Context, partner: PartnerConfig, client: SftpClient) -> int:
    with ctx.store.read() as tx:
        rows = [
            row
            for state in (FileState.RENAMING, FileState.UPLOADING, FileState.QUEUED)
            for row in tx.files.query(state=state, direction="out", partner=partner.name, limit=500)
        ]
    rows.sort(key=lambda r: r.id)
    for row in rows:
        upload_one(ctx, partner, client, row)
    return len(rows)


def upload_one(ctx: Context, partner: PartnerConfig, client: SftpClient, row: FileRow) -> None:
    """``queued -> uploading -> renaming -> sent``. ``renaming`` is committed once the data is
    verified on the server, before the rename: from then on (after a crash or a lost reply) only the
    rename is finished, never the data sent again, because the partner may already have taken the
    file away, and a second copy would be a second transaction."""
    if row.state == FileState.QUEUED:
        with ctx.store.begin() as tx:
            tx.files.transition(row.id, FileEvent.START_UPLOAD, expect=FileState.QUEUED)
    local = ctx.payloads.path_for(row.sha256)
    phase = FileState.RENAMING if row.state == FileState.RENAMING else FileState.UPLOADING

    def renaming() -> None:
        nonlocal phase
        with ctx.store.begin() as tx:
            tx.files.transition(row.id, FileEvent.VERIFY_UPLOAD, expect=FileState.UPLOADING)
        phase = FileState.RENAMING

    def attempt() -> object:
        if phase == FileState.RENAMING:
            return client.finish_upload(partner.upload_dir, row.name) or "taken"
        return client.upload(local, partner.upload_dir, row.name, before_rename=renaming)

    outcome = _retry(ctx, partner, attempt, "upload")
    if outcome == "taken":
        ctx.log.info("upload had finished before an interruption", partner=partner.name, file=row.name)
    now = ctx.clock()
    with ctx.store.begin() as tx:
        tx.files.transition(row.id, FileEvent.FINISH_UPLOAD, expect=phase)
        traces = []
        for ic in tx.envelopes.interchanges_of_file(row.id):
            for g in tx.envelopes.groups_of_interchange(ic.id):
                for s in tx.envelopes.sets_of_group(g.id):
                    tx.envelopes.transition_set(s.id, SetEvent.SEND)
                    if s.request_id is None:
                        continue
                    req = tx.requests.get(s.request_id)
                    if not allows(Entity.REQUEST, req.state, RequestEvent.SEND):
                        continue  # answered or rejected while the upload was being finished
                    minutes = ctx.config.timeouts.response_overdue_minutes(req.kind)
                    tx.requests.transition(
                        req.tracking_number, RequestEvent.SEND, due_at=now + timedelta(minutes=minutes)
                    )
                    traces.append(req.tracking_number)
    ctx.log.info(
        "file uploaded",
        partner=partner.name,
        file=row.name,
        file_id=row.id,
        size=row.size,
        trace_numbers=traces,
    )


def _staging(ctx: Context, partner: PartnerConfig) -> Path:
    """The partner's download staging folder (one node at a time exchanges with a partner)."""
    return ensure_dir(ctx.config.folders.work / "downloads" / partner.name)


def _clear_staging(ctx: Context, partner: PartnerConfig) -> None:
    """Remove what interrupted downloads left in the staging folder. Nothing there is recorded yet
    (a file is recorded only after its staged copy went into the payload store and was removed), and
    the remote copy is deleted only after the record, so every such file is simply fetched again."""
    staging = _staging(ctx, partner)
    with io_errors("clear", staging):
        for leftover in [p for p in staging.iterdir() if p.is_file()]:
            leftover.unlink(missing_ok=True)


def download_all(ctx: Context, partner: PartnerConfig, client: SftpClient) -> int:
    _clear_staging(ctx, partner)
    listing = _retry(ctx, partner, lambda: client.scan(partner.download_dir), "list")
    for bad in listing.rejected:
        ctx.log.warning("remote file refused", partner=partner.name, name=bad.display, reason=bad.reason)
    got = 0
    with ctx.store.begin() as tx:  # in the store: the next listing may come from another process
        seen = tx.listings.replace(partner.name, ((e.name, e.size, e.mtime) for e in listing.entries))
    for entry in listing.entries:
        if not _complete(ctx, partner, entry.name, entry.size, entry.mtime, seen):
            continue
        if download_one(ctx, partner, client, entry.name, entry.size, entry.mtime):
            got += 1
    return got


def _complete(  # noqa: PLR0917 - the listing entry's fields
    ctx: Context,
    partner: PartnerConfig,
    name: str,
    size: int,
    mtime: int | None,
    seen: Listing,
) -> bool:
    """A new remote file is taken once two listings in a row show the same size and time: a partner
    that writes in place (no temporary name) may still be writing it, and a half file downloaded and
    then deleted remotely would lose the rest. Files already recorded are complete by definition.
    The previous listing is the stored one, so ``run --once`` twice (or a restart) takes the file."""
    previous = seen.get(name)
    if previous == (size, mtime) or _known(ctx, partner, name, size) is not None:
        return True
    if previous is not None:
        ctx.log.info(
            "remote file not complete yet",
            partner=partner.name,
            file=name,
            size=size,
            previous_size=previous[0],
        )
    return False


def _known(ctx: Context, partner: PartnerConfig, name: str, size: int) -> FileRow | None:
    with ctx.store.read() as tx:
        return tx.files.find(direction="in", partner=partner.name, name=name, size=size)


def download_one(  # noqa: PLR0917 - mirrors the listing entry's fields
    ctx: Context, partner: PartnerConfig, client: SftpClient, name: str, size: int, mtime: int | None
) -> bool:
    """Fetch one remote file unless already recorded; then clean up remotely. True when new."""
    known = _known(ctx, partner, name, size)
    if known is None:
        staging = _staging(ctx, partner)
        result = _retry(
            ctx, partner, lambda: client.download(partner.download_dir, name, staging), "download"
        )
        data = Path(result.path).read_bytes()
        sha, path = ctx.payloads.put(data)
        Path(result.path).unlink(missing_ok=True)
        with ctx.store.begin() as tx:
            tx.files.record(
                direction="in",
                partner=partner.name,
                name=name,
                sha256=sha,
                size=result.size,
                payload_path=str(path),
                state=FileState.DOWNLOADED,
                detail={"remote_mtime": mtime},
            )
        ctx.log.info("file downloaded", partner=partner.name, file=name, size=result.size)
    if partner.after_download == "delete":
        _retry(ctx, partner, lambda: client.delete(partner.download_dir, name), "delete")
    elif partner.after_download == "move":
        archive = partner.archive_dir or ""  # the config requires it when after_download is "move"
        _retry(ctx, partner, lambda: client.move(partner.download_dir, name, archive), "move")
    return known is None
