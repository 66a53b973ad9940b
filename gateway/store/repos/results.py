"""``tx.results``: the latest 271 (eligibility) and 278 (authorization) outcome per request, the
authorizations' event history, and the operators' reads over them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, Table, bindparam, func, insert, select

from gateway.store import schema as s
from gateway.store.repos.base import (
    DEFAULT_LIMIT,
    KEY,
    Repo,
    by_key,
    check_limit,
    db,
    equal,
    id_by,
    insert_ids,
    inserting,
    keyed_update,
    keyed_update_many,
    locked_many,
    prebuilt,
    unlocked_many,
    window,
)
from gateway.store.rows import AuthorizationEvent, AuthorizationRow, EligibilityRow, from_mapping

PENDED = "pended"  # an authorization status (HCR01 A4), not a request state


@dataclass(frozen=True)
class EligibilityWrite:
    """One request's new 271 outcome for ``upsert_eligibility_many`` (``upsert_eligibility``'s
    arguments, with the id and status of the row it replaces, as read in the same transaction, or
    None for a request's first outcome)."""

    tracking_number: str
    request_id: int
    status: str
    record: Mapping[str, Any] | str  # or its stored form, sealed before the transaction (``sealed_doc``)
    effective_from: date | None
    effective_to: date | None
    existing_id: int | None
    existing_status: str | None


# executemany: no ids wanted back
_INSERT_RESULTS = prebuilt(("insert_many", "eligibility_results"), lambda: insert(s.eligibility_results))


def _id_by_tracking(t: Table) -> Select[Any]:
    """The ids of rows by their (unique) tracking numbers."""
    return prebuilt(
        ("ids_by_tracking", t.name),
        lambda: select(t.c.id, t.c.tracking_number).where(
            t.c.tracking_number.in_(bindparam("keys", expanding=True))
        ),
    )


class ResultsRepo(Repo):
    """Eligibility results and authorizations."""

    def _request_id(self, tracking_number: str) -> int | None:
        stmt = id_by(s.requests, "tracking_number")
        value = self.run(stmt, {KEY: tracking_number}).scalar_one_or_none()
        return None if value is None else int(value)

    @db
    def upsert_eligibility(
        self,
        *,
        tracking_number: str,
        status: str,
        record: Mapping[str, Any],
        source_set_id: int | None = None,
        request_id: int | None = None,
        effective_from: date | None = None,
        effective_to: date | None = None,
    ) -> EligibilityRow:
        """Store the latest 271 outcome for a tracking number; a status change is logged as 'eligibility'.
        ``request_id``: the request's row id when the caller holds it (saves looking it up)."""
        t = s.eligibility_results
        existing = self.run(by_key(t, "tracking_number", for_update=True), {KEY: tracking_number}).first()
        now = self.now()
        values = {
            "status": status,
            "record": dict(record),
            "source_set_id": source_set_id,
            "effective_from": effective_from,
            "effective_to": effective_to,
            "updated_at": now,
        }
        row = self._write(t, existing, tracking_number, values, now, request_id)
        old = None if existing is None else existing.status
        if old != status or existing is None:
            self.audit.record_change("eligibility", row.id, old, status, {"source_set_id": source_set_id})
        return from_mapping(EligibilityRow, row)

    def _write(  # noqa: PLR0917 - the two upserts' shared tail
        self,
        t: Table,
        existing: Row[Any] | None,
        tracking_number: str,
        values: dict[str, Any],
        now: datetime,
        request_id: int | None,
    ) -> Row[Any]:
        """Insert the first outcome of a request, or update the one row it already has. ``request_id``:
        the request's row id when the caller holds it (looked up by tracking number otherwise)."""
        if existing is None:
            if request_id is None:
                request_id = self._request_id(tracking_number)
            values |= {"tracking_number": tracking_number, "request_id": request_id}
            return self.run(inserting(t), {**values, "created_at": now}).one()
        return self.run(keyed_update(t), {KEY: existing.id, **values}).one()

    @db
    def get_eligibility(self, tracking_number: str) -> EligibilityRow | None:
        """The latest 271 outcome for a tracking number, or None."""
        t = s.eligibility_results
        row = self.run(by_key(t, "tracking_number"), {KEY: tracking_number}).first()
        return None if row is None else from_mapping(EligibilityRow, row)

    @db
    def eligibility_of(
        self, tracking_numbers: Sequence[str], *, for_update: bool = False
    ) -> dict[str, EligibilityRow]:
        """The latest 271 outcomes of these tracking numbers (those that have one) in one statement;
        ``for_update``: locked until the transaction ends (PostgreSQL), as ``upsert_eligibility`` reads."""
        if not tracking_numbers:
            return {}
        t = s.eligibility_results
        stmt = locked_many(t, "tracking_number") if for_update else unlocked_many(t, "tracking_number")
        rows = self.run(stmt, {"keys": list(dict.fromkeys(tracking_numbers))})
        return {r.tracking_number: from_mapping(EligibilityRow, r) for r in rows}

    @db
    def upsert_eligibility_many(
        self, writes: Sequence[EligibilityWrite]
    ) -> list[tuple[int, str | None, str]]:
        """``upsert_eligibility`` for many tracking numbers (each once), whose current outcome the caller
        read with ``eligibility_of(..., for_update=True)`` in this transaction: one INSERT and one UPDATE
        (executemany). Returns, in the order given, each write's (row id, old status, new status); the
        caller logs the 'eligibility' changes, so that they keep their place among its own log rows."""
        now = self.now()
        t = s.eligibility_results
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for w in writes:
            values = {
                "status": w.status,
                "record": w.record if isinstance(w.record, str) else dict(w.record),
                "source_set_id": None,
                "effective_from": w.effective_from,
                "effective_to": w.effective_to,
                "updated_at": now,
            }
            if w.existing_id is None:
                inserts.append(
                    values
                    | {"tracking_number": w.tracking_number, "request_id": w.request_id, "created_at": now}
                )
            else:
                updates.append({KEY: w.existing_id, **values})
        new_ids: dict[str, int] = {}
        if len(inserts) == 1:  # one row (a real-time answer): its id from RETURNING, no read back
            new_ids = {inserts[0]["tracking_number"]: insert_ids(self.conn, t, inserts)[0]}
        elif inserts:  # executemany, then the ids by the unique tracking number: two statements on
            # SQLite too, where INSERT .. RETURNING in parameter order goes one row at a time
            self.run(_INSERT_RESULTS, inserts)
            stmt = _id_by_tracking(t)
            keys = [v["tracking_number"] for v in inserts]
            new_ids = {r.tracking_number: int(r.id) for r in self.run(stmt, {"keys": keys})}
        if updates:
            self.run(keyed_update_many(t, tuple(k for k in updates[0] if k != KEY)), updates)
        return [
            (new_ids[w.tracking_number], None, w.status)
            if w.existing_id is None
            else (w.existing_id, w.existing_status, w.status)
            for w in writes
        ]

    @db
    def upsert_authorization(
        self,
        *,
        tracking_number: str,
        status: str,
        record: Mapping[str, Any],
        certification_number: str | None = None,
        source_set_id: int | None = None,
        request_id: int | None = None,
        effective_from: date | None = None,
        effective_to: date | None = None,
    ) -> AuthorizationRow:
        """Store the latest 278 outcome; a new status or certification number adds an authorization event.

        A later response that leaves out the certification number or the dates keeps the ones already
        known (a repeated or pended 278 after an approval does not erase HCR02 or the approved period).
        """
        t = s.authorizations
        existing = self.run(by_key(t, "tracking_number", for_update=True), {KEY: tracking_number}).first()
        now = self.now()

        def keep(new: Any, column: str) -> Any:
            return new if new is not None or existing is None else existing._mapping[column]

        cert = keep(certification_number, "certification_number")
        values = {
            "status": status,
            "certification_number": cert,
            "record": dict(record),
            "source_set_id": source_set_id,
            "effective_from": keep(effective_from, "effective_from"),
            "effective_to": keep(effective_to, "effective_to"),
            "updated_at": now,
        }
        row = self._write(t, existing, tracking_number, values, now, request_id)
        if existing is None or (existing.status, existing.certification_number) != (status, cert):
            event_values = {
                "authorization_id": row.id,
                "old_status": None if existing is None else existing.status,
                "new_status": status,
                "certification_number": cert,
                "source_set_id": source_set_id,
                "at": now,
            }
            self.run(insert(s.authorization_events).values(**event_values))
        return from_mapping(AuthorizationRow, row)

    @db
    def get_authorization(self, tracking_number: str) -> AuthorizationRow | None:
        """The latest 278 outcome for a tracking number, or None."""
        t = s.authorizations
        row = self.run(by_key(t, "tracking_number"), {KEY: tracking_number}).first()
        return None if row is None else from_mapping(AuthorizationRow, row)

    @db
    def find_authorizations(
        self,
        *,
        certification_number: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[AuthorizationRow]:
        """Authorizations by certification number, status and last update time; newest first."""
        t = s.authorizations
        where = window(t.c.updated_at, since, until)
        where += equal((t.c.certification_number, certification_number), (t.c.status, status))
        order = [t.c.updated_at.desc(), t.c.id.desc()]
        return self.listing(t, AuthorizationRow, where=where, order=order, limit=limit)

    @db
    def authorization_history(self, authorization_id: int) -> list[AuthorizationEvent]:
        """Every status/certification change of one authorization, oldest first."""
        t = s.authorization_events
        stmt = select(t).where(t.c.authorization_id == authorization_id).order_by(t.c.id)
        return [from_mapping(AuthorizationEvent, r) for r in self.run(stmt)]

    @db
    def latest_eligibility_for_member(
        self, member_id_hash: str, *, payer_id: str | None = None
    ) -> EligibilityRow | None:
        """The most recent 271 outcome for the member (optionally from one payer), or None."""
        e, r = s.eligibility_results, s.requests
        conds = [r.c.member_id_hash == member_id_hash, r.c.kind == "270"]
        if payer_id is not None:
            conds.append(func.upper(r.c.payer_id) == payer_id.strip().upper())
        stmt = (
            select(e)
            .join(r, e.c.request_id == r.c.id)
            .where(*conds)
            .order_by(e.c.updated_at.desc(), e.c.id.desc())
            .limit(1)
        )
        row = self.run(stmt).first()
        return None if row is None else from_mapping(EligibilityRow, row)

    @db
    def page_authorizations(
        self,
        *,
        status: str | None = None,
        payer_id: str | None = None,
        expiring_from: date | None = None,
        expiring_until: date | None = None,
        pended_before: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[AuthorizationRow]:
        """Authorizations by status, payer (via the request), end date window (``expiring_from <=
        effective_to <= expiring_until``) and, with ``pended_before``, pended ones whose latest event is
        older than that; most recently updated first."""
        a, r, e = s.authorizations, s.requests, s.authorization_events
        conds: list[ColumnElement[bool]] = []
        if status is not None:
            conds.append(a.c.status == status)
        if payer_id is not None:
            payer_requests = select(r.c.id).where(func.upper(r.c.payer_id) == payer_id.strip().upper())
            conds.append(a.c.request_id.in_(payer_requests))
        if expiring_from is not None:
            conds.append(a.c.effective_to >= expiring_from)
        if expiring_until is not None:
            conds.append(a.c.effective_to <= expiring_until)
        if pended_before is not None:
            latest = select(func.max(e.c.at)).where(e.c.authorization_id == a.c.id).scalar_subquery()
            conds.extend((a.c.status == PENDED, latest < pended_before))
        stmt = (
            select(a).where(*conds).order_by(a.c.updated_at.desc(), a.c.id.desc()).limit(check_limit(limit))
        )
        return [from_mapping(AuthorizationRow, row) for row in self.run(stmt)]

    @db
    def count_authorizations(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Authorizations counted by current status (last updated in the window)."""
        t = s.authorizations
        stmt = (
            select(t.c.status, func.count().label("count"))
            .where(*window(t.c.updated_at, since, until))
            .group_by(t.c.status)
        )
        return [dict(row._mapping) for row in self.run(stmt)]
