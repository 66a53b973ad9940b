"""Inbound stage: downloaded files are validated, acknowledged, applied and delivered.

A file is validated and mapped set by set (``ValidationStream``): each set's parsed segments are
dropped once its records are read, and the records wait (compressed, unless the file is small) until
the file's verdicts are known, so memory stays small whatever the file's size. One transaction then
records the file's envelopes, applies any 999/TA1 to what we sent, stores the records mapped from
271/278 responses (matched to requests by trace number, then BHT03; 271s a chunk at a time, in a few
statements per chunk), queues our own 999/TA1 for the partner, and moves the file to ``processed``;
result files are written after that commit and the file becomes ``delivered``. A crash between the
two re-writes the same results. A real-time answer the API waits for is prepared the same way before
the transaction that records it, and stored in that transaction (``prepare_answer``,
``store_answer``, ``answer_stored``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cached_property
from itertools import islice
from pathlib import Path
from typing import Any

from gateway.lifecycle import (
    Entity,
    FileEvent,
    FileState,
    RequestEvent,
    RequestState,
    SetEvent,
    SetState,
    allows,
)
from gateway.lifecycle import target as target_state
from gateway.runtime.config import PartnerConfig
from gateway.runtime.context import Context
from gateway.runtime.fsutil import atomic_write, ensure_dir, internal_name
from gateway.runtime.logsetup import dropped_by_level
from gateway.stages.outbox import (
    KnownRequest,
    OnDocument,
    batch_summary,
    rendered_results,
    summary_file_name,
    write_results,
)
from gateway.store import FileRow, RequestRow, Tx
from gateway.store.errors import NotFoundError
from gateway.store.repos.envelopes import NewSet
from gateway.store.repos.results import EligibilityWrite
from gateway.store.rows import RequestHead
from mappings.correlate import ResponseKey, SentRequest, correlate
from mappings.decode import describe
from mappings.mapper import MappingRules, Record, map_set
from mappings.records import AuthorizationRecord, EligibilityResult
from transactions.acks import (
    AckEnvelope,
    GroupAck,
    InterchangeAck,
    ParsedAcks,
    build_999,
    build_ta1,
    parse_acks,
)
from transactions.errors import X12GatewayError
from transactions.findings import (
    GroupReport,
    InterchangeReport,
    SetReport,
    ValidationReport,
    finding_json,
    set_validation,
)
from transactions.jsonform import to_dict
from transactions.validation import Options, SetInContext, ValidationStream

# Plain Python errors a hostile file can still trigger (e.g. undecodable bytes reaching the database);
# project errors (store, disk) are not here: those are retried, not blamed on the file.
_UNEXPECTED = (ValueError, TypeError, LookupError, AttributeError, ArithmeticError, RecursionError)
ANSWERS = {"271": "270", "278resp": "278"}


@dataclass
class Outcome:
    trackings: list[str] = field(default_factory=list)
    unmatched: int = 0
    acks_applied: int = 0
    records: int = 0
    records_from_rejected_sets: int = 0  # decisions applied although our 999 rejects their set
    # warning-level log events (name, fields) for after the commit: rejections alerting must see
    warnings: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # the 271 outcome (status, record) last written for a tracking number by this transaction, as
    # written: rendering its result document needs no read back (``outbox.rendered_results``);
    # None: not kept (nothing rendered in the transaction; a large file's records are not held)
    written: dict[str, tuple[str, dict[str, Any]]] | None = None
    # requests this transaction moved out of ``queued`` (``store_answer(fresh=...)``), as they are
    # now: never answered or pended (no path leads back to ``queued`` from those), so no response
    # fingerprint is logged for them and no result stored: ``_Chunk`` reads none of that for them
    fresh: Mapping[int, RequestHead] = field(default_factory=dict)
    # the reason and payload of each ``fresh`` request, as the guarded UPDATE that moved it returned
    # them (``requests.move_from_reading``): with the state and time ``_Chunk`` moves it to, its
    # result document needs no read of its row (``known``); the transaction changes neither
    fresh_rows: Mapping[int, tuple[str | None, Mapping[str, Any]]] = field(default_factory=dict)
    # the requests of ``written`` as this transaction left them, those of ``fresh_rows`` moved again
    known: dict[str, KnownRequest] = field(default_factory=dict)


def _options(ctx: Context, partner: PartnerConfig) -> Options:
    """Strict guides, the partner's leniency, and our identity: interchanges addressed to anyone else
    (ISA08 or GS03) are rejected and nothing from them is applied."""
    ident = ctx.config.identity
    return Options(
        leniency=frozenset(partner.leniency),
        our_ids=frozenset({ident.isa_id}),
        our_gs_ids=frozenset({ident.gs_id}),
        keep_placed=True,
    )


def _control(text: str, default: int) -> int:
    """A received control number as an int; ``default`` unless 1-9 ASCII digits (as X12 allows)."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else default


def _our_id(ctx: Context) -> str:
    return f"{ctx.config.identity.isa_qualifier}:{ctx.config.identity.isa_id}"


def process_file(
    ctx: Context, row: FileRow, rules: MappingRules, *, on_document: OnDocument | None = None
) -> str:
    """Process one downloaded file; returns its final state. ``on_document`` gets each result
    document written (see ``write_results``)."""
    partner = ctx.config.partner(row.partner)
    spool = None if row.size <= KEEP_RECORDS_BYTES else _Spool(ctx.payloads.root)
    try:
        return _process_scanned(ctx, row, rules, (partner, spool), on_document)
    finally:
        if spool is not None:
            spool.close()


def _process_scanned(
    ctx: Context,
    row: FileRow,
    rules: MappingRules,
    where: tuple[PartnerConfig, _Spool | None],
    on_document: OnDocument | None,
) -> str:
    """``process_file`` with the file's records waiting in ``spool`` (None: in memory)."""
    partner, spool = where
    prepared = _prepare(
        ctx,
        partner,
        rules,
        (ctx.payloads.chunks(row.sha256), lambda: ctx.payloads.get(row.sha256)),
        spool,
    )
    if isinstance(prepared, str):
        return _quarantine(ctx, row, prepared)
    _warn_misaddressed(ctx, row, prepared.scan.report)
    outcome = Outcome(written={} if on_document is not None else None)
    with ctx.store.begin() as tx:
        _apply_prepared(ctx, tx, row, prepared, outcome)
        tx.files.transition(
            row.id, FileEvent.PROCESS, expect=FileState.PROCESSING, detail=_processed(outcome)
        )
        # a caller waiting for the results (real time: one) has them rendered here, not read again
        docs = rendered_results(tx, outcome.trackings, outcome.written) if on_document is not None else None
    _delivered(ctx, row, (prepared, outcome), on_document, docs)
    return FileState.DELIVERED


@dataclass(frozen=True)
class Prepared:
    """What storing a received file needs, worked out before its transaction: the validation scan
    (report, set facts, mapped records), the acknowledgments it carries, and the 999/TA1 we owe."""

    partner: PartnerConfig
    scan: _Scan
    acks: ParsedAcks | None
    outgoing: list[tuple[str, bytes]]
    # the mapped responses with their JSON form and fingerprint, worked out before the transaction
    # (``prepare_answer``: not while it holds the writer lock); None: worked out as they are applied
    responses: list[_Response] | None = None


def _prepare(
    ctx: Context,
    partner: PartnerConfig,
    rules: MappingRules,
    data: tuple[Iterable[bytes], Callable[[], bytes]],
    spool: _Spool | None,
) -> Prepared | str:
    """Validate and map a received file (``data``: its bytes in pieces, and a way to have them whole
    for its acknowledgments); the reason to quarantine it instead, when it cannot be stored."""
    pieces, whole = data
    scan = _Scan.of(pieces, _options(ctx, partner), rules, spool=spool)
    report = scan.report
    if report.fatal or not report.interchanges:
        return report.fatal or "no interchange in the file"
    try:
        acks = parse_acks(whole()) if _has_acks(report) else None
    except X12GatewayError as exc:  # validation recovered from the damage; applying acks cannot
        return f"acknowledgment not readable: {exc}"
    outgoing = _our_acks(ctx, partner, report) if partner.send_acks else []
    return Prepared(partner, scan, acks, outgoing)


def _apply_prepared(  # noqa: PLR0917 - one file's parts
    ctx: Context,
    tx: Tx,
    row: FileRow,
    prepared: Prepared,
    outcome: Outcome,
    sealed: Mapping[int, Any] | None = None,
) -> None:
    """Everything a received file changes, in the caller's transaction: its envelopes, the
    acknowledgments it carries applied, its records stored, our 999/TA1 queued (``sealed``: the
    result records' stored forms by response, see ``sealed_records``)."""
    scan = prepared.scan
    set_rows = _record_envelopes(tx, row, scan.report, scan.sets)
    if prepared.acks is not None:
        outcome.acks_applied = _apply_acks(ctx, tx, prepared.acks.groups, prepared.acks.interchanges, outcome)
    responses = prepared.responses
    mapped = iter(responses) if responses is not None else scan.mapped()
    matched = _apply_all(ctx, tx, mapped, outcome, sealed)
    _mark_unmatched(tx, [set_rows[k] for k, found in matched.items() if not found and k in set_rows])
    for name, payload in prepared.outgoing:
        sha, path = ctx.payloads.put(payload)
        tx.files.record(
            direction="out",
            partner=prepared.partner.name,
            name=name,
            sha256=sha,
            size=len(payload),
            payload_path=str(path),
            state=FileState.QUEUED,
            detail={"acknowledges_file": row.id},
        )


_GATEWAY_LOGGER = logging.getLogger("x12gw")  # the stdlib logger behind ``ctx.log`` (``runner``)


def info_dropped() -> bool:
    """Whether an info event of ``ctx.log`` would be dropped unwritten (``dropped_by_level``): a busy
    ``serve`` then skips building the event (its fields gathered, a logger bound) on every real-time
    answer."""
    return dropped_by_level(_GATEWAY_LOGGER, "info")


def _processed(outcome: Outcome) -> dict[str, Any]:
    """The detail of a file's move to ``processed``: what ``recover`` delivers after a crash."""
    return {"trackings": outcome.trackings, "unmatched": outcome.unmatched}


def _delivered(  # noqa: PLR0917 - one processed file's parts
    ctx: Context,
    row: FileRow,
    done: tuple[Prepared, Outcome],
    on_document: OnDocument | None,
    docs: list[dict[str, Any]] | None,
    written: list[int] | None = None,
) -> None:
    """After the processing commit: the results written and delivered (``written``: the file's id
    added there once its results are durable, its ``delivered`` marking left to the caller, see
    ``Deliveries``), then the file's log lines."""
    prepared, outcome = done
    summary = batch_summary(ctx.config, row.partner)
    if written is None:
        deliver(ctx, row.id, outcome.trackings, summary=summary, on_document=on_document, documents=docs)
    else:
        name = summary_file_name(row.id) if outcome.trackings and summary else None
        write_results(ctx, outcome.trackings, summary_name=name, on_document=on_document, documents=docs)
        written.append(row.id)
    for event, fields in outcome.warnings:
        ctx.log.warning(event, partner=prepared.partner.name, file=row.name, file_id=row.id, **fields)
    if info_dropped():
        return
    ctx.log.info(
        "inbound file processed",
        partner=prepared.partner.name,
        file=row.name,
        file_id=row.id,
        records=outcome.records,
        records_from_rejected_sets=outcome.records_from_rejected_sets,
        unmatched=outcome.unmatched,
        acks_applied=outcome.acks_applied,
        acks_sent=len(prepared.outgoing),
        trace_numbers=outcome.trackings,
    )


def prepare_answer(ctx: Context, partner: PartnerConfig, data: bytes, rules: MappingRules) -> Prepared | None:
    """A real-time answer validated and mapped before the transaction that records it (see
    ``store_answer``); None when it is not to be stored that way: too large to keep its records in
    memory, or to be quarantined (the caller records it as downloaded and processes it as the
    inbound stage would, which quarantines it with its reason)."""
    if len(data) > KEEP_RECORDS_BYTES:
        return None
    prepared = _prepare(ctx, partner, rules, ((data,), lambda: data), None)
    if isinstance(prepared, str):
        return None
    return replace(prepared, responses=[_Response.of(m) for m in prepared.scan.mapped()])


# plain Python errors while storing a prepared answer: the caller falls back to the two steps
ANSWER_FAILURES = _UNEXPECTED


# how a stored answer's file goes from ``downloaded`` to ``processed`` in the transaction that records it
ANSWER_PROCESSING = (FileEvent.START_PROCESSING, FileEvent.PROCESS)


def store_answer(
    ctx: Context,
    tx: Tx,
    row: FileRow,
    prepared: Prepared,
    *,
    render: bool,
    sealed: Mapping[int, Any] | None = None,
    fresh: Mapping[int, RequestHead] | None = None,
    fresh_rows: Mapping[int, tuple[str | None, Mapping[str, Any]]] | None = None,
) -> tuple[Outcome, list[dict[str, Any]] | None]:
    """Store a prepared answer recorded in this transaction as ``downloaded`` (``row``): processed
    in the same commit (``downloaded -> processing -> processed``, both changes logged), so a crash
    leaves either the exchange unfinished (the file still ``uploading``, sent again) or the answer
    processed (its results rewritten by ``recover``). A ``row`` recorded already past those moves
    (``files.record(ahead=ANSWER_PROCESSING)``: no UPDATE of the row just inserted) only has them
    logged here. With ``render``, the result documents as ``rendered_results`` reads them here.
    ``sealed``: the result records' stored forms, made before the transaction (``sealed_records``).
    ``fresh``: the requests this transaction moved from ``queued`` (their heads now, see
    ``Outcome.fresh``), unless the answer carries acknowledgments (those may move them again);
    ``fresh_rows``: their reason and payload as moving them returned them (``Outcome.fresh_rows``)."""
    known = fresh if fresh and prepared.acks is None else {}
    rows = fresh_rows if known and fresh_rows else {}  # acknowledgments may change a reason too
    outcome = Outcome(written={} if render else None, fresh=known, fresh_rows=rows)
    _apply_prepared(ctx, tx, row, prepared, outcome, sealed)
    steps: list[tuple[FileEvent, dict[str, Any] | None]] = [
        (FileEvent.START_PROCESSING, None),
        (FileEvent.PROCESS, _processed(outcome)),
    ]
    if row.state == FileState.PROCESSED:
        tx.files.log_moves(row.id, FileState.DOWNLOADED, steps)
    else:
        tx.files.transition_steps(row.id, steps, expect=FileState.DOWNLOADED)
    return outcome, rendered_results(
        tx, outcome.trackings, outcome.written, outcome.known
    ) if render else None


def answer_stored(
    ctx: Context,
    row: FileRow,
    stored: tuple[Prepared, Outcome],
    *,
    on_document: OnDocument | None = None,
    documents: list[dict[str, Any]] | None = None,
    written: list[int] | None = None,
) -> None:
    """After ``store_answer``'s commit: its results written and the file delivered (as
    ``process_file`` ends; ``written``: the file's id added there once its results are durable, its
    ``delivered`` marking left to the caller, see ``Deliveries``)."""
    _warn_misaddressed(ctx, row, stored[0].scan.report)
    _delivered(ctx, row, stored, on_document, documents, written)


def deliver(
    ctx: Context,
    file_id: int,
    trackings: list[str],
    *,
    summary: bool = True,
    on_document: OnDocument | None = None,
    documents: list[dict[str, Any]] | None = None,
) -> None:
    """Write the results of a processed file (``documents``: as rendered in its transaction; its CSV
    summary unless ``summary`` is False, see ``outbox.batch_summary``) and record the delivery."""
    name = summary_file_name(file_id) if trackings and summary else None
    write_results(ctx, trackings, summary_name=name, on_document=on_document, documents=documents)
    with ctx.store.begin() as tx:
        tx.files.advance(file_id, FileEvent.DELIVER, expect=FileState.PROCESSED)


class Deliveries:
    """The ``delivered`` markings of real-time answers, recorded together. A call is inside from
    before its POST until it is done (``enter``/``leave``, ``exchange.post_attempt``); once its
    answer's results are written (durable) it leaves its marking here (``leave(file_id)``); the
    next call to store an answer records the waiting ones in its answer's transaction (``take``,
    no commit of their own), and the last call to leave records what is left in one transaction.
    A call alone (no other inside) so records its own marking before it returns, as ``deliver``
    did; under load a marking rides on the next answer's commit. Exactly once as before: a marking
    is only ever left for a file whose results are durable, and a crash before it is recorded
    leaves the file ``processed``, its results rewritten (the same bytes) by ``recover``. Per
    store, one process-wide instance (``DELIVERIES``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # by store (its id; an entry only while a call is inside or a marking waits): calls inside
        # their answer's steps, and the files written and not yet marked
        self._stores: dict[int, tuple[list[int], list[int]]] = {}

    def enter(self, ctx: Context) -> None:
        """A call starts storing its answer (``leave`` must follow, whatever happens)."""
        with self._lock:
            inside, _ = self._stores.setdefault(id(ctx.store), ([0], []))
            inside[0] += 1

    def take(self, ctx: Context) -> list[int]:
        """The markings waiting, for the caller's transaction to record (``put_back`` if it fails)."""
        with self._lock:
            entry = self._stores.get(id(ctx.store))
            if entry is None:
                return []
            taken = entry[1][:]
            entry[1].clear()
            return taken

    def put_back(self, ctx: Context, file_ids: list[int]) -> None:
        """Markings taken by a transaction that did not commit wait again."""
        if file_ids:
            with self._lock:
                self._stores.setdefault(id(ctx.store), ([0], []))[1].extend(file_ids)

    def leave(self, ctx: Context, file_id: int | None) -> list[int]:
        """A call is done with its answer (``file_id``: its file, results written, else None): the
        markings to record now, in a transaction of the caller's (``record``), when it was the last
        inside; else nothing (the last one records them)."""
        with self._lock:
            inside, pending = self._stores[id(ctx.store)]
            if file_id is not None:
                pending.append(file_id)
            inside[0] -= 1
            if inside[0] > 0:
                return []
            del self._stores[id(ctx.store)]
            return pending


DELIVERIES = Deliveries()


def record_delivered(tx: Tx, file_ids: list[int]) -> None:
    """In the caller's transaction: these processed files ``delivered`` (one guarded UPDATE each, the
    changes logged in one INSERT); a file no longer ``processed`` (``recover`` delivered it
    meanwhile) is left as it is."""
    rows: list[tuple[str, int, str | None, str, dict[str, Any] | None]] = []
    for file_id in file_ids:
        states = tx.files.move_unlogged(file_id, (FileEvent.DELIVER,), expect=FileState.PROCESSED)
        if states is not None and states[0] != states[1]:
            rows.append((Entity.FILE, file_id, states[0], states[1], None))
    if rows:
        tx.audit.record_change_rows(rows)


def _has_acks(report: ValidationReport) -> bool:
    return any(g.functional_id == "FA" for i in report.interchanges for g in i.groups) or any(
        i.groups == () for i in report.interchanges
    )


def _quarantine(ctx: Context, row: FileRow, reason: str) -> str:
    folder = ensure_dir(ctx.config.folders.quarantine)
    name = internal_name(row.id, row.name)
    atomic_write(folder / name, ctx.payloads.get(row.sha256))
    atomic_write(
        folder / f"{name}.reason.json",
        json.dumps({"file": row.name, "file_id": row.id, "partner": row.partner, "reason": reason}).encode(),
    )
    with ctx.store.begin() as tx:
        tx.quarantine.add(row.id, {"reason": reason})
    ctx.log.warning("inbound file quarantined", partner=row.partner, file=row.name, reason=reason)
    return FileState.QUARANTINED


@dataclass(frozen=True)
class _Mapped:
    """One record to apply, with the acknowledgment verdict of the set it came in."""

    kind: str
    record: Record
    key: tuple[str, str]  # (ISA13, ST02)
    validation: str
    findings: tuple[dict[str, object], ...]


# A file up to this size keeps its mapped records as they are until its verdicts are known (a few
# hundred records, a few MiB at most); a larger one keeps them pickled and compressed.
KEEP_RECORDS_BYTES = 256 * 1024


class _Spool:
    """Where a large file's packed records wait for the file's verdicts: an unlinked file beside the
    payloads (owner-only, gone when closed or when the process dies), so memory per set is a few
    dozen bytes of position instead of the packed record (~0.5 KiB of a 271): the 30 MB file of
    ``bench/bench_inbound.py`` holds 46,000 of them."""

    def __init__(self, folder: Path) -> None:
        self._fh = tempfile.TemporaryFile(dir=folder, prefix=".spool-")  # noqa: SIM115 - closed by close()
        self._end = 0

    def put(self, data: bytes) -> tuple[int, int]:
        self._fh.seek(self._end)
        self._fh.write(data)
        where = (self._end, len(data))
        self._end += len(data)
        return where

    def get(self, where: tuple[int, int]) -> bytes:
        self._fh.seek(where[0])
        return self._fh.read(where[1])

    def close(self) -> None:
        self._fh.close()


@dataclass(frozen=True)
class _Packed:
    """A record read from a set whose group and interchange verdicts are not known yet: pickled and
    compressed (a few hundred bytes) and written to the file's spool (its position kept) so that a
    large file's records do not fill memory, or the record itself for a small file (compressing it
    would cost more than it saves)."""

    kind: str
    offset: int  # the set's offset in the file: its report is found by it at the end
    key: tuple[str, str]  # (ISA13, ST02)
    data: tuple[int, int] | Record  # (position, length) in the spool, or the record

    def record(self, spool: _Spool | None) -> Record:
        if not isinstance(self.data, tuple):
            return self.data
        assert spool is not None  # positions only exist with a spool  # noqa: S101
        # our own bytes, made a moment ago in this process from our own dataclasses
        return pickle.loads(zlib.decompress(spool.get(self.data)))  # type: ignore[no-any-return]  # noqa: S301


@dataclass(frozen=True)
class _SetFacts:
    """What the store records of a received set beside its report (traces and BHT03 for matching)."""

    traces: tuple[str, ...]
    bht03: str | None


@dataclass
class _Scan:
    """One pass over a file: the validation report, each set's facts by offset, and every mapped
    response packed in file order."""

    report: ValidationReport
    sets: dict[int, _SetFacts]
    packed: list[_Packed]
    spool: _Spool | None

    @classmethod
    def of(
        cls, data: Iterable[bytes], opts: Options, rules: MappingRules, *, spool: _Spool | None = None
    ) -> _Scan:
        """Records stay as they are without a ``spool`` (a small file), else wait packed in it."""
        stream = ValidationStream(data, opts)
        sets: dict[int, _SetFacts] = {}
        packed: list[_Packed] = []
        for item in stream:
            sets[item.validated.report.offset] = _facts(item)
            packed.extend(_pack(item, rules, spool))
        assert stream.report is not None  # set once iteration ends  # noqa: S101
        return cls(stream.report, sets, packed, spool)

    def mapped(self) -> Iterator[_Mapped]:
        """Every readable response in file order, whatever our 999 says of it, except from
        interchanges or groups not addressed to us (as ``mappings.mapper.map_validation``)."""
        where = _by_offset(self.report)
        for p in self.packed:
            found = where.get(p.offset)
            if found is None or found[0].misaddressed:
                continue
            ic, g, s = found
            findings = tuple(finding_json(f) for f in s.findings)
            yield _Mapped(p.kind, p.record(self.spool), p.key, set_validation(ic, g, s), findings)


def _facts(item: SetInContext) -> _SetFacts:
    segments = item.validated.segments
    traces = tuple(seg.get(2) for seg in segments if seg.tag == "TRN")
    bht03 = segments[1].get(3) if len(segments) > 1 and segments[1].tag == "BHT" else None
    return _SetFacts(traces, bht03)


def _pack(item: SetInContext, rules: MappingRules, spool: _Spool | None) -> list[_Packed]:
    report = item.validated.report
    if report.map not in ANSWERS:
        return []
    records = map_set(item.validated, item.interchange, item.group, rules)
    key = (item.interchange, report.control_number)
    return [
        _Packed(
            report.map or "",
            report.offset,
            key,
            r if spool is None else spool.put(zlib.compress(pickle.dumps(r), 1)),
        )
        for r in records
    ]


def _by_offset(report: ValidationReport) -> dict[int, tuple[InterchangeReport, GroupReport, SetReport]]:
    return {s.offset: (ic, g, s) for ic in report.interchanges for g in ic.groups for s in g.sets}


def _warn_misaddressed(ctx: Context, row: FileRow, report: ValidationReport) -> None:
    for ic in report.interchanges:
        if ic.misaddressed:
            ctx.log.warning(
                "interchange not addressed to us: rejected, nothing applied",
                partner=row.partner,
                file=row.name,
                interchange=ic.control_number,
                reason=ic.misaddressed,
            )


def _our_acks(ctx: Context, partner: PartnerConfig, report: ValidationReport) -> list[tuple[str, bytes]]:
    """The 999s (and TA1s) we owe for what we received (never for received acknowledgments)."""
    out: list[tuple[str, bytes]] = []
    ident = ctx.config.identity
    pair = (f"{ident.isa_qualifier}:{ident.isa_id}", f"{partner.isa_qualifier}:{partner.isa_id}")
    for ic in report.interchanges:
        wants_999 = not ic.rejected and any(g.functional_id != "FA" for g in ic.groups)
        if ic.ta1 is None and not wants_999:
            continue
        isa = ctx.store.allocate_control_numbers(*pair, "ISA13", 1)[0]
        env = AckEnvelope(ident.isa_qualifier, ident.isa_id, isa, isa, ctx.clock(), ctx.config.gateway.usage)
        answered = _without_acks(ic)
        payload = build_ta1(ic, env) if ic.rejected else None
        if payload is None and wants_999:
            gs = ctx.store.allocate_control_numbers(*pair, "GS06", 1)[0]
            st = ctx.store.allocate_control_numbers(*pair, "ST02", len(answered.groups))
            env = AckEnvelope(
                ident.isa_qualifier, ident.isa_id, isa, gs, ctx.clock(), ctx.config.gateway.usage
            )
            payload = build_999(answered, env, st[0])
        if payload is not None:
            out.append((partner.file_name("TA1" if ic.rejected else "999", isa, ctx.clock()), payload))
    return out


def _without_acks(ic: InterchangeReport) -> InterchangeReport:
    return replace(ic, groups=tuple(g for g in ic.groups if g.functional_id != "FA"))


def _record_envelopes(
    tx: Tx, row: FileRow, report: ValidationReport, facts: dict[int, _SetFacts]
) -> dict[tuple[str, str], int]:
    """Record the file's interchanges, groups and sets; the set rows' ids by (ISA13, ST02)."""
    set_rows: dict[tuple[str, str], int] = {}
    for ic in report.interchanges:
        ic_row = tx.envelopes.record_interchange(
            file_id=row.id,
            control_number=_control(ic.control_number, 0),
            sender=f"{ic.sender_qualifier}:{ic.sender}",
            receiver=f"{ic.receiver_qualifier}:{ic.receiver}",
            ack_status=ic.ta1.ack_code if ic.ta1 else None,
        )
        for g in ic.groups:
            g_row = tx.envelopes.record_group(
                interchange_id=ic_row.id,
                control_number=_control(g.control_number, 0),
                functional_id=g.functional_id,
                version=g.version,
                ack_status=g.ack_code,
            )
            new = [
                NewSet(
                    interchange_id=ic_row.id,
                    group_id=g_row.id,
                    control_number=s.control_number,
                    set_id=s.set_id,
                    trace_numbers=facts[s.offset].traces,
                    bht03=facts[s.offset].bht03,
                    state=SetState.RECEIVED if s.accepted else SetState.REJECTED,
                    ack_status=s.ack_code,
                )
                for s in g.sets
            ]
            for s, set_row_id in zip(g.sets, tx.envelopes.record_sets(new), strict=True):
                set_rows.setdefault((ic.control_number, s.control_number), set_row_id)
    return set_rows


def _candidates(tx: Tx, kind: str, traces: list[str], bht03: str | None) -> dict[int, RequestRow]:
    """Requests a response could answer: those whose sent set carries one of its traces or its BHT03."""
    wanted = ANSWERS[kind]
    found = [
        i
        for t in dict.fromkeys(traces)
        for i in tx.envelopes.requests_of_sets(trace_number=t, set_id=wanted, limit=5)
    ]
    if bht03:
        found += tx.envelopes.requests_of_sets(bht03=bht03, set_id=wanted, limit=5)
    return {i: tx.requests.get(i) for i in dict.fromkeys(found)}  # each request read once


def _applied_fingerprints(tx: Tx, req: RequestRow) -> list[tuple[str, str]]:
    return [
        (req.tracking_number, str(h.detail["fingerprint"]))
        for h in tx.audit.history("request", req.id)
        if h.detail and "fingerprint" in h.detail
    ]


def _mark_unmatched(tx: Tx, set_row_ids: list[int]) -> None:
    """Sets none of whose responses matched a request become ``unmatched`` (listable, countable); a set
    with one matched subscriber among strangers stays ``received``."""
    for set_row_id in set_row_ids:
        if allows(Entity.TRANSACTION_SET, tx.envelopes.get_set(set_row_id).state, SetEvent.FIND_NO_REQUEST):
            tx.envelopes.transition_set(set_row_id, SetEvent.FIND_NO_REQUEST)


def _apply_record(ctx: Context, tx: Tx, item: _Mapped, outcome: Outcome) -> bool:
    """Match one mapped response to its request (mappings.correlate) and store it, once. The stored
    record carries the set's acknowledgment verdict (``validation``) and its findings. False when it
    matched no request (an audit row and a warning say so); a duplicate counts as matched."""
    kind, record, key = item.kind, item.record, item.key
    traces = (
        list(record.trace_numbers)
        if isinstance(record, EligibilityResult)
        else ([record.trace_number] if record.trace_number else [])
    )
    as_dict = to_dict(record)  # once: it is the fingerprint's input and the stored document's base
    fingerprint = hashlib.sha256(json.dumps(as_dict, sort_keys=True).encode()).hexdigest()[:16]
    candidates = _candidates(tx, kind, traces, record.bht_reference)
    sent = [
        SentRequest(r.tracking_number, r.kind, r.tracking_number, r.tracking_number)
        for r in candidates.values()
    ]
    seen = [fp for r in candidates.values() for fp in _applied_fingerprints(tx, r)]
    result = correlate(sent, [ResponseKey(kind, tuple(traces), record.bht_reference, fingerprint)], seen)
    detail = {
        "kind": kind,
        "interchange": key[0],
        "transaction_set": key[1],
        "fingerprint": fingerprint,
        "validation": item.validation,
    }
    if result.duplicates:
        tx.audit.record_change(
            "response", 0, None, "duplicate", {**detail, "tracking": result.duplicates[0][1]}
        )
        ctx.log.info("duplicate response ignored", tracking=result.duplicates[0][1], **detail)
        return True
    if not result.matched:
        outcome.unmatched += 1
        tx.audit.record_change("response", 0, None, "unmatched", detail)
        ctx.log.warning("response matches no request", **detail)
        return False
    req = next(r for r in candidates.values() if r.tracking_number == result.matched[0][1])
    doc = {**as_dict, "validation": item.validation, "findings": list(item.findings)}
    if item.validation == "rejected":
        _warn_rejected_set(ctx, req, item)
    if isinstance(record, EligibilityResult):
        if outcome.written is not None:  # read back when rendered, as written here
            outcome.written.pop(req.tracking_number, None)
        tx.results.upsert_eligibility(
            tracking_number=req.tracking_number,
            request_id=req.id,
            status=record.coverage,
            record=doc,
            effective_from=record.plan_begin,
            effective_to=record.plan_end,
        )
        new_state = RequestState.ANSWERED
    elif isinstance(record, AuthorizationRecord):
        tx.results.upsert_authorization(
            tracking_number=req.tracking_number,
            request_id=req.id,
            status=record.status,
            record=doc,
            certification_number=record.certification_number,
            effective_from=record.effective_from,
            effective_to=record.effective_to,
        )
        new_state = RequestState.PENDED if record.status == "pended" else RequestState.ANSWERED
    if req.state != new_state:
        tx.requests.transition(req.tracking_number, _RESPONSE_EVENT[new_state], detail=detail, was=req.state)
    else:  # no state change, but the response is part of the request's history all the same
        tx.audit.record_change(Entity.REQUEST, req.id, req.state, req.state, detail)
    outcome.records += 1
    outcome.records_from_rejected_sets += item.validation == "rejected"
    outcome.trackings.append(req.tracking_number)
    return True


_RESPONSE_EVENT = {RequestState.ANSWERED: RequestEvent.ANSWER, RequestState.PENDED: RequestEvent.PEND}
_RESPONSE_STATES = tuple(_RESPONSE_EVENT)

APPLY_CHUNK = 500  # responses matched and stored together: a few statements per chunk, memory bounded
# record types stored in chunks (_Chunk); others, and chunks mixing them, go one by one (_apply_record)
BATCHED_RECORDS: tuple[type, ...] = (EligibilityResult,)


def _apply_all(
    ctx: Context,
    tx: Tx,
    mapped: Iterator[_Mapped] | Iterator[_Response],
    outcome: Outcome,
    sealed: Mapping[int, Any] | None = None,
) -> dict[tuple[str, str], bool]:
    """Apply every mapped response (or one prepared by ``_Response.of``) in file order; per set
    (ISA13, ST02), whether any matched (``sealed``: see ``sealed_records``)."""
    matched: dict[tuple[str, str], bool] = {}
    source: Iterator[_Mapped | _Response] = mapped
    while given := list(islice(source, APPLY_CHUNK)):
        chunk = [g.item if isinstance(g, _Response) else g for g in given]
        if BATCHED_RECORDS and all(isinstance(i.record, BATCHED_RECORDS) for i in chunk):
            found = _Chunk(ctx, tx, outcome, sealed).apply(given)
        else:
            found = [_apply_record(ctx, tx, item, outcome) for item in chunk]
        for item, hit in zip(chunk, found, strict=True):
            matched[item.key] = matched.get(item.key, False) or hit
        outcome.fresh = {}  # true of the first chunk only: a later one reads what this one stored
    return matched


@dataclass(frozen=True)
class _Response:
    """One response ready to match: its traces, JSON form and fingerprint (as ``_apply_record``)."""

    item: _Mapped
    traces: tuple[str, ...]
    as_dict: dict[str, Any]
    fingerprint: str

    @cached_property
    def stored(self) -> dict[str, Any]:
        """The record stored for it when matched: its JSON form, the set's verdict and findings."""
        item = self.item
        return {**self.as_dict, "validation": item.validation, "findings": list(item.findings)}

    @classmethod
    def of(cls, item: _Mapped) -> _Response:
        record = item.record
        traces = (
            tuple(record.trace_numbers)
            if isinstance(record, EligibilityResult)
            else ((record.trace_number,) if record.trace_number else ())
        )
        as_dict = to_dict(record)
        fingerprint = hashlib.sha256(json.dumps(as_dict, sort_keys=True).encode()).hexdigest()[:16]
        return cls(item, traces, as_dict, fingerprint)


# an event-log row waiting for the chunk's writes; an int entity id, or the index of the eligibility
# write whose new row id it needs
_LogRow = tuple[str, "int | _WriteRef", "str | None", str, "dict[str, Any] | None"]


@dataclass(frozen=True)
class _WriteRef:
    index: int


class _Chunk:
    """``_apply_record`` for a chunk of 271 responses in a handful of statements whatever its size:
    the candidates' sets, requests (locked), applied fingerprints and current results are read at
    once; requests, results and event-log rows are written together (in the order ``_apply_record``
    writes them), and before a request is touched a second time. The chunk's own changes are kept
    in memory (states, fingerprints), so each response sees what the ones before it did."""

    def __init__(
        self, ctx: Context, tx: Tx, outcome: Outcome, sealed: Mapping[int, Any] | None = None
    ) -> None:
        self.ctx, self.tx, self.outcome = ctx, tx, outcome
        self.sealed = sealed or {}  # stored forms of the records, by response (``sealed_records``)
        self.by_trace: dict[tuple[str, str], list[int]] = {}
        self.by_bht: dict[tuple[str, str], list[int]] = {}
        self.requests: dict[int, RequestHead] = {}
        self.state: dict[int, str] = {}
        self.seen: dict[int, list[tuple[str, str]]] = {}
        self.current: dict[str, tuple[int, str]] = {}  # tracking -> (result row id, status)
        self.writes: list[EligibilityWrite] = []
        self.moves: list[tuple[int, str, RequestEvent]] = []
        self.log: list[_LogRow] = []
        self.touched: set[int] = set()

    def apply(self, items: list[_Mapped | _Response]) -> list[bool]:
        responses = [i if isinstance(i, _Response) else _Response.of(i) for i in items]
        self._read(responses)
        found = [self._one(r) for r in responses]
        self._flush()
        return found

    def _read(self, responses: list[_Response]) -> None:
        tx = self.tx
        for wanted in dict.fromkeys(ANSWERS[r.item.kind] for r in responses):
            mine = [r for r in responses if ANSWERS[r.item.kind] == wanted]
            traces = list(dict.fromkeys(t for r in mine for t in r.traces))
            bhts = list(dict.fromkeys(b for r in mine if (b := r.item.record.bht_reference)))
            by_trace, by_bht = tx.envelopes.requests_of_keys(traces, bhts, set_id=wanted, limit=5)
            for t, ids in by_trace.items():
                self.by_trace[wanted, t] = ids
            for b, ids in by_bht.items():
                self.by_bht[wanted, b] = ids
        ids = list(
            dict.fromkeys(i for found in (*self.by_trace.values(), *self.by_bht.values()) for i in found)
        )
        fresh = self.outcome.fresh  # moved from queued in this transaction: nothing of theirs to read
        unknown = [i for i in ids if i not in fresh]
        self.requests = {r.id: r for r in tx.requests.heads(unknown)}
        if len(self.requests) != len(unknown):
            raise NotFoundError("request not found")
        self.requests.update((i, fresh[i]) for i in ids if i in fresh)
        self.state = {i: r.state for i, r in self.requests.items()}
        # a response's fingerprint is logged with the request's move to (or stay in) answered/pended
        details = tx.audit.details_of(Entity.REQUEST, unknown, _RESPONSE_STATES) if unknown else {}
        self.seen = {i: [] for i in ids if i in fresh}
        self.seen.update(
            (i, [(self.requests[i].tracking_number, str(d["fingerprint"])) for d in ds if "fingerprint" in d])
            for i, ds in details.items()
        )
        trackings = [self.requests[i].tracking_number for i in unknown]
        self.current = {
            t: (row.id, row.status)
            for t, row in tx.results.eligibility_of(trackings, for_update=True).items()
        }

    def _candidates(self, r: _Response) -> list[RequestHead]:
        wanted = ANSWERS[r.item.kind]
        found = [i for t in dict.fromkeys(r.traces) for i in self.by_trace.get((wanted, t), [])]
        if bht := r.item.record.bht_reference:
            found += self.by_bht.get((wanted, bht), [])
        return [self.requests[i] for i in dict.fromkeys(found)]

    def _one(self, r: _Response) -> bool:
        item, record = r.item, r.item.record
        candidates = self._candidates(r)
        sent = [
            SentRequest(c.tracking_number, c.kind, c.tracking_number, c.tracking_number) for c in candidates
        ]
        seen = [fp for c in candidates for fp in self.seen[c.id]]
        key = ResponseKey(item.kind, r.traces, record.bht_reference, r.fingerprint)
        result = correlate(sent, [key], seen)
        detail = {
            "kind": item.kind,
            "interchange": item.key[0],
            "transaction_set": item.key[1],
            "fingerprint": r.fingerprint,
            "validation": item.validation,
        }
        if result.duplicates:
            self.log.append(
                ("response", 0, None, "duplicate", {**detail, "tracking": result.duplicates[0][1]})
            )
            self.ctx.log.info("duplicate response ignored", tracking=result.duplicates[0][1], **detail)
            return True
        if not result.matched:
            self.outcome.unmatched += 1
            self.log.append(("response", 0, None, "unmatched", detail))
            self.ctx.log.warning("response matches no request", **detail)
            return False
        req = next(c for c in candidates if c.tracking_number == result.matched[0][1])
        self._store(r, req, detail)
        return True

    def _store(self, r: _Response, req: RequestHead, detail: dict[str, Any]) -> None:
        """Queue the writes ``_apply_record`` makes for a matched 271 (a second one for the same
        request in this chunk first writes what is queued, so the result row exists)."""
        item, record = r.item, r.item.record
        assert isinstance(record, EligibilityResult)  # noqa: S101 - BATCHED_RECORDS holds only these
        if req.id in self.touched:
            self._flush()
        stored = self.sealed.get(id(r))
        if item.validation == "rejected":
            _warn_rejected_set(self.ctx, req, item)
        existing = self.current.get(req.tracking_number)
        write = EligibilityWrite(
            tracking_number=req.tracking_number,
            request_id=req.id,
            status=record.coverage,
            record=_result_record(r) if stored is None else stored,
            effective_from=record.plan_begin,
            effective_to=record.plan_end,
            existing_id=existing[0] if existing else None,
            existing_status=existing[1] if existing else None,
        )
        self.writes.append(write)
        if self.outcome.written is not None:
            self.outcome.written[req.tracking_number] = (record.coverage, _result_record(r))
        if existing is None or existing[1] != record.coverage:
            ref = existing[0] if existing else _WriteRef(len(self.writes) - 1)
            old = existing[1] if existing else None
            self.log.append(("eligibility", ref, old, record.coverage, {"source_set_id": None}))
        state = self.state[req.id]
        if state != RequestState.ANSWERED:
            target = target_state(Entity.REQUEST, state, RequestEvent.ANSWER)
            self.moves.append((req.id, state, RequestEvent.ANSWER))
            if target != state:
                self.log.append((Entity.REQUEST, req.id, state, target, detail))
            self.state[req.id] = target
        else:
            self.log.append((Entity.REQUEST, req.id, state, state, detail))
        self.seen[req.id].append((req.tracking_number, r.fingerprint))
        self.touched.add(req.id)
        self.outcome.records += 1
        self.outcome.records_from_rejected_sets += item.validation == "rejected"
        self.outcome.trackings.append(req.tracking_number)

    def _flush(self) -> None:
        tx = self.tx
        rows = tx.results.upsert_eligibility_many(self.writes)
        for w, (row_id, _, status) in zip(self.writes, rows, strict=True):
            self.current[w.tracking_number] = (row_id, status)
        at = tx.requests.now()
        targets = tx.requests.move_known(self.moves, at=at)
        if self.outcome.written is not None:
            self._known(targets, at)
        tx.audit.record_change_rows(
            [(e, rows[i.index][0] if isinstance(i, _WriteRef) else i, o, n, d) for e, i, o, n, d in self.log]
        )
        self.writes, self.moves, self.log = [], [], []
        self.touched.clear()

    def _known(self, targets: list[str], at: datetime) -> None:
        """The moved requests as their rows now are, for rendering (``Outcome.known``): those whose
        reason and payload the transaction read (``Outcome.fresh_rows``); any other is left out."""
        known, rows = self.outcome.known, self.outcome.fresh_rows
        for (request_id, _, _), state in zip(self.moves, targets, strict=True):
            head, row = self.requests[request_id], rows.get(request_id)
            if row is not None:
                known[head.tracking_number] = KnownRequest.of(
                    head.tracking_number, head.kind, row[1], row[0], state, at
                )
            else:
                known.pop(head.tracking_number, None)


def _result_record(r: _Response) -> dict[str, Any]:
    """The record stored for a matched response (made once per response: ``_Response.stored``)."""
    return r.stored


def sealed_records(ctx: Context, prepared: Prepared) -> dict[int, Any]:
    """The stored (sealed) forms of a prepared answer's 271 result records, by response, made before
    the transaction that stores them (``store_answer(sealed=...)``): their JSON encoding and AES-GCM
    then run without the writer lock. A response that matches no request just leaves its one unused."""
    return {
        id(r): ctx.store.sealed_doc(_result_record(r))
        for r in prepared.responses or ()
        if isinstance(r.item.record, BATCHED_RECORDS)
    }


def _warn_rejected_set(ctx: Context, req: RequestHead | RequestRow, item: _Mapped) -> None:
    ctx.log.warning(
        "payer decision received in a transaction set our 999 rejects: applied, errors reported",
        tracking=req.tracking_number,
        kind=item.kind,
        interchange=item.key[0],
        transaction_set=item.key[1],
        errors=[
            f"{f['segment']}{'/' + str(f['element']) if f['element'] else ''} {f['code']}"
            for f in item.findings
            if f["severity"] == "error"
        ][:10],
    )


def _apply_acks(
    ctx: Context,
    tx: Tx,
    groups: tuple[GroupAck, ...],
    interchanges: tuple[InterchangeAck, ...],
    outcome: Outcome,
) -> int:
    """Record 999/TA1 verdicts on what we sent; requests they reject are added to the outcome's
    trackings, and every rejection to its warnings."""
    rejected = outcome.trackings
    applied = 0
    ours = _our_id(ctx)
    for ta1 in interchanges:
        for ic in tx.envelopes.find_interchanges(_control(ta1.interchange_control, -1), sender=ours):
            tx.envelopes.set_ack_status("interchange", ic.id, ta1.ack_code)
            _file_acknowledged(tx, ic.file_id, ta1.ack_code)
            applied += 1
            if ta1.ack_code == "R":
                fields = {"interchange": ic.control_number, "note": ta1.note_code}
                outcome.warnings.append(("interchange rejected by TA1", fields))
                for g in tx.envelopes.groups_of_interchange(ic.id):
                    for s in tx.envelopes.sets_of_group(g.id):
                        note = f"interchange rejected by TA1, note {describe('ta1_note', ta1.note_code)}"
                        _reject_request(tx, s.request_id, note, rejected)
            break
    for ga in groups:
        group = _our_group(tx, ga, ours)
        if group is None:
            continue
        tx.envelopes.set_ack_status("group", group.id, ga.ack_code)
        _file_acknowledged(tx, tx.envelopes.get_interchange(group.interchange_id).file_id, ga.ack_code)
        applied += 1
        verdicts = {s.control_number: s for s in ga.sets}
        codes: dict[int, str] = {}
        accepted: list[int] = []
        for s in tx.envelopes.sets_of_group(group.id):
            verdict = verdicts.get(s.control_number)
            code = verdict.ack_code if verdict else ("R" if ga.ack_code == "R" else "A")
            codes[s.id] = code
            if code == "R":
                errors = verdict.errors if verdict else ()
                why = ", ".join(
                    f"{e.segment}{'/' + e.element if e.element else ''} code {e.code}" for e in errors
                )
                fields = {"group": group.control_number, "transaction_set": s.control_number, "errors": why}
                outcome.warnings.append(("transaction set rejected by 999", fields))
                _reject_request(tx, s.request_id, _rejection_reason(errors), rejected)
            elif s.request_id is not None:
                accepted.append(s.request_id)
        tx.envelopes.set_ack_statuses("transaction_set", codes)
        sent = [r.tracking_number for r in tx.requests.heads(accepted) if r.state == RequestState.SENT]
        tx.requests.transition_many(sent, RequestEvent.ACKNOWLEDGE, expect=RequestState.SENT)
    return applied


def _rejection_reason(errors: tuple[Any, ...]) -> str:
    """The request's reason for a 999 rejection, codes decoded (``NM1/NM109 7 (invalid code value)``)."""
    why = ", ".join(
        f"{e.segment}{'/' + e.element if e.element else ''} "
        f"{describe('element_error' if e.element else 'segment_error', e.code)}"
        for e in errors
    )
    return f"rejected by 999, IK5 R (rejected){': ' + why if why else ''}"


def _file_acknowledged(tx: Tx, file_id: int, code: str) -> None:
    """A sent file that got its 999/TA1 leaves ``sent`` (or ``ack_overdue``) for ``acknowledged``."""
    row = tx.files.get(file_id)
    if allows(Entity.FILE, row.state, FileEvent.ACKNOWLEDGE):
        tx.files.transition(file_id, FileEvent.ACKNOWLEDGE, detail={"ack": code})


def _our_group(tx: Tx, ga: GroupAck, ours: str) -> Any:
    control = _control(ga.group_control, -1)
    if control < 0:
        return None
    for g in tx.envelopes.find_groups(control):
        if (
            g.functional_id == ga.functional_id
            and tx.envelopes.get_interchange(g.interchange_id).sender == ours
        ):
            return g
    return None


def _reject_request(tx: Tx, request_id: int | None, reason: str, rejected: list[str]) -> None:
    if request_id is None:
        return
    req = tx.requests.get(request_id)
    if allows(Entity.REQUEST, req.state, RequestEvent.REJECT):
        tx.requests.transition(req.tracking_number, RequestEvent.REJECT, reason=reason)
        rejected.append(req.tracking_number)


def recover(ctx: Context) -> None:
    """Deliver results of files processed before a crash (idempotent rewrite)."""
    with ctx.store.read() as tx:
        rows = tx.files.query(state=FileState.PROCESSED, direction="in", limit=500)
        pending = [(r, tx.audit.history("file", r.id)) for r in rows]
    for row, history in pending:
        detail = next((h.detail for h in reversed(history) if h.new_state == FileState.PROCESSED), None) or {}
        trackings = list(detail.get("trackings", []))
        deliver(ctx, row.id, trackings, summary=batch_summary(ctx.config, row.partner))


def release_expired(ctx: Context, dead: list[str]) -> int:
    """Files a dead node was processing (lease expired, or its node known dead) return to ``downloaded``."""
    with ctx.store.begin() as tx:
        return tx.files.release_expired(dead_owners=dead)


def claim_downloaded(ctx: Context, tx: Tx, file_id: int | None = None) -> FileRow | None:
    """One downloaded file (``file_id``, or any) moved ``downloaded -> processing`` under this node's
    lease, or None. A big file may take a while to validate: the lease is longer than a batch's."""
    until = ctx.clock() + timedelta(seconds=5 * ctx.config.gateway.lease_seconds)
    rows = tx.files.claim(
        event=FileEvent.START_PROCESSING,
        direction="in",
        owner=ctx.node_id,
        until=until,
        limit=1,
        file_id=file_id,
    )
    return rows[0] if rows else None


def process_claimed(
    ctx: Context, row: FileRow, rules: MappingRules, *, on_document: OnDocument | None = None
) -> None:
    """Process a file this node claimed; hostile content must not stall the stage (or a real-time
    call): an unexpected failure sets the file aside with its reason."""
    try:
        process_file(ctx, row, rules, on_document=on_document)
    except _UNEXPECTED as exc:
        _quarantine(ctx, row, f"file could not be processed ({type(exc).__name__})")


def process_downloaded(ctx: Context, rules: MappingRules) -> int:
    """Claim downloaded files one at a time (row lock + lease) and process each."""
    done = 0
    while True:
        with ctx.store.begin() as tx:
            row = claim_downloaded(ctx, tx)
        if row is None:
            return done
        process_claimed(ctx, row, rules)
        done += 1
