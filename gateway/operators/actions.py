"""``reprocess`` and ``resend``: put work back in front of the run loop after a fix, exactly once.

Both are guarded by a state check and a state change in one database transaction (the row is locked
on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serialises writers), so running either twice, or two
operators at once, moves the row once and refuses the second time: no second request, no second
transaction set. The run loop does the rest on its next cycle, through its ordinary, crash-safe paths.

* ``reprocess FILE_ID``: a quarantined file. An inbox file (no request was created from it, or it
  would not be quarantined) goes back to ``claimed`` with its bytes in ``work/<id>__<name>``, taken
  from ``quarantine/<id>__<name>`` (where the operator may have corrected it) or else from the payload
  store; the intake stage's recovery then processes it again under the same file id. A received file
  goes back to ``downloaded`` and the inbound stage validates and applies it again.
* ``resend TRACKING``: a ``rejected``, ``invalid`` or ``overdue`` request goes back to ``new``; the
  next batch sends it with new control numbers (the tracking number, TRN02, stays the same so a late
  answer to the first attempt still matches).

Crash safety of reprocessing an inbox file: the bytes are first staged under ``work/.reprocess-<id>``
(a name the intake recovery ignores), the state change is committed, then the staged file is renamed
to its work name. Re-running ``reprocess`` after a crash finishes whichever step is missing.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.lifecycle import FileEvent, FileState, RequestEvent, RequestState
from gateway.operators.session import Session, os_user
from gateway.runtime.fsutil import atomic_write, ensure_dir, internal_name, io_errors
from gateway.store import FileRow, NotFoundError, StaleStateError
from gateway.store.store import Tx

INBOX = "inbox"
RESENDABLE = (
    RequestState.REJECTED,
    RequestState.INVALID,
    RequestState.OVERDUE,
)  # = the table's resend sources


@dataclass(frozen=True)
class ActionResult:
    """``done`` False means refused (exit 1); ``message`` says why or what happens next."""

    done: bool
    message: str
    detail: dict[str, Any] = field(default_factory=dict)


def _operator_detail(action: str, who: str | None = None) -> dict[str, Any]:
    return {"action": action, "operator": who or os_user()}


# ------------------------------------------------------------------------------------- reprocess


def _names(session: Session, f: FileRow) -> tuple[Path, Path, Path]:
    folders = session.config.folders
    base = internal_name(f.id, f.name)
    return folders.quarantine / base, folders.work / base, folders.work / f".reprocess-{base}"


def _stage_inbox_bytes(session: Session, f: FileRow) -> str:
    """Put the file's bytes at the staging name; say where they came from."""
    quarantined, _work, staged = _names(session, f)
    ensure_dir(staged.parent)
    if staged.exists():
        return "an interrupted reprocess"
    if quarantined.exists():
        with io_errors("stage", quarantined):
            data = quarantined.read_bytes()
        atomic_write(staged, data)
        return "the quarantine folder"
    stored = session.payload(f.sha256, f.payload_path)
    if stored is None:
        raise NotFoundError(f"file {f.id}: neither a quarantined copy nor the stored payload is available")
    atomic_write(staged, stored)
    return "the payload store"


def _finish_inbox(session: Session, f: FileRow) -> None:
    """Staged bytes -> work name; the quarantine copy and its reason file are then obsolete."""
    quarantined, work, staged = _names(session, f)
    if staged.exists():
        with io_errors("reprocess", staged):
            staged.replace(work)
    for leftover in (quarantined, quarantined.with_name(quarantined.name + ".reason.json")):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()


def reprocess(session: Session, file_id: int) -> ActionResult:
    """Send a quarantined inbox or inbound file through its stage again (see the module docstring)."""
    with session.store.read() as tx:
        try:
            f = tx.files.get(file_id)
        except NotFoundError:
            return ActionResult(False, f"there is no file {file_id}")
    if f.direction != "in":
        return ActionResult(False, f"file {file_id} is an outgoing file; use 'resend' for its requests")
    inbox = f.partner == INBOX
    _quarantined, work, staged = _names(session, f)
    if inbox and f.state == FileState.CLAIMED and staged.exists() and not work.exists():
        _finish_inbox(session, f)  # a previous reprocess committed and stopped before the rename
        return ActionResult(True, f"file {file_id}: finished an interrupted reprocess", {"file_id": file_id})
    if f.state != FileState.QUARANTINED:
        return ActionResult(
            False, f"file {file_id} is {f.state!r}; only quarantined files can be reprocessed"
        )
    source = _stage_inbox_bytes(session, f) if inbox else "the payload store"
    target = FileState.CLAIMED if inbox else FileState.DOWNLOADED
    try:
        with session.store.begin() as tx:
            _move(tx, file_id, target, session.who)
    except StaleStateError:
        return ActionResult(False, f"file {file_id} was changed meanwhile; nothing done")
    if inbox:
        _finish_inbox(session, f)
    else:
        _clean_inbound_quarantine(session, f)
    stage = "intake" if inbox else "inbound"
    return ActionResult(
        True,
        f"file {file_id} ({f.name}) is {target} again, from {source}; "
        f"the next cycle's {stage} stage takes it",
        {"file_id": file_id, "state": target, "source": source},
    )


def _move(tx: Tx, file_id: int, target: str, who: str) -> None:
    tx.files.transition(
        file_id,
        FileEvent.REPROCESS_INBOX if target == FileState.CLAIMED else FileEvent.REPROCESS_INBOUND,
        expect=FileState.QUARANTINED,
        reason=f"reprocessing requested by {who}",
        detail=_operator_detail("reprocess", who),
    )


def _clean_inbound_quarantine(session: Session, f: FileRow) -> None:
    quarantined, _work, _staged = _names(session, f)
    for leftover in (quarantined, quarantined.with_name(quarantined.name + ".reason.json")):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()


# ---------------------------------------------------------------------------------------- resend


def resend(session: Session, tracking: str) -> ActionResult:
    """A rejected, invalid or overdue request goes back to ``new`` (once; see the module docstring)."""
    try:
        with session.store.begin() as tx:
            req = tx.requests.get_by_tracking(tracking)
            if req is None:
                return ActionResult(False, "there is no request with that tracking number")
            if req.state not in RESENDABLE:
                return ActionResult(
                    False,
                    f"request {tracking} is {req.state!r}; only {', '.join(RESENDABLE)} requests are resent",
                )
            tx.requests.transition(
                tracking,
                RequestEvent.RESEND,
                expect=req.state,
                reason=f"resend requested by {session.who} (was {req.state})",
                detail={**_operator_detail("resend", session.who), "previous_state": req.state},
            )
    except StaleStateError:
        return ActionResult(False, f"request {tracking} was changed meanwhile; nothing done")
    return ActionResult(
        True,
        f"request {tracking} is new again (was {req.state}); "
        "the next cycle batches it with new control numbers",
        {"tracking_number": tracking, "previous_state": req.state, "state": RequestState.NEW},
    )
