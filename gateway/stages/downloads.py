"""Downloads from one partner within a cycle's budget: what is taken, what is refused, what is removed.

A partner may reuse remote names (every response ``271.x12``), so a remote file is known by name,
size and modification time (``tx.listings.version``) and, once downloaded, by its content
(``tx.listings.content``): a new version is always downloaded; with ``delete``/``move`` even a known
version is downloaded again and compared before it is removed, and a remote file is removed only when
it is the one downloaded here, unchanged since. A hostile or slow partner is held to a ``Budget`` of
files, bytes and seconds per cycle, and a file over ``max_file_bytes`` is refused unread.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import RemoteFileRefusedError, TransferError
from gateway.lifecycle import FileState
from gateway.runtime.config import PartnerConfig
from gateway.runtime.context import Context
from gateway.runtime.fsutil import atomic_write, ensure_dir, io_errors
from gateway.store.repos.listings import Listing, RemoteVersion
from gateway.transport.sftp import Fetched, RemoteEntry, SftpClient, retry


def retry_within(ctx: Context, partner: PartnerConfig, op, what: str, budget: Budget | None = None):  # type: ignore[no-untyped-def]
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
    listing = retry_within(
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
        got = retry_within(
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
    outcome = retry_within(
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
