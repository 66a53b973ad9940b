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
import hashlib
import json
import os
import re
import stat
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.errors import GatewayError, StoreError
from gateway.lifecycle import FileEvent, FileState
from gateway.runtime.context import Context
from gateway.runtime.filemask import mask_file_name
from gateway.runtime.fsutil import (
    Candidate,
    LocalIOError,
    NotARegularFileError,
    atomic_write,
    complete_files,
    ensure_dir,
    file_id_of,
    internal_name,
    io_errors,
    move,
    open_regular,
    read_fd_capped,
    same_version,
    sha256_fd,
    storable_name,
)
from gateway.runtime.logsetup import phi_scope
from gateway.runtime.outage import is_outage
from gateway.stages.precert_gate import precert_gate
from gateway.store import StaleStateError, hash_member_id, hash_patient
from transactions.build270 import read_270
from transactions.build278 import read_278_request
from transactions.errors import RequestError, X12GatewayError, X12WriteError
from transactions.outbound import Request, request_body, request_kind
from transactions.requests_csv import parse_csv
from transactions.requests_json import parse_request_document, request_to_obj, too_many_requests
from transactions.segment import Delimiters
from transactions.validation import Options, validate_detailed
from transactions.writer import serialize

INBOX = "inbox"


@dataclass
class Parsed:
    """What a file holds: good requests (with the billing system's own reference) and per-item errors."""

    requests: list[tuple[Request, str]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    file_error: str | None = None


# Input that trips a parser into a plain Python error; the message is not shown (it may quote data).
_PARSER_BUGS = (TypeError, ValueError, LookupError, AttributeError, ArithmeticError, RecursionError)


def parse_inbox_bytes(data: bytes, name: str, max_requests: int | None = None) -> Parsed:
    """Requests in a JSON, CSV or X12 file; format by content (X12 starts with ISA) or extension.
    A file of more than ``max_requests`` requests is refused whole, before its requests are read."""
    out = Parsed()
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:3]
    try:
        if head == b"ISA":
            _parse_x12(data, out, max_requests)
        elif name.lower().endswith(".csv"):
            for i, row in enumerate(parse_csv(data.decode("utf-8-sig"))):
                if max_requests is not None and i >= max_requests:
                    raise RequestError(too_many_requests(i + 1, max_requests), field="document")
                _take(out, row, i)
        else:
            for i, item in enumerate(parse_request_document(data, max_requests)):
                _take(out, item, i)
    except RequestError as exc:
        out.requests.clear()
        out.errors.clear()
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
        return
    plain = _plain_texts(item)  # the usual request: both walks below find nothing, so neither runs
    if not plain and (where := _unstorable(item)) is not None:
        out.errors.append({"index": index, "field": where, "reason": UNSTORABLE})
    elif not plain and (where := _first_text(item, _has_delimiter)) is not None:
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


_PROBE_TIME = datetime(2000, 1, 1, tzinfo=UTC)
_PROBE_DELIMITERS = Delimiters()


def _unwritable(req: Request) -> str | None:
    """Why the request cannot be written as X12 (an X12 delimiter inside a value), or None.

    Found here, the file is quarantined with the reason (which names the element, never the value);
    found only when the batch is built, the same request would fail its partner's batch every cycle.
    The client's trace number is replaced by our tracking number before sending, so it is not probed.
    Only the set's own segments are written: the envelope around them holds none of the request's
    values (the batch writer raises the first offending segment's error, always one of these), and
    writing it too tripled the probe's cost on every real-time call.
    """
    probe = replace(req, trace_number="PROBE00001", trace_assigner="9000000000")
    try:
        serialize(request_body(probe, _PROBE_TIME), _PROBE_DELIMITERS)
    except X12WriteError as exc:
        return str(exc)
    return None


UNSTORABLE = "contains a control character or invalid Unicode (a lone surrogate)"
_DELIMITERS = Delimiters().all()
UNSENDABLE = f"contains an X12 delimiter character ({' '.join(sorted(_DELIMITERS))})"


def _has_delimiter(text: str) -> bool:
    """The batch writer refuses such text (it would split an element): refuse it here, with a reason."""
    return not _DELIMITERS.isdisjoint(text)


# Unicode's Cc (C0 and C1 controls) and Cs (surrogates) categories, exactly: one regex search per
# text instead of a category lookup per character
_CONTROL_OR_SURROGATE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_FIELDS: dict[type, tuple[str, ...]] = {}


def _unstorable(value: Any, path: str = "") -> str | None:
    """Path of the first text holding a control character or lone surrogate, or None. JSON allows both
    (as escapes), but no database column, hash or X12 element can carry them."""
    return _first_text(value, lambda t: _CONTROL_OR_SURROGATE.search(t) is not None, path)


def _first_text(value: Any, bad: Callable[[str], bool], path: str = "") -> str | None:
    """Path of the first text in a request for which ``bad`` is true, or None. Walks the model itself
    (field names are its JSON keys), so a request is turned into JSON only once, when it is stored;
    the path is spelt only for the text found."""
    keys = _bad_keys(value, bad)
    if keys is None:
        return None
    inner = ".".join(reversed(keys))
    return (f"{path}.{inner}" if path else inner) if inner else (path or "request")


def _bad_keys(value: Any, bad: Callable[[str], bool]) -> list[str] | None:
    """The keys down to the first bad text, innermost first ([] for the value itself), or None."""
    if isinstance(value, str):
        return [] if bad(value) else None
    items: Iterable[tuple[Any, Any]] = ()
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = _FIELDS.get(type(value))
        if names is None:
            names = _FIELDS.setdefault(type(value), tuple(f.name for f in dataclasses.fields(value)))
        items = ((name, getattr(value, name)) for name in names)
    for key, item in items:
        found = _bad_keys(item, bad)
        if found is not None:
            found.append(str(key))
            return found
    return None


_LEAF, _TEXT, _MAPPING, _SEQUENCE, _MODEL = range(5)
_KINDS: dict[type, int] = {}  # what ``_bad_keys`` does with a value of each class


def _kind(cls: type, value: Any) -> int:
    """How ``_bad_keys`` walks a value of class ``cls`` (its tests depend on the class alone)."""
    kind = _KINDS.get(cls)
    if kind is None:
        if isinstance(value, str):
            kind = _TEXT
        elif isinstance(value, dict):
            kind = _MAPPING
        elif isinstance(value, list | tuple):
            kind = _SEQUENCE
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            kind = _MODEL
            _FIELDS.setdefault(cls, tuple(f.name for f in dataclasses.fields(value)))
        else:
            kind = _LEAF
        kind = _KINDS.setdefault(cls, kind)
    return kind


def _texts(value: Any, out: list[str]) -> None:
    """Every text ``_bad_keys`` would look at in ``value``, in its order, appended to ``out``."""
    kind = _kind(value.__class__, value)
    if kind == _TEXT:
        out.append(value)
    elif kind == _MODEL:
        for name in _FIELDS[value.__class__]:
            _texts(getattr(value, name), out)
    elif kind == _SEQUENCE:
        for item in value:
            _texts(item, out)
    elif kind == _MAPPING:
        for item in value.values():
            _texts(item, out)


def _plain_texts(value: Any) -> bool:
    """Whether no text in ``value`` is unstorable or holds a delimiter, in one walk: both tests look
    for single characters, so they find one in the texts joined exactly when they find one in a text
    (``_unstorable`` and ``_first_text(.., _has_delimiter)`` then name the first)."""
    texts: list[str] = []
    _texts(value, texts)
    joined = "".join(texts)
    return _CONTROL_OR_SURROGATE.search(joined) is None and _DELIMITERS.isdisjoint(joined)


def _count_sets(data: bytes) -> int:
    """ST segments in an interchange, counted on the bytes (the delimiters from the ISA header), so
    that a file of too many requests is refused before it is validated into memory."""
    start = data.find(b"ISA")
    if len(data) < start + 106:
        return 0
    sep, term = data[start + 3 : start + 4], data[start + 105 : start + 106]
    return len(re.findall(re.escape(term) + rb"\s*ST" + re.escape(sep), data))


def _parse_x12(data: bytes, out: Parsed, max_requests: int | None) -> None:
    if max_requests is not None and (count := _count_sets(data)) > max_requests:
        raise RequestError(too_many_requests(count, max_requests), field="document")
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


@dataclass(frozen=True, slots=True)
class Taken:
    """An inbox file as read through one checked descriptor before it was claimed: its bytes (None
    when over ``max_file_bytes``), their SHA-256 and size, what they hold, and ``unchanged``, which
    says whether the file (followed through the rename by the still open descriptor) is as read."""

    data: bytes | None
    sha256: str
    size: int
    parsed: Parsed
    unchanged: Callable[[], bool]


def _parse_guarded(data: bytes, name: str, max_requests: int) -> Parsed:
    """What the file holds; an unexpected error (a parser bug) quarantines the file with its type."""
    try:
        return parse_inbox_bytes(data, name, max_requests)
    except Exception as exc:  # noqa: BLE001 - one file's fault must not stop the inbox
        return Parsed(file_error=f"the file could not be taken ({type(exc).__name__})")


def read_settled(ctx: Context, cand: Candidate, fd: int, before: os.stat_result) -> Taken | None:
    """Read and parse the file open at ``fd``; None when it changed meanwhile (a writer still busy
    with it: it is left for a later cycle, logged), judged by inode, size and modification time
    against the listing and the descriptor's ``fstat`` before reading."""
    settings = ctx.config.inbox
    data = read_fd_capped(fd, settings.max_file_bytes)
    if data is None:
        sha, size = sha256_fd(fd)
        parsed = Parsed(file_error=f"larger than the {settings.max_file_bytes}-byte limit")
    else:
        sha, size = hashlib.sha256(data).hexdigest(), len(data)
        parsed = _parse_guarded(data, cand.path.name, settings.max_requests_per_file)

    def unchanged() -> bool:
        return same_version(before, os.fstat(fd))

    listed = cand.stat if cand.stat is not None else before
    if not (same_version(listed, before) and unchanged()):
        ctx.log.warning(
            "inbox file changed while it was read; left for a later cycle",
            file=mask_file_name(storable_name(cand.path.name)),
        )
        return None
    return Taken(data, sha, size, parsed, unchanged)


def claim(ctx: Context, cand: Candidate, taken: Taken, before: os.stat_result) -> int | None:
    """Record the file, then move it into the work folder; None if it vanished or changed meanwhile."""
    with ctx.store.begin() as tx:
        row = tx.files.record(
            direction="in",
            partner=INBOX,
            name=storable_name(cand.path.name),
            sha256=taken.sha256,
            size=taken.size,
            payload_path=None,
            state=FileState.CLAIMING,
            owner=ctx.node_id,
        )
    return row.id if _finish_claim(ctx, row.id, row.name, row.sha256, cand.path, before) else None


def _source_matches(source: Path, sha: str, version: os.stat_result | None) -> bool:
    """Whether ``source`` is still the file that was recorded: the same inode, size and time as the
    descriptor that was read or, after a crash (no descriptor any more), the same SHA-256."""
    try:
        if version is not None:
            return same_version(version, source.lstat())
        with open_regular(source) as (fd, _):
            return sha256_fd(fd)[0] == sha
    except (OSError, NotARegularFileError):
        return False


def _finish_claim(  # noqa: PLR0917 - one claim's facts
    ctx: Context,
    file_id: int,
    name: str,
    sha: str,
    source: Path | None = None,
    version: os.stat_result | None = None,
) -> bool:
    """``source`` is the inbox path; after a crash it is found by the stored name (a name that was
    not UTF-8 is then not found: the row ends ``vanished`` and the file is claimed again). Once the
    file is renamed away its ``.done`` marker is removed: it announced this file, not the next."""
    work = _work_path(ctx, file_id, name)
    source = source or ctx.config.folders.inbox / name
    if not work.exists():
        if not _source_matches(source, sha, version):
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
        _remove_marker(ctx, source)
    with ctx.store.begin() as tx:
        tx.files.transition(
            file_id, FileEvent.CLAIM, expect=FileState.CLAIMING, owner=ctx.node_id, keep_claim=True
        )
    return True


def _remove_marker(ctx: Context, source: Path) -> None:
    """Remove ``NAME.done`` (a regular file only; it may be another user's, in a shared inbox)."""
    marker = source.with_name(f"{source.name}.done")
    try:
        if stat.S_ISREG(marker.lstat().st_mode):
            marker.unlink()
    except FileNotFoundError:
        return
    except OSError as exc:
        # logged, not fatal: a marker older than the next file of the name does not count for it
        ctx.log.error(
            "inbox marker could not be removed",
            file=mask_file_name(storable_name(source.name)),
            error=os.strerror(exc.errno) if exc.errno else type(exc).__name__,
        )


def _reason_file(ctx: Context, name: str, doc: dict[str, Any]) -> None:
    folder = ensure_dir(ctx.config.folders.quarantine)
    atomic_write(folder / f"{name}.reason.json", json.dumps(doc, indent=2).encode())


def process(ctx: Context, file_id: int, taken: Taken | None = None) -> str:
    """Turn a claimed file into requests and say the file's new state. ``taken`` is what the intake
    read before claiming; without it (recovery, reprocessing) the work file is read again, and when
    some of its requests are stored already it must still be the file that was claimed (its SHA-256),
    else it is quarantined as changed."""
    with ctx.store.read() as tx:
        row = tx.files.get(file_id)
        resumed = tx.requests.count_from_file(file_id) > 0
    if taken is None:
        taken = _read_work(ctx, file_id, row.name)
    # a file resumed after a stop must be the very bytes whose first requests were stored (an
    # operator's corrected copy, sent back by ``reprocess`` before anything was stored, is read anew)
    if not taken.unchanged() or (resumed and taken.sha256 != row.sha256):
        changed = Parsed(file_error=CHANGED_AFTER_CLAIM)
        return _store_requests(ctx, file_id, row.name, changed, None, False, None, read_size=None)
    if taken.data is None:  # too large: neither read nor copied into the payloads
        return _store_requests(ctx, file_id, row.name, taken.parsed, None, False, None, read_size=taken.size)
    sha, payload_path = ctx.payloads.put(taken.data)
    if not taken.data.strip():  # every empty file has the same SHA-256: it is empty, not a duplicate
        empty = Parsed(file_error="the file is empty")
        return _store_requests(ctx, file_id, row.name, empty, None, False, payload_path, read_size=0)
    with ctx.store.read() as tx:
        dup = tx.files.find_by_sha256(
            sha,
            within=timedelta(hours=ctx.config.inbox.duplicate_window_hours),
            direction="in",
            exclude_id=file_id,
        )
    parsed = Parsed() if dup else taken.parsed
    with phi_scope(v for req, _ in parsed.requests for v in phi_values(req)):
        return _store_requests(
            ctx,
            file_id,
            row.name,
            parsed,
            dup.id if dup else None,
            dup is not None and dup.partner == INBOX,
            payload_path,
            read_size=taken.size,
        )


CHANGED_AFTER_CLAIM = (
    "the file changed after it was claimed (a writer was still busy with it): nothing was taken; "
    "have the writer use a NAME.done marker or write under a temporary name and rename"
)


def _read_work(ctx: Context, file_id: int, name: str) -> Taken:
    """A claimed work file read again (recovery): its bytes, hash and requests."""
    work = _work_path(ctx, file_id, name)
    limit = ctx.config.inbox.max_file_bytes
    with io_errors("read", work), open_regular(work) as (fd, _):
        data = read_fd_capped(fd, limit)
        sha, size = (hashlib.sha256(data).hexdigest(), len(data)) if data is not None else sha256_fd(fd)
    if data is None:
        parsed = Parsed(file_error=f"larger than the {limit}-byte limit")
    else:
        parsed = _parse_guarded(data, name, ctx.config.inbox.max_requests_per_file)
    return Taken(data, sha, size, parsed, lambda: True)


def phi_values(req: Request) -> list[str | date | None]:
    """The PHI of one request, registered with the log redactor while its file is processed."""
    people = [req.subscriber, *([req.dependent] if req.dependent else [])]
    return [v for p in people for v in (p.last_name, p.first_name, p.middle_name, p.member_id, p.birth_date)]


BATCH_REQUESTS = 500  # requests per committed transaction; a stop is honoured between two


class IntakeStoppedError(GatewayError):
    """A stop was asked for between two batches of one file: it stays claimed and resumes later."""


def _store_requests(  # noqa: PLR0917 - the parts of one processed inbox file
    ctx: Context,
    file_id: int,
    name: str,
    parsed: Parsed,
    dup_id: int | None,
    duplicate: bool,
    payload_path: Path | None,
    *,
    read_size: int | None,
) -> str:
    """Store the routed requests in batches, then settle the file (one transition).

    Each batch takes a block of tracking numbers and is one transaction, which first checks that the
    file is still claimed and holds exactly the requests of the earlier batches; the routed order is
    a function of the file's bytes (their SHA-256 was checked), so after a stop or a crash the file
    is resumed from the first request not yet stored: every request exactly once.
    """
    routed, unrouted = _route(ctx, parsed)
    state = _outcome(duplicate, parsed, routed)
    with ctx.store.read() as tx:
        stored = tx.requests.count_from_file(file_id)
    for start in range(stored, len(routed), BATCH_REQUESTS):
        if start > stored and ctx.stop.is_set():
            raise IntakeStoppedError(f"stopped after {start} of {len(routed)} requests of file {file_id}")
        _store_batch(ctx, file_id, start, routed[start : start + BATCH_REQUESTS])
    reason = _reason(parsed, unrouted, dup_id, queued=len(routed))
    with ctx.store.begin() as tx:
        tx.files.transition(
            file_id,
            _OUTCOME_EVENT[state],
            expect=FileState.CLAIMED,
            owner=ctx.node_id,
            reason=reason["reason"] if reason else None,
            detail={
                "requests": len(routed),
                "rejected": reason.get("rejected", 0) if reason else 0,
                "payload": payload_path.name if payload_path else None,
            },
        )
    _settle(ctx, file_id, name, state, reason, read_size=read_size)
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


def _store_batch(ctx: Context, file_id: int, start: int, batch: list[tuple[Request, str, str]]) -> None:
    """Requests ``start ..`` of a file in one transaction, with a block of tracking numbers."""
    numbers = ctx.store.new_tracking_numbers(len(batch))
    assigner = ctx.config.identity.trace_assigner
    finals = [
        replace(req, trace_number=t, trace_assigner=assigner)
        for (req, _, _), t in zip(batch, numbers, strict=True)
    ]
    with ctx.store.begin() as tx:
        if tx.files.lock(file_id).state != FileState.CLAIMED:
            raise StaleStateError(f"file {file_id} is no longer claimed")
        if tx.requests.count_from_file(file_id) != start:
            raise StaleStateError(f"file {file_id} was resumed by another node")
        tx.requests.insert_many(
            [
                {
                    "tracking_number": tracking,
                    "kind": request_kind(req).set_id,
                    "payer_id": req.payer.id,
                    "partner": partner,
                    "source_file_id": file_id,
                    # its one JSON form
                    "payload": {**request_to_obj(final), "client_reference": reference},
                    "member_id_hash": hash_member_id(req.subscriber.member_id or "", ctx.member_key),
                    "client_reference_hash": hash_member_id(reference, ctx.member_key) if reference else None,
                    "patient_hash": _patient_hash(req, ctx.member_key),
                }
                for (req, partner, reference), final, tracking in zip(batch, finals, numbers, strict=True)
            ]
        )
    for final in finals:
        precert_gate(ctx, final)  # "not required": answered here, no 278


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


MAX_FINDINGS = 1000  # per reason file; the count of the others is written instead


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
    doc = {"reason": summary, "rejected": len(problems), "requests": problems[:MAX_FINDINGS]}
    if len(problems) > MAX_FINDINGS:
        doc["findings_left_out"] = len(problems) - MAX_FINDINGS
    return doc


CHANGED_AFTER_TAKEN = (
    "the file changed after it was read: the requests stored are those of the version read "
    "({size} bytes); the file as it is now is kept here, not archived"
)


def _settle(
    ctx: Context,
    file_id: int,
    name: str,
    state: str,
    reason: dict[str, Any] | None,
    *,
    read_size: int | None = None,
) -> None:
    """Move the work file to archive or quarantine (idempotent: skipped when already moved).

    A work file that is no longer ``read_size`` bytes (a writer appended after its requests were
    read) goes to quarantine with a reason instead of the archive: never archived as processed.
    """
    work = _work_path(ctx, file_id, name)
    if not work.exists() and not work.is_symlink():
        return
    with io_errors("read", work), open_regular(work) as (fd, st):
        changed = read_size is not None and st.st_size != read_size
        kept = state == FileState.PARTIALLY_ACCEPTED and not changed
        copy = read_fd_capped(fd, st.st_size) if kept else None
    if changed and state in (FileState.ACCEPTED, FileState.PARTIALLY_ACCEPTED):
        reason = {"requests": [], **(reason or {}), "changed": CHANGED_AFTER_TAKEN.format(size=read_size)}
        reason.setdefault("reason", reason["changed"])
        ctx.log.warning("inbox file changed after it was read", file_id=file_id, file=name)
    if reason is not None:
        _reason_file(ctx, work.name, {"file": name, "file_id": file_id, "state": state, **reason})
    if state in (FileState.ACCEPTED, FileState.PARTIALLY_ACCEPTED) and not changed:
        if copy is not None:
            atomic_write(ctx.config.folders.quarantine / work.name, copy)
        move(work, ctx.config.folders.archive)
    else:
        move(work, ctx.config.folders.quarantine)


def recover(ctx: Context, dead: Collection[str] = ()) -> None:
    """Finish what a crash interrupted: half-claimed files, claimed files not (fully) processed (a
    stop between two batches too), and processed files not yet moved. Only this node's own claims,
    unowned ones (reprocessed by an operator) and those of ``dead`` nodes are taken: a live node's
    claim is its own work in progress."""
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
        except IntakeStoppedError as exc:
            ctx.log.info("inbox file left claimed; resumed after the restart", reason=str(exc))
            return
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
        if ctx.stop.is_set():
            break
        if _take_one(ctx, cand):
            taken += 1
    return taken


def _take_one(ctx: Context, cand: Candidate) -> bool:
    """Claim and process one inbox file. Whatever goes wrong with it stays with it: a passing fault
    (disk full, database away) leaves it for the next cycle; any other error quarantines it, with
    the error's type as the reason. Either way the error is logged and the next file is taken.

    The file is read and parsed through one descriptor (:func:`open_regular`: no link, FIFO or
    folder) before it is claimed, and the same descriptor, which follows the file through the
    rename, says before anything is stored whether a writer changed it meanwhile."""
    file_id: int | None = None
    try:
        with io_errors("read", cand.path), open_regular(cand.path) as (fd, before):
            taken = read_settled(ctx, cand, fd, before)
            file_id = claim(ctx, cand, taken, before) if taken is not None else None
            if taken is None or file_id is None:
                return False
            process(ctx, file_id, taken)
    except (NotARegularFileError, StaleStateError, IntakeStoppedError) as exc:
        _not_taken(ctx, cand, file_id, exc)
        return False
    except Exception as exc:  # one file's fault must not stop the inbox (outages aside)
        if is_outage(exc):
            raise  # the database is away: the run loop waits (logged once); the file is taken later
        if file_id is None and not os.path.lexists(cand.path):
            return False  # another node claimed it first (shared inbox), or its writer took it back
        _set_aside(ctx, cand, file_id, exc)
        return False
    return True


def _not_taken(ctx: Context, cand: Candidate, file_id: int | None, exc: Exception) -> None:
    """Log why a file was not (fully) taken this time, where that is no fault of the file's."""
    if isinstance(exc, NotARegularFileError):  # swapped in after the listing: never followed
        shown = mask_file_name(storable_name(cand.path.name))
        ctx.log.warning("inbox file not taken", file=shown, reason=exc.reason)
    elif isinstance(exc, StaleStateError):  # another node's recovery is taking the claimed file
        ctx.log.info("inbox file continued by another node", file_id=file_id)
    else:  # a stop between two batches: the file stays claimed and is resumed after the restart
        ctx.log.info("inbox file left claimed; resumed after the restart", file_id=file_id, reason=str(exc))


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
