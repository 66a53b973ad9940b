"""``x12gw purge``: remove data older than its retention period, in batches, never work in flight.

What goes (each kind with its own period from ``[retention]``, or one ``--older-than`` for all):

* rows: finished requests (an allow-list of final states, so a new in-flight state can never be purged
  by mistake) with their results, authorization history and events; finished files with their
  envelopes, sets, trace numbers and quarantine entries, once no kept request or result refers to them;
  PHI-audit entries;
* payloads: raw files in ``folders.payloads``, and payloads kept in the store (``payload_blobs``,
  by the time they were stored), that no kept ``files`` row refers to;
* archive, quarantine, results: files in those folders (by modification time).

Each batch is one transaction, so an interrupted purge leaves a consistent store and simply goes on
when run again. The inbox and work folders are never touched. The purge is logged and recorded in the
audit table (``phi_audit``, action ``purge``) with its counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, and_, delete, exists, select, update

from gateway.lifecycle import FINISHED, Entity
from gateway.runtime.config import GatewayConfig
from gateway.runtime.fsutil import IGNORED_SUFFIXES
from gateway.store import Store
from gateway.store import schema as s

REQUEST_DONE = FINISHED[Entity.REQUEST]
FILE_DONE = FINISHED[Entity.FILE]
DEFAULT_BATCH = 500


@dataclass(frozen=True)
class Cutoffs:
    """The moment before which each kind of data goes (None: keep it)."""

    rows: datetime | None
    payloads: datetime | None
    archive: datetime | None
    quarantine: datetime | None
    results: datetime | None

    @classmethod
    def of(cls, config: GatewayConfig, now: datetime, older_than: timedelta | None) -> Cutoffs:
        r = config.retention

        def cut(period: timedelta | None) -> datetime | None:
            chosen = older_than if older_than is not None else period
            return None if chosen is None else now - chosen

        return cls(cut(r.rows), cut(r.payloads), cut(r.archive), cut(r.quarantine), cut(r.results))


def _ids(conn: Connection, stmt: Any) -> list[int]:
    return [int(v) for v in conn.execute(stmt).scalars()]


def _delete_requests(conn: Connection, ids: list[int], counts: Counter[str]) -> None:
    a, e, u = s.authorizations, s.authorization_events, s.authorization_units
    auth_ids = _ids(conn, select(a.c.id).where(a.c.request_id.in_(ids)))
    if auth_ids:
        counts["authorization_units"] += conn.execute(
            delete(u).where(u.c.authorization_id.in_(auth_ids))
        ).rowcount
        counts["authorization_events"] += conn.execute(
            delete(e).where(e.c.authorization_id.in_(auth_ids))
        ).rowcount
        counts["authorizations"] += conn.execute(delete(a).where(a.c.id.in_(auth_ids))).rowcount
    el = s.eligibility_results
    counts["eligibility_results"] += conn.execute(delete(el).where(el.c.request_id.in_(ids))).rowcount
    ts = s.transaction_sets
    conn.execute(update(ts).where(ts.c.request_id.in_(ids)).values(request_id=None))
    _delete_history(conn, Entity.REQUEST, ids, counts)
    ar, trackings = s.api_requests, select(s.requests.c.tracking_number).where(s.requests.c.id.in_(ids))
    counts["api_requests"] += conn.execute(delete(ar).where(ar.c.tracking_number.in_(trackings))).rowcount
    counts["requests"] += conn.execute(delete(s.requests).where(s.requests.c.id.in_(ids))).rowcount


def _delete_history(conn: Connection, entity: Entity, ids: list[int], counts: Counter[str]) -> None:
    sc = s.state_changes
    gone = conn.execute(delete(sc).where(sc.c.entity_type == entity, sc.c.entity_id.in_(ids))).rowcount
    counts["state_changes"] += gone


def _purgeable_files(conn: Connection, cutoff: datetime, batch: int) -> list[int]:
    """Finished files older than ``cutoff`` that no kept request, result or event refers to."""
    f, ic, ts = s.files, s.interchanges, s.transaction_sets
    sets_of_file = select(ts.c.id).join(ic, ts.c.interchange_id == ic.c.id).where(ic.c.file_id == f.c.id)
    referenced = or_referenced(sets_of_file)
    stmt = (
        select(f.c.id)
        .where(
            f.c.state.in_(sorted(FILE_DONE)),
            f.c.updated_at < cutoff,
            ~exists().where(s.requests.c.source_file_id == f.c.id),
            ~referenced,
            ~exists().where(and_(ts.c.request_id.is_not(None), ts.c.id.in_(sets_of_file))),
        )
        .order_by(f.c.id)
        .limit(batch)
    )
    return _ids(conn, stmt)


def or_referenced(set_ids: Any) -> Any:
    """Whether a kept result or authorization event names one of ``set_ids`` as its source."""
    el, a, e = s.eligibility_results, s.authorizations, s.authorization_events
    return (
        exists().where(el.c.source_set_id.in_(set_ids))
        | exists().where(a.c.source_set_id.in_(set_ids))
        | exists().where(e.c.source_set_id.in_(set_ids))
    )


def _delete_files(conn: Connection, ids: list[int], counts: Counter[str]) -> None:
    ic, g, ts, tn = s.interchanges, s.functional_groups, s.transaction_sets, s.trace_numbers
    ic_ids = _ids(conn, select(ic.c.id).where(ic.c.file_id.in_(ids)))
    if ic_ids:
        set_ids = _ids(conn, select(ts.c.id).where(ts.c.interchange_id.in_(ic_ids)))
        if set_ids:
            counts["trace_numbers"] += conn.execute(
                delete(tn).where(tn.c.transaction_set_id.in_(set_ids))
            ).rowcount
            _delete_history(conn, Entity.TRANSACTION_SET, set_ids, counts)
            counts["transaction_sets"] += conn.execute(delete(ts).where(ts.c.id.in_(set_ids))).rowcount
        counts["functional_groups"] += conn.execute(delete(g).where(g.c.interchange_id.in_(ic_ids))).rowcount
        counts["interchanges"] += conn.execute(delete(ic).where(ic.c.id.in_(ic_ids))).rowcount
    q = s.quarantine
    counts["quarantine_rows"] += conn.execute(delete(q).where(q.c.file_id.in_(ids))).rowcount
    _delete_history(conn, Entity.FILE, ids, counts)
    rf = s.remote_files  # the remote versions a purged file came from go with it
    counts["remote_files"] += conn.execute(delete(rf).where(rf.c.file_id.in_(ids))).rowcount
    counts["files"] += conn.execute(delete(s.files).where(s.files.c.id.in_(ids))).rowcount


def purge_rows(store: Store, cutoff: datetime, *, dry_run: bool, batch: int = DEFAULT_BATCH) -> Counter[str]:
    """Delete (or with ``dry_run`` count) finished rows older than ``cutoff``, one batch a transaction."""
    counts: Counter[str] = Counter()
    r = s.requests
    requests_stmt = (
        select(r.c.id)
        .where(r.c.state.in_(sorted(REQUEST_DONE)), r.c.updated_at < cutoff)
        .order_by(r.c.id)
        .limit(batch)
    )
    if dry_run:
        with store.engine.connect() as conn:
            counts["requests"] = len(_ids(conn, requests_stmt.limit(None)))
            counts["files"] = len(_purgeable_files(conn, cutoff, 10**9))
            pa = s.phi_audit
            counts["phi_audit"] = len(_ids(conn, select(pa.c.id).where(pa.c.at < cutoff)))
        return counts
    for stmt, remove in ((requests_stmt, _delete_requests), (None, _delete_files)):
        while True:
            with store.engine.begin() as conn:
                ids = _ids(conn, stmt) if stmt is not None else _purgeable_files(conn, cutoff, batch)
                if not ids:
                    break
                remove(conn, ids, counts)
    pa = s.phi_audit
    while True:
        with store.engine.begin() as conn:
            ids = _ids(conn, select(pa.c.id).where(pa.c.at < cutoff).order_by(pa.c.id).limit(batch))
            if not ids:
                break
            counts["phi_audit"] += conn.execute(delete(pa).where(pa.c.id.in_(ids))).rowcount
    return counts


def _old_files(folder: Path, cutoff: datetime) -> Iterable[Path]:
    if not folder.is_dir():
        return
    limit = cutoff.timestamp()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.name.endswith(IGNORED_SUFFIXES) and path.stat().st_mtime < limit:
            yield path


def purge_folder(
    folder: Path, cutoff: datetime, *, dry_run: bool, keep: Callable[[Path], bool] = lambda _p: False
) -> int:
    """Remove files older than ``cutoff`` under ``folder`` (unless ``keep`` says otherwise)."""
    count = 0
    for path in _old_files(folder, cutoff):
        if keep(path):
            continue
        if not dry_run:
            path.unlink(missing_ok=True)
        count += 1
    return count


def payload_in_use(store: Store) -> Callable[[Path], bool]:
    """Whether a kept ``files`` row still refers to the payload file at a path (named by its SHA-256)."""

    def check(path: Path) -> bool:
        with store.engine.connect() as conn:
            found = conn.execute(select(s.files.c.id).where(s.files.c.sha256 == path.name).limit(1)).first()
        return found is not None

    return check


def purge_blobs(store: Store, cutoff: datetime, *, dry_run: bool, batch: int = DEFAULT_BATCH) -> int:
    """Delete (or count) payloads kept in the store before ``cutoff`` that no ``files`` row names, as
    ``purge_folder`` does with payload files, nor the payload a companion travels with (a CORE
    envelope lives as long as its answer's row); one batch a transaction, the check in the delete
    itself (a row naming the payload committed meanwhile keeps it)."""
    b, f = s.payload_blobs, s.files
    named = exists().where(f.c.sha256 == b.c.sha256)
    carried = exists().where(f.c.sha256 == b.c.companion_of)
    free = (b.c.created_at < cutoff) & ~named & ~carried
    if dry_run:
        with store.engine.connect() as conn:
            return len(_ids(conn, select(b.c.id).where(free)))
    count = 0
    while True:
        with store.engine.begin() as conn:
            ids = _ids(conn, select(b.c.id).where(free).order_by(b.c.id).limit(batch))
            if not ids:
                return count
            count += conn.execute(delete(b).where(b.c.id.in_(ids), free)).rowcount


def purge(
    config: GatewayConfig, store: Store, cutoffs: Cutoffs, *, dry_run: bool, batch: int
) -> dict[str, int]:
    """Every kind of data past its cutoff; rows first, so payloads they referenced become free."""
    counts: Counter[str] = Counter()
    if cutoffs.rows is not None:
        counts.update(purge_rows(store, cutoffs.rows, dry_run=dry_run, batch=batch))
    folders = config.folders
    if cutoffs.payloads is not None:
        counts["payload_files"] = purge_folder(
            folders.payloads, cutoffs.payloads, dry_run=dry_run, keep=payload_in_use(store)
        )
        counts["payload_blobs"] = purge_blobs(store, cutoffs.payloads, dry_run=dry_run, batch=batch)
    for kind, folder in (
        ("archive", folders.archive),
        ("quarantine", folders.quarantine),
        ("results", folders.outbox),
    ):
        cutoff = getattr(cutoffs, kind)
        if cutoff is not None:
            counts[f"{kind}_files"] = purge_folder(folder, cutoff, dry_run=dry_run)
    return dict(counts)
