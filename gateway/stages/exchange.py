"""SFTP stages: upload queued files and download what the clearinghouse has for us, per partner.

Every side effect is bracketed by state changes: ``queued -> uploading -> sent`` (the upload itself is
idempotent by final name and size, so a crash mid-upload re-sends safely) and, for downloads, the file
is recorded before the remote copy is deleted or moved (a crash in between finds the record on the next
listing and only finishes the clean-up). A partner that keeps failing is paused; the others go on.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from gateway.errors import RemoteFileRefusedError, TransferError
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
from gateway.runtime.fsutil import atomic_write, ensure_dir, io_errors
from gateway.runtime.health import stored_move
from gateway.store import FileRow
from gateway.store.repos.listings import Listing, RemoteVersion
from gateway.transport.sftp import Fetched, RemoteEntry, SftpClient, retry


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


def _retry(ctx: Context, partner: PartnerConfig, op, what: str, budget: Budget | None = None):  # type: ignore[no-untyped-def]
    """``retry`` with the partner's attempts; no further attempt once the cycle's budget is spent."""

    def note(attempt: int, exc: TransferError, delay: float) -> None:
        if budget is not None and budget.spent() in {"time", "stop"}:
            raise exc
        ctx.log.info(
            "retrying",
            partner=partner.name,
            operation=what,
            attempt=attempt,
            delay=round(delay, 2),
            error=str(exc),
        )

    return retry(op, attempts=partner.retry_attempts, base_delay=0.5, max_delay=10.0, on_retry=note)


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
        return client.upload(
            local,
            partner.upload_dir,
            row.name,
            before_rename=renaming,
            deadline=budget.deadline if budget is not None else None,
            stop=budget.stop if budget is not None else None,
        )

    outcome = _retry(ctx, partner, attempt, "upload", budget)
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


def download_all(
    ctx: Context, partner: PartnerConfig, client: SftpClient, budget: Budget | None = None
) -> int:
    """Take what the partner has for us, within this cycle's budget; the number of new files."""
    budget = budget if budget is not None else Budget.of(partner)
    _clear_staging(ctx, partner)
    cap = listing_cap(partner)
    listing = _retry(
        ctx,
        partner,
        lambda: client.scan(
            partner.download_dir, max_entries=cap, deadline=budget.deadline, stop=budget.stop
        ),
        "list",
        budget,
    )
    if listing.truncated:
        ctx.log.warning("remote listing cut short", partner=partner.name, entries_read=cap)
    for bad in listing.rejected:
        ctx.log.warning("remote file refused", partner=partner.name, name=bad.display, reason=bad.reason)
    got = 0
    with ctx.store.begin() as tx:  # in the store: the next listing may come from another process
        seen = tx.listings.replace(partner.name, ((e.name, e.size, e.mtime) for e in listing.entries))
    for entry in listing.entries:
        spent = budget.spent()
        if spent is not None:
            ctx.log.info("exchange budget reached; the rest next cycle", partner=partner.name, budget=spent)
            break
        if _complete(ctx, partner, entry, seen) and take(ctx, partner, client, entry, budget):
            got += 1
    return got


def listing_cap(partner: PartnerConfig) -> int:
    """How many directory entries one listing reads: ten cycles' worth of files, at least 1,000."""
    return max(1000, 10 * partner.max_files_per_cycle)


@dataclass
class Budget:
    """What one exchange may still take from a partner: files, bytes and time (``time.monotonic()``
    deadline), and a stop request from the run loop. A hostile or slow partner is held to it."""

    files: int
    bytes: int
    deadline: float
    taken: int = 0
    stop: threading.Event | None = None

    @classmethod
    def of(cls, partner: PartnerConfig, stop: threading.Event | None = None) -> Budget:
        deadline = time.monotonic() + partner.max_seconds_per_cycle
        return cls(partner.max_files_per_cycle, partner.max_bytes_per_cycle, deadline, stop=stop)

    def spent(self) -> str | None:
        """Why nothing more may be taken this cycle ("files", "bytes", "time", "stop"), or None."""
        if self.stop is not None and self.stop.is_set():
            return "stop"
        if time.monotonic() >= self.deadline:
            return "time"
        if self.files <= 0:
            return "files"
        return "bytes" if self.bytes <= 0 else None

    def fits(self, size: int) -> bool:
        """A file fits when the bytes left cover it; the first file of a cycle always fits."""
        return self.taken == 0 or size <= self.bytes

    def take(self, size: int) -> None:
        self.files -= 1
        self.bytes -= size
        self.taken += 1


def _complete(ctx: Context, partner: PartnerConfig, entry: RemoteEntry, seen: Listing) -> bool:
    """A new remote file is taken once two listings in a row show the same size and time: a partner
    that writes in place (no temporary name) may still be writing it, and a half file downloaded and
    then deleted remotely would lose the rest. A version already taken is complete by definition.
    The previous listing is the stored one, so ``run --once`` twice (or a restart) takes the file."""
    previous = seen.get(entry.name)
    if previous == (entry.size, entry.mtime) or _version(ctx, partner, entry) is not None:
        return True
    if previous is not None:
        ctx.log.info(
            "remote file not complete yet",
            partner=partner.name,
            file=entry.name,
            size=entry.size,
            previous_size=previous[0],
        )
    return False


def _version(ctx: Context, partner: PartnerConfig, entry: RemoteEntry) -> RemoteVersion | None:
    """What we did with this remote version (same name, size and modification time) before."""
    with ctx.store.read() as tx:
        return tx.listings.version(partner.name, entry.name, entry.size, entry.mtime)


def take(
    ctx: Context, partner: PartnerConfig, client: SftpClient, entry: RemoteEntry, budget: Budget
) -> bool:
    """Download one remote file version unless it was taken (or refused) before, record it unless its
    content is a file we already have (a duplicate), then delete or move the remote copy, but only
    the file downloaded here, unchanged since. True when a new file was recorded.

    A reused name never hides a new file: a new version (size or time differs) is downloaded, and
    with ``delete``/``move`` even a known version is downloaded again and compared by hash before it
    is removed, because a new file of the same size may have been written within the same second.
    """
    known = _version(ctx, partner, entry)
    if known is not None and (known.outcome == "refused" or partner.after_download == "leave"):
        return False  # refused with a logged reason once, or taken and left on the server by design
    if entry.size > partner.max_file_bytes:
        _refuse(
            ctx, partner, entry, f"{entry.size} bytes, more than max_file_bytes ({partner.max_file_bytes})"
        )
        return False
    if not budget.fits(entry.size):
        return False  # a smaller file may still fit; this one waits for the next cycle
    staging = _staging(ctx, partner)
    try:
        got = _retry(
            ctx,
            partner,
            lambda: client.fetch(
                partner.download_dir,
                entry.name,
                staging,
                max_bytes=partner.max_file_bytes,
                deadline=budget.deadline,
                stop=budget.stop,
            ),
            "download",
            budget,
        )
    except RemoteFileRefusedError as exc:
        _refuse(ctx, partner, entry, exc.why)
        return False
    budget.take(got.size)
    new = _record(ctx, partner, entry.name, got)
    _remove(ctx, partner, client, RemoteEntry(entry.name, got.size, got.mtime))
    return new


def _record(ctx: Context, partner: PartnerConfig, name: str, got: Fetched) -> bool:
    """Store the downloaded bytes and record the file (or, same name and content as a file we have,
    only the duplicate sighting); True when a new file was recorded."""
    with io_errors("read", got.path):
        data = got.path.read_bytes()
    sha, path = ctx.payloads.put(data)
    got.path.unlink(missing_ok=True)
    with ctx.store.begin() as tx:
        same = tx.listings.content(partner.name, name, sha)
        if same is None:
            row = tx.files.record(
                direction="in",
                partner=partner.name,
                name=name,
                sha256=sha,
                size=got.size,
                payload_path=str(path),
                state=FileState.DOWNLOADED,
                detail={"remote_mtime": got.mtime},
            )
            tx.listings.remember(partner.name, name, got.size, got.mtime, "new", sha256=sha, file_id=row.id)
        elif tx.listings.version(partner.name, name, got.size, got.mtime) is None:
            tx.listings.remember(
                partner.name, name, got.size, got.mtime, "duplicate", sha256=sha, file_id=same
            )
    if same is None:
        ctx.log.info("file downloaded", partner=partner.name, file=name, size=got.size, file_id=row.id)
    else:
        ctx.log.info(
            "remote file is a copy of one already taken", partner=partner.name, file=name, file_id=same
        )
    return same is None


def _remove(ctx: Context, partner: PartnerConfig, client: SftpClient, entry: RemoteEntry) -> None:
    """Delete or move the remote file just downloaded, unless another file has taken its name."""
    if partner.after_download == "leave":
        return
    archive = partner.archive_dir if partner.after_download == "move" else None
    outcome = _retry(
        ctx,
        partner,
        lambda: client.remove_unchanged(partner.download_dir, entry, archive),
        partner.after_download,
    )
    if outcome == "changed":
        ctx.log.info(
            "remote file replaced since it was downloaded: left for the next cycle",
            partner=partner.name,
            file=entry.name,
        )


def _refuse(ctx: Context, partner: PartnerConfig, entry: RemoteEntry, reason: str) -> None:
    """Refuse a remote file without taking it: recorded once with its reason (and a reason file in the
    quarantine folder for operators); it stays on the server for the partner to deal with."""
    with ctx.store.begin() as tx:
        ref = tx.listings.remember(
            partner.name, entry.name, entry.size, entry.mtime, "refused", reason=reason
        )
    folder = ensure_dir(ctx.config.folders.quarantine)
    doc = {
        "partner": partner.name,
        "file": entry.name,
        "size": entry.size,
        "mtime": entry.mtime,
        "reason": reason,
    }
    atomic_write(folder / f"remote-{partner.name}-{ref}.reason.json", json.dumps(doc).encode())
    ctx.log.warning(
        "remote file refused", partner=partner.name, file=entry.name, size=entry.size, reason=reason
    )
