"""``tx.results``: the latest 271 (eligibility) and 278 (authorization) outcome per request, the
authorizations' event history, and the operators' reads over them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Table, func, insert, select

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
    inserting,
    keyed_update,
    window,
)
from gateway.store.rows import AuthorizationEvent, AuthorizationRow, EligibilityRow, from_mapping

PENDED = "pended"  # an authorization status (HCR01 A4), not a request state


class ResultsRepo(Repo):
    """Eligibility results and authorizations."""

    def _request_id(self, tracking_number: str) -> int | None:
        stmt = id_by(s.requests, "tracking_number")
        value = self.conn.execute(stmt, {KEY: tracking_number}).scalar_one_or_none()
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
        existing = self.conn.execute(
            by_key(t, "tracking_number", for_update=True), {KEY: tracking_number}
        ).first()
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
            return self.conn.execute(inserting(t), {**values, "created_at": now}).one()
        return self.conn.execute(keyed_update(t), {KEY: existing.id, **values}).one()

    @db
    def get_eligibility(self, tracking_number: str) -> EligibilityRow | None:
        """The latest 271 outcome for a tracking number, or None."""
        t = s.eligibility_results
        row = self.conn.execute(by_key(t, "tracking_number"), {KEY: tracking_number}).first()
        return None if row is None else from_mapping(EligibilityRow, row)

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
        existing = self.conn.execute(
            by_key(t, "tracking_number", for_update=True), {KEY: tracking_number}
        ).first()
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
            self.conn.execute(insert(s.authorization_events).values(**event_values))
        return from_mapping(AuthorizationRow, row)

    @db
    def get_authorization(self, tracking_number: str) -> AuthorizationRow | None:
        """The latest 278 outcome for a tracking number, or None."""
        t = s.authorizations
        row = self.conn.execute(by_key(t, "tracking_number"), {KEY: tracking_number}).first()
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
        return [from_mapping(AuthorizationEvent, r) for r in self.conn.execute(stmt)]

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
        row = self.conn.execute(stmt).first()
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
        return [from_mapping(AuthorizationRow, row) for row in self.conn.execute(stmt)]

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
        return [dict(row._mapping) for row in self.conn.execute(stmt)]
