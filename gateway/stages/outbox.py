"""Outbox: one result file per request (``<tracking number>.json``, written atomically, owner-only),
plus an optional CSV summary per processed batch (not per real-time answer: ``batch_summary``).
Rewriting a result is idempotent.

This is the only writer of the outbox: every stage that changes what a billing system should see
(batching sets a request aside, the pre-cert gate answers one, inbound delivers responses, the run
loop marks requests overdue) calls :func:`write_results`, which renders each file from the store
alone, so the same request state gives the same bytes whoever asked for the write.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.runtime.config import GatewayConfig
from gateway.runtime.context import Context
from gateway.runtime.fsutil import LocalIOError, atomic_write_all, known_dir, remade_dir
from gateway.runtime.jsontext import dumps_indent2_sorted
from gateway.store import RequestRow, Tx
from gateway.store.rows import EligibilityRow
from mappings.decode import decision_summary

SUMMARY_COLUMNS = (
    "tracking_number",
    "client_reference",
    "kind",
    "state",
    "status",
    "certification_number",
    "effective_from",
    "effective_to",
    "reason",
)


def result_document(tx: Tx, req: RequestRow) -> dict[str, Any]:
    """What the billing system reads for one request: its state and the latest record, if any."""
    if req.kind == "270":
        return eligibility_document(req, tx.results.get_eligibility(req.tracking_number))
    doc = _base_document(req)
    auth = tx.results.get_authorization(req.tracking_number)
    doc["status"] = auth.status if auth else req.state
    doc["authorization"] = auth.record if auth else None
    if auth is not None and auth.status != "approved" and doc["reason"] is None:
        doc["reason"] = decision_summary(auth.record)  # denials, pends, partial approvals say why
    if auth is not None:
        doc["history"] = [
            {
                "at": e.at.isoformat(),
                "from": e.old_status,
                "to": e.new_status,
                "certification_number": e.certification_number,
            }
            for e in tx.results.authorization_history(auth.id)
        ]
    return doc


def eligibility_document(req: RequestRow, elig: EligibilityRow | None) -> dict[str, Any]:
    """``result_document`` of a 270 request whose latest 271 outcome (or None) the caller read."""
    return _eligibility_document(req, (elig.status, elig.record) if elig is not None else None)


# a 271 outcome as its row holds it: (status, record)
Outcome271 = tuple[str, dict[str, Any]]


def _eligibility_document(req: RequestRow | KnownRequest, elig: Outcome271 | None) -> dict[str, Any]:
    doc = _base_document(req)
    doc["status"] = elig[0] if elig else req.state
    doc["eligibility"] = elig[1] if elig else None
    if elig is not None and elig[0] != "active" and doc["reason"] is None:
        doc["reason"] = decision_summary(elig[1])
    return doc


@dataclass(frozen=True)
class KnownRequest:
    """What a result document shows of a request, as the transaction rendering it left its row
    (``rendered_results(known=...)``: a real-time answer's request, moved and read by that
    transaction's own UPDATEs, is not read again)."""

    tracking_number: str
    client_reference: str | None
    kind: str
    state: str
    reason: str | None
    updated_at: datetime  # as the row keeps it: the UTC instant (``UtcDateTime`` reads it back so)

    @classmethod
    def of(  # noqa: PLR0917 - one row's fields
        cls,
        tracking: str,
        kind: str,
        payload: Mapping[str, Any],
        reason: str | None,
        state: str,
        at: datetime,
    ) -> KnownRequest:
        """From the payload and reason the row holds and the state and time it was last moved to."""
        return cls(tracking, payload.get("client_reference"), kind, state, reason, at.astimezone(UTC))


def _base_document(req: RequestRow | KnownRequest) -> dict[str, Any]:
    reference = req.client_reference if isinstance(req, KnownRequest) else req.payload.get("client_reference")
    return {
        "tracking_number": req.tracking_number,
        "client_reference": reference,
        "kind": req.kind,
        "state": req.state,
        "reason": req.reason,
        "updated_at": req.updated_at.isoformat(),
    }


def batch_summary(config: GatewayConfig, partner: str) -> bool:
    """Whether a processed file from ``partner`` gets its CSV summary: a batch does (when
    ``[outbox] csv_summary``); an answer of a CAQH CORE real-time partner does not. It carries one
    request's result, so its summary was a one-row copy of the result file written beside it, named
    after an internal file id that neither the API caller nor the billing system knows, and a second
    file created (and synced) per real-time call."""
    if not config.outbox.csv_summary:
        return False
    found = next((p for p in config.partners if p.name == partner), None)
    return found is None or found.core is None or found.core.mode != "realtime"


def summary_file_name(file_id: int) -> str:
    """The CSV summary's name for the results of one processed inbound file."""
    return f"summary-{file_id}.csv"


def render_result(doc: dict[str, Any]) -> bytes:
    """The bytes of one result file (stable key order, so a rewrite is byte-identical): exactly
    ``json.dumps(doc, indent=2, sort_keys=True)``, written without json's slow indenting encoder."""
    return dumps_indent2_sorted(doc).encode()


WRITE_CHUNK = 500  # result files written (and synced) together; bounds memory on a large delivery


# what a caller that waits for a result is handed: each document, once its file is durable
OnDocument = Callable[[dict[str, Any]], None]


def write_results(
    ctx: Context,
    trackings: list[str],
    *,
    summary_name: str | None = None,
    on_document: OnDocument | None = None,
    documents: list[dict[str, Any]] | None = None,
) -> int:
    """(Re)write the result file of each tracking number (unknown ones are skipped), and the CSV
    summary ``summary_name`` when given and enabled; returns how many results were written.
    ``on_document(doc)`` gets each result document once its file (and the summary) is durable: a
    real-time caller answers with it instead of reading the request back. ``documents``: those of
    ``trackings`` as :func:`rendered_results` read them in the transaction that stored them (a
    small delivery: no read after its commit)."""
    outbox = known_dir(ctx.config.folders.outbox)
    rows: list[dict[str, Any]] = []
    files: list[tuple[str, bytes]] = []
    docs: list[dict[str, Any]] = []

    def add(doc: dict[str, Any]) -> None:
        files.append((f"{doc['tracking_number']}.json", render_result(doc)))
        rows.append(_summary_row(doc))
        if on_document is not None:
            docs.append(doc)
        if len(files) >= WRITE_CHUNK:
            _write_all(outbox, files)
            files.clear()

    if documents is None:
        with ctx.store.read() as tx:
            for doc in _documents(tx, list(dict.fromkeys(trackings))):
                add(doc)
    else:
        for doc in documents:
            add(doc)
    if summary_name and rows and ctx.config.outbox.csv_summary:
        # synced with the last results (one folder sync for both): a small delivery, a real-time
        # answer above all, writes its result and its summary together
        files.append((summary_name, _summary_csv(rows)))
    _write_all(outbox, files)  # all durable before the caller records the delivery
    if on_document is not None:
        for doc in docs:
            on_document(doc)
    return len(rows)


def _write_all(outbox: Path, files: list[tuple[str, bytes]]) -> None:
    """``atomic_write_all`` into the outbox, made again first if it was removed while we ran (as
    creating it before every write did)."""
    try:
        atomic_write_all(outbox, files)
    except LocalIOError as exc:
        if not exc.missing:
            raise
        atomic_write_all(remade_dir(outbox), files)


def rendered_results(
    tx: Tx,
    trackings: list[str],
    written: Mapping[str, Outcome271] | None = None,
    known: Mapping[str, KnownRequest] | None = None,
) -> list[dict[str, Any]]:
    """The documents ``write_results`` renders for ``trackings``, read in the caller's transaction
    (the one that stored what they show, just before its commit: the same state, so the same bytes).
    ``written``: the 271 outcomes (status, record) this transaction wrote last for some of them, as
    they were written: those are not read back (nor their records unsealed and decoded again).
    ``known``: requests of theirs as this transaction left them (``KnownRequest``): not read back
    either, when their 271 outcome is in ``written``."""
    return list(_documents(tx, list(dict.fromkeys(trackings)), written or {}, known or {}))


def _summary_csv(rows: list[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows({k: spreadsheet_safe(v) for k, v in row.items()} for row in rows)
    return buf.getvalue().encode()


def _documents(
    tx: Tx,
    trackings: list[str],
    written: Mapping[str, Outcome271] | None = None,
    heads: Mapping[str, KnownRequest] | None = None,
) -> Iterator[dict[str, Any]]:
    """``result_document`` of each known tracking number, in order; requests and eligibility results
    are read a chunk at a time (two statements per chunk instead of two per request; the second
    left out when ``written`` has every 271 outcome, the first when ``heads`` has every request with
    its 271 outcome written, see ``rendered_results``)."""
    known = written or {}
    given = {t: h for t, h in (heads or {}).items() if h.kind == "270" and t in known}
    for start in range(0, len(trackings), WRITE_CHUNK):
        chunk = trackings[start : start + WRITE_CHUNK]
        reqs: dict[str, RequestRow | KnownRequest] = {}
        reqs.update(tx.requests.by_tracking([t for t in chunk if t not in given]))
        reqs.update((t, given[t]) for t in chunk if t in given)
        wanted = [t for t in chunk if t in reqs and reqs[t].kind == "270" and t not in known]
        eligs = tx.results.eligibility_of(wanted)
        for tracking in chunk:
            req = reqs.get(tracking)
            if req is None:
                continue
            if req.kind == "270":
                elig = eligs.get(tracking)
                outcome = known.get(tracking) or ((elig.status, elig.record) if elig is not None else None)
                yield _eligibility_document(req, outcome)
            else:
                assert isinstance(req, RequestRow)  # noqa: S101 - ``given`` holds 270s only
                yield result_document(tx, req)


_FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula gets a leading apostrophe (OWASP CSV injection).

    Every cell passes here, since partners' values (certification numbers, reasons) and billing
    systems' references all reach the summary, and one formula opened by a clerk is enough.
    """
    if isinstance(value, str) and value.startswith(_FORMULA_LEADS):
        return "'" + value
    return value


def _summary_row(doc: dict[str, Any]) -> dict[str, Any]:
    record = doc.get("authorization") or doc.get("eligibility") or {}
    return {
        **{
            k: doc.get(k)
            for k in ("tracking_number", "client_reference", "kind", "state", "status", "reason")
        },
        "certification_number": record.get("certification_number"),
        "effective_from": record.get("effective_from") or record.get("plan_begin"),
        "effective_to": record.get("effective_to") or record.get("plan_end"),
    }
