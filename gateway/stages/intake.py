"""Inbox stage: billing systems' files become requests in the store, ready to be batched.

Crash safety: a file is first recorded (state ``claiming``) and only then renamed into the work
folder under a name derived from the file id (``<id>.<ext>``; the original name is kept only in the
store); every later step is a state transition plus an idempotent file move, so :func:`recover` can
finish whatever a crash interrupted without losing or duplicating a request. One file's fault never
stops the inbox: :func:`_take_one` retries it later or quarantines it, and the next file is taken.

Several nodes: a claim belongs to the node that recorded it (``lease_owner``); every later move of
the file checks that owner under the row lock, so recovery takes over only the claims of nodes known
dead (:func:`recover`), and a node whose claim was taken over (it was only slow) can neither record
its requests nor quarantine the file: the file is taken exactly once.
"""

from __future__ import annotations

import dataclasses
import json
import unicodedata
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.errors import StoreError
from gateway.lifecycle import FileEvent, FileState
from gateway.runtime.context import Context
from gateway.runtime.filemask import mask_file_name
from gateway.runtime.fsutil import (
    Candidate,
    LocalIOError,
    atomic_write,
    complete_files,
    ensure_dir,
    file_id_of,
    internal_name,
    io_errors,
    move,
    read_capped,
    sha256_file,
    storable_name,
)
from gateway.runtime.logsetup import phi_scope
from gateway.runtime.outage import is_outage
from gateway.stages.precert_gate import precert_gate
from gateway.store import StaleStateError, hash_member_id, hash_patient
from transactions.build270 import read_270
from transactions.build278 import read_278_request
from transactions.envelope_writer import InterchangeHeader
from transactions.errors import RequestError, X12GatewayError, X12WriteError
from transactions.outbound import Request, build_request_interchange, request_kind
from transactions.requests_csv import parse_csv
from transactions.requests_json import parse_request_document, request_to_obj
from transactions.segment import Delimiters
from transactions.validation import Options, validate_detailed

INBOX = "inbox"


@dataclass
class Parsed:
    """What a file holds: good requests (with the billing system's own reference) and per-item errors."""

    requests: list[tuple[Request, str]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    file_error: str | None = None


# Input that trips a parser into a plain Python error; the message is not shown (it may quote data).
_PARSER_BUGS = (TypeError, ValueError, LookupError, AttributeError, ArithmeticError, RecursionError)


def parse_inbox_bytes(data: bytes, name: str) -> Parsed:
    """Requests in a JSON, CSV or X12 file; format by content (X12 starts with ISA) or extension."""
    out = Parsed()
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:3]
    try:
        if head == b"ISA":
            _parse_x12(data, out)
        elif name.lower().endswith(".csv"):
            for i, row in enumerate(parse_csv(data.decode("utf-8-sig"))):
                _take(out, row, i)
        else:
            for i, item in enumerate(parse_request_document(data)):
                _take(out, item, i)
    except RequestError as exc:
        out.file_error = str(exc)
    except UnicodeDecodeError:
        out.file_error = "file is not UTF-8 text"
    except _PARSER_BUGS as exc:  # a parser bug must quarantine the file, not stall the inbox
        out.requests.clear()
        out.errors.clear()
        out.file_error = f"file could not be read as requests ({type(exc).__name__})"
    if not out.requests and not out.errors and out.file_error is None:
        out.file_error = "file holds no request"
    return out


def _take(out: Parsed, item: Request | RequestError, index: int) -> None:
    if isinstance(item, RequestError):
        out.errors.append({"index": index, "field": item.field, "reason": item.reason})
    elif (where := _unstorable(item)) is not None:
        out.errors.append({"index": index, "field": where, "reason": UNSTORABLE})
    elif (where := _first_text(item, _has_delimiter)) is not None:
        out.errors.append({"index": index, "field": where, "reason": UNSENDABLE})
    elif (why := _unwritable(item)) is not None:
        out.errors.append({"index": index, "field": "request", "reason": why})
    else:
        out.requests.append((item, item.trace_number))


def request_problems(req: Request) -> list[dict[str, Any]]:
    """The inbox's checks of one well-formed request (storable, sendable, writable as X12), as the
    ``{"field", "reason"}`` problems a quarantine reason lists; the HTTP API answers them as a 422."""
    out = Parsed()
    _take(out, req, 0)
    return [{"field": e["field"], "reason": e["reason"]} for e in out.errors]


_PROBE_HEADER = InterchangeHeader("ZZ", "PROBE", "ZZ", "PROBE", 1, datetime(2000, 1, 1, tzinfo=UTC))


def _unwritable(req: Request) -> str | None:
    """Why the request cannot be written as X12 (an X12 delimiter inside a value), or None.

    Found here, the file is quarantined with the reason (which names the element, never the value);
    found only when the batch is built, the same request would fail its partner's batch every cycle.
    The client's trace number is replaced by our tracking number before sending, so it is not probed.
    """
    probe = replace(req, trace_number="PROBE00001", trace_assigner="9000000000")
    try:
        build_request_interchange(
            [probe],
            _PROBE_HEADER,
            application_sender="PROBE",
            application_receiver="PROBE",
            group_controls=[1],
            set_controls=[1],
        )
    except X12WriteError as exc:
        return str(exc)
    return None


UNSTORABLE = "contains a control character or invalid Unicode (a lone surrogate)"
_DELIMITERS = Delimiters().all()
UNSENDABLE = f"contains an X12 delimiter character ({' '.join(sorted(_DELIMITERS))})"


def _has_delimiter(text: str) -> bool:
    """The batch writer refuses such text (it would split an element): refuse it here, with a reason."""
    return not _DELIMITERS.isdisjoint(text)


def _unstorable(value: Any, path: str = "") -> str | None:
    """Path of the first text holding a control character or lone surrogate, or None. JSON allows both
    (as escapes), but no database column, hash or X12 element can carry them."""
    return _first_text(value, lambda t: any(unicodedata.category(c) in ("Cc", "Cs") for c in t), path)


def _first_text(value: Any, bad: Callable[[str], bool], path: str = "") -> str | None:
    """Path of the first text in a request for which ``bad`` is true, or None. Walks the model itself
    (field names are its JSON keys), so a request is turned into JSON only once, when it is stored."""
    if isinstance(value, str):
        return (path or "request") if bad(value) else None
    items: Iterable[tuple[Any, Any]] = ()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = ((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
    elif isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    for key, item in items:
        found = _first_text(item, bad, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


def _parse_x12(data: bytes, out: Parsed) -> None:
    validation = validate_detailed(data, Options())
    report = validation.report
    if report.fatal:
        out.file_error = f"not readable X12: {report.fatal}"
        return
    by_offset = {s.report.offset: s for s in validation.sets}
    index = 0
    for ic in report.interchanges:
        if ic.rejected and ic.ta1 is not None:
            out.errors.append(
                {"index": index, "field": "ISA", "reason": f"interchange rejected: {ic.ta1.message}"}
            )
        for g in ic.groups:
            for s in g.sets:
                vs = by_offset[s.offset]
                if s.map not in ("270", "278req"):
                    out.errors.append(
                        {
                            "index": index,
                            "field": f"ST {s.control_number}",
                            "reason": "not a 270 or 278 request",
                        }
                    )
                elif not s.accepted or ic.rejected:
                    first = next((f for f in s.findings if f.severity == "error"), None)
                    why = first.message if first else "transaction set rejected"
                    out.errors.append({"index": index, "field": f"ST {s.control_number}", "reason": why})
                else:
                    body = vs.segments[1:-1]
                    try:
                        req: Request = read_270(body) if s.map == "270" else read_278_request(body)
                        _take(out, req, index)
                    except (RequestError, ValueError) as exc:
                        reason = exc.reason if isinstance(exc, RequestError) else "unreadable request"
                        out.errors.append(
                            {"index": index, "field": f"ST {s.control_number}", "reason": reason}
                        )
                index += 1


def _work_path(ctx: Context, file_id: int, name: str) -> Path:
    return ctx.config.folders.work / internal_name(file_id, name)


def claim(ctx: Context, cand: Candidate) -> int | None:
    """Record the file, then move it into the work folder; None if it vanished meanwhile."""
    try:
        sha, size = sha256_file(cand.path)
    except LocalIOError:
        if not cand.path.exists():
            return None  # another node claimed it first (shared inbox), or its writer took it back
        raise
    with ctx.store.begin() as tx:
        row = tx.files.record(
            direction="in",
            partner=INBOX,
            name=storable_name(cand.path.name),
            sha256=sha,
            size=size,
            payload_path=None,
            state=FileState.CLAIMING,
            owner=ctx.node_id,
        )
    return row.id if _finish_claim(ctx, row.id, row.name, sha, cand.path) else None


def _finish_claim(ctx: Context, file_id: int, name: str, sha: str, source: Path | None = None) -> bool:
    """``source`` is the inbox path; after a crash it is found by the stored name (a name that was
    not UTF-8 is then not found: the row ends ``vanished`` and the file is claimed again)."""
    work = _work_path(ctx, file_id, name)
    source = source or ctx.config.folders.inbox / name
    if not work.exists():
        if not source.exists() or sha256_file(source)[0] != sha:
            with ctx.store.begin() as tx:
                tx.files.transition(
                    file_id,
                    FileEvent.VANISH,
                    expect=FileState.CLAIMING,
                    reason="the inbox file disappeared or changed before it could be claimed",
                    owner=ctx.node_id,
                )
            return False
        ensure_dir(work.parent)
        with io_errors("claim", source):
            source.rename(work)
    with ctx.store.begin() as tx:
        tx.files.transition(
            file_id, FileEvent.CLAIM, expect=FileState.CLAIMING, owner=ctx.node_id, keep_claim=True
        )
    return True


def _reason_file(ctx: Context, name: str, doc: dict[str, Any]) -> None:
    folder = ensure_dir(ctx.config.folders.quarantine)
    atomic_write(folder / f"{name}.reason.json", json.dumps(doc, indent=2).encode())


def process(ctx: Context, file_id: int) -> str:
    """Turn a claimed file into requests (one transaction) and say the file's new state."""
    with ctx.store.read() as tx:
        row = tx.files.get(file_id)
    work = _work_path(ctx, file_id, row.name)
    settings = ctx.config.inbox
    data = read_capped(work, settings.max_file_bytes)
    if data is None:  # too large: neither read nor copied into the payloads
        too_large = Parsed(file_error=f"larger than the {settings.max_file_bytes}-byte limit")
        return _store_requests(ctx, file_id, row.name, too_large, None, False, None)
    sha, payload_path = ctx.payloads.put(data)
    if not data.strip():  # every empty file has the same SHA-256: it is empty, not a duplicate
        empty = Parsed(file_error="the file is empty")
        return _store_requests(ctx, file_id, row.name, empty, None, False, payload_path)
    with ctx.store.read() as tx:
        dup = tx.files.find_by_sha256(
            sha,
            within=timedelta(hours=settings.duplicate_window_hours),
            direction="in",
            exclude_id=file_id,
        )
    parsed = Parsed() if dup else parse_inbox_bytes(data, row.name)
    with phi_scope(v for req, _ in parsed.requests for v in phi_values(req)):
        return _store_requests(
            ctx,
            file_id,
            row.name,
            parsed,
            dup.id if dup else None,
            dup is not None and dup.partner == INBOX,
            payload_path,
        )


def phi_values(req: Request) -> list[str | date | None]:
    """The PHI of one request, registered with the log redactor while its file is processed."""
    people = [req.subscriber, *([req.dependent] if req.dependent else [])]
    return [v for p in people for v in (p.last_name, p.first_name, p.middle_name, p.member_id, p.birth_date)]


def _store_requests(  # noqa: PLR0917 - the parts of one processed inbox file
    ctx: Context,
    file_id: int,
    name: str,
    parsed: Parsed,
    dup_id: int | None,
    duplicate: bool,
    payload_path: Path | None,
) -> str:
    routed, unrouted = _route(ctx, parsed)
    numbers = [ctx.store.new_tracking_number() for _ in routed]
    state = _outcome(duplicate, parsed, routed)
    assigner = ctx.config.identity.trace_assigner
    finals = [
        replace(req, trace_number=t, trace_assigner=assigner)
        for (req, _, _), t in zip(routed, numbers, strict=True)
    ]
    with ctx.store.begin() as tx:
        for (req, partner, reference), final, tracking in zip(routed, finals, numbers, strict=True):
            payload = {**request_to_obj(final), "client_reference": reference}  # its one JSON form
            tx.requests.insert(
                tracking_number=tracking,
                kind=request_kind(req).set_id,
                payer_id=req.payer.id,
                partner=partner,
                source_file_id=file_id,
                payload=payload,
                member_id_hash=hash_member_id(req.subscriber.member_id or "", ctx.member_key),
                client_reference_hash=hash_member_id(reference, ctx.member_key) if reference else None,
                patient_hash=_patient_hash(req, ctx.member_key),
            )
        reason = _reason(parsed, unrouted, dup_id, queued=len(routed))
        tx.files.transition(
            file_id,
            _OUTCOME_EVENT[state],
            expect=FileState.CLAIMED,
            owner=ctx.node_id,
            reason=reason["reason"] if reason else None,
            detail={
                "requests": len(routed),
                "rejected": len(reason["requests"]) if reason else 0,
                "payload": payload_path.name if payload_path else None,
            },
        )
    for final in finals:
        precert_gate(ctx, final)  # "not required": answered here, no 278
    _settle(ctx, file_id, name, state, reason)
    # anything put in quarantine (all of it, or the rejected part) is a warning: alerting must see it
    log = ctx.log.info if state == FileState.ACCEPTED else ctx.log.warning
    log(
        "inbox file processed",
        file_id=file_id,
        file=name,
        state=state,
        requests=len(routed),
        rejected=len(parsed.errors) + len(unrouted),
    )
    return state


def _patient_hash(req: Request, key: bytes) -> str | None:
    """The keyed hash operators search the patient by (the dependent if any, else the subscriber):
    last name and birth date; None when either is missing."""
    patient = req.dependent or req.subscriber
    if not patient.last_name or patient.birth_date is None:
        return None
    return hash_patient(patient.last_name, patient.birth_date.isoformat(), key)


def _route(ctx: Context, parsed: Parsed) -> tuple[list[tuple[Request, str, str]], list[dict[str, Any]]]:
    routed, unrouted = [], []
    for i, (req, reference) in enumerate(parsed.requests):
        partner = ctx.config.partner_for_payer(req.payer.id)
        if partner is None:
            unrouted.append(
                {"index": i, "field": "payer.id", "reason": "no trading partner is configured for this payer"}
            )
        else:
            routed.append((req, partner.name, reference))
    return routed, unrouted


_OUTCOME_EVENT = {
    FileState.DUPLICATE: FileEvent.FIND_DUPLICATE,
    FileState.QUARANTINED: FileEvent.QUARANTINE,
    FileState.PARTIALLY_ACCEPTED: FileEvent.ACCEPT_PARTIALLY,
    FileState.ACCEPTED: FileEvent.ACCEPT,
}


def _outcome(duplicate: bool, parsed: Parsed, routed: list[Any]) -> FileState:
    if duplicate:
        return FileState.DUPLICATE
    if not routed:
        return FileState.QUARANTINED
    if parsed.errors or len(routed) < len(parsed.requests):
        return FileState.PARTIALLY_ACCEPTED
    return FileState.ACCEPTED


def _reason(
    parsed: Parsed, unrouted: list[dict[str, Any]], duplicate_of: int | None, *, queued: int
) -> dict[str, Any] | None:
    if duplicate_of is not None:
        return {
            "reason": f"duplicate of file {duplicate_of} (same SHA-256); nothing was sent again",
            "requests": [],
        }
    problems = parsed.errors + unrouted
    if parsed.file_error is None and not problems:
        return None
    rest = f"the other {queued} queued" if queued else "none queued"
    summary = parsed.file_error or f"{len(problems)} request(s) rejected; {rest}"
    return {"reason": summary, "requests": problems}


def _settle(ctx: Context, file_id: int, name: str, state: str, reason: dict[str, Any] | None) -> None:
    """Move the work file to archive or quarantine (idempotent: skipped when already moved)."""
    work = _work_path(ctx, file_id, name)
    if not work.exists():
        return
    if reason is not None:
        _reason_file(ctx, work.name, {"file": name, "file_id": file_id, "state": state, **reason})
    if state in (FileState.ACCEPTED, FileState.PARTIALLY_ACCEPTED):
        if state == FileState.PARTIALLY_ACCEPTED:
            with io_errors("copy to quarantine", work):
                copy = work.read_bytes()
            atomic_write(ctx.config.folders.quarantine / work.name, copy)
        move(work, ctx.config.folders.archive)
    else:
        move(work, ctx.config.folders.quarantine)


def recover(ctx: Context, dead: Collection[str] = ()) -> None:
    """Finish what a crash interrupted: half-claimed files, and processed files not yet moved. Only
    this node's own claims, unowned ones (reprocessed by an operator) and those of ``dead`` nodes are
    taken: a live node's claim is its own work in progress."""
    _rename_legacy_work_files(ctx)
    with ctx.store.read() as tx:
        claiming = tx.files.query(state=FileState.CLAIMING, direction="in", partner=INBOX, limit=1000)
    for row in claiming:
        if _adopt(ctx, row.id, FileState.CLAIMING, dead):
            _finish_claim(ctx, row.id, row.name, row.sha256)
    with ctx.store.read() as tx:
        claimed = tx.files.query(state=FileState.CLAIMED, direction="in", partner=INBOX, limit=1000)
    for row in claimed:
        if not _adopt(ctx, row.id, FileState.CLAIMED, dead):
            continue
        try:
            process(ctx, row.id)
        except StaleStateError:
            continue
    work = ctx.config.folders.work
    for path in sorted(work.iterdir()) if work.exists() else []:
        file_id = file_id_of(path.name)
        if file_id is None:
            continue
        with ctx.store.read() as tx:
            row = tx.files.get(file_id)
        if row.partner == INBOX and row.state not in (FileState.CLAIMING, FileState.CLAIMED):
            reason = {"reason": row.reason, "requests": []} if row.reason else None
            _settle(ctx, row.id, row.name, row.state, reason)


def _adopt(ctx: Context, file_id: int, state: str, dead: Collection[str]) -> bool:
    """Hold the claim of a file in ``state`` unless a live node holds it."""
    with ctx.store.begin() as tx:
        return tx.files.adopt(file_id, state=state, owner=ctx.node_id, dead=dead)


def _rename_legacy_work_files(ctx: Context) -> None:
    """Work files an older release named ``<id>__<name>`` take their id-derived name."""
    work = ctx.config.folders.work
    for path in sorted(work.glob("*__*")) if work.exists() else []:
        file_id = file_id_of(path.name)
        if file_id is None:
            continue
        with ctx.store.read() as tx:
            row = tx.files.get(file_id)
        if row.partner == INBOX:
            with io_errors("rename", path):
                path.rename(_work_path(ctx, file_id, row.name))


def intake(ctx: Context) -> int:
    """One pass over the inbox: claim and process every complete file; returns how many were taken."""
    cfg = ctx.config
    ensure_dir(cfg.folders.inbox)
    ensure_dir(cfg.folders.work)
    taken = 0
    now = ctx.clock().timestamp()
    for cand in complete_files(
        cfg.folders.inbox,
        now=now,
        stable_seconds=cfg.inbox.stable_seconds,
        require_done_marker=cfg.inbox.require_done_marker,
    ):
        if _take_one(ctx, cand):
            taken += 1
    return taken


def _take_one(ctx: Context, cand: Candidate) -> bool:
    """Claim and process one inbox file. Whatever goes wrong with it stays with it: a passing fault
    (disk full, database away) leaves it for the next cycle; any other error quarantines it, with
    the error's type as the reason. Either way the error is logged and the next file is taken."""
    file_id: int | None = None
    try:
        file_id = claim(ctx, cand)
        if file_id is None:
            return False
        process(ctx, file_id)
        marker = cand.path.with_name(f"{cand.path.name}.done")
        with io_errors("remove marker", marker):
            marker.unlink(missing_ok=True)
    except Exception as exc:  # one file's fault must not stop the inbox (outages aside)
        if is_outage(exc):
            raise  # the database is away: the run loop waits (logged once); the file is taken later
        _set_aside(ctx, cand, file_id, exc)
        return False
    return True


def _passing(exc: Exception) -> bool:
    """An error that may pass by itself, so the file is retried rather than quarantined."""
    return (isinstance(exc, LocalIOError) and exc.retryable) or (
        isinstance(exc, StoreError) and not isinstance(exc, StaleStateError)
    )


def _set_aside(ctx: Context, cand: Candidate, file_id: int | None, exc: Exception) -> None:
    error = str(exc) if isinstance(exc, X12GatewayError) else type(exc).__name__
    shown = mask_file_name(storable_name(cand.path.name))
    if file_id is None or _passing(exc):
        ctx.log.error("inbox file skipped; will retry", file=shown, file_id=file_id, error=error)
        return
    try:
        with ctx.store.begin() as tx:
            row = tx.files.get(file_id)
            if row.state == FileState.CLAIMED and row.lease_owner not in (None, ctx.node_id):
                # another node took the claim over (this one looked dead): the file is its work now
                ctx.log.warning("inbox file taken over by another node", file=shown, file_id=file_id)
                return
            if row.state != FileState.CLAIMED:  # not yet in the work folder: retried next cycle
                ctx.log.error("inbox file skipped; will retry", file=shown, file_id=file_id, error=error)
                return
            reason = f"the file could not be taken ({error})"
            tx.files.transition(
                file_id, FileEvent.QUARANTINE, expect=FileState.CLAIMED, reason=reason, owner=row.lease_owner
            )
        _settle(ctx, file_id, row.name, FileState.QUARANTINED, {"reason": reason, "requests": []})
        ctx.log.error("inbox file quarantined", file=shown, file_id=file_id, error=error)
    except Exception as again:  # noqa: BLE001 - logged; the next file is still taken
        ctx.log.error(
            "inbox file could not be quarantined; will retry",
            file=shown,
            file_id=file_id,
            error=error,
            quarantine_error=type(again).__name__,
        )
