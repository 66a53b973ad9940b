"""``tx.claims``: pre-certification, claim checks and deadline alerts (stages.precert_gate,
stages.deadlines, ``x12gw claims check``). Members are found through the requests' member hash, never
by member id."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Row, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect

from gateway.errors import StoreError
from gateway.store import schema as s
from gateway.store.repos.base import DEFAULT_LIMIT, HEX64, Repo, check_limit, db
from gateway.store.rows import AuthorizationRow, RequestRow, from_mapping

APPROVED = ("approved", "partially_approved", "modified")  # authorization statuses, not states


class ClaimsRepo(Repo):
    """Authorizations by member and number, and the units claims have used of them."""

    @staticmethod
    def _auth_and_request(row: Row[Any]) -> tuple[AuthorizationRow, RequestRow | None]:
        """Split a joined authorizations+requests row (request columns are labelled ``r_<name>``)."""
        mapping = row._mapping
        auth = from_mapping(AuthorizationRow, row)
        if mapping["r_id"] is None:
            return auth, None
        names = {f.name for f in fields(RequestRow)}
        return auth, RequestRow(**{c.name: mapping[f"r_{c.name}"] for c in s.requests.c if c.name in names})

    @db
    def authorizations_for_member(
        self, member_id_hash: str, *, limit: int = DEFAULT_LIMIT
    ) -> list[tuple[AuthorizationRow, RequestRow]]:
        """The member's 278 outcomes with their requests, newest request first."""
        a, r = s.authorizations, s.requests
        stmt = (
            select(a, *(c.label(f"r_{c.name}") for c in r.c))
            .join(r, a.c.request_id == r.c.id)
            .where(r.c.member_id_hash == member_id_hash, r.c.kind == "278")
            .order_by(r.c.id.desc())
            .limit(check_limit(limit))
        )
        return [(a, r) for a, r in map(self._auth_and_request, self.run(stmt)) if r is not None]

    @db
    def authorizations_by_number(
        self, certification_number: str, *, limit: int = DEFAULT_LIMIT
    ) -> list[tuple[AuthorizationRow, RequestRow | None]]:
        """Authorizations carrying this certification number (HCR02), with their requests, newest first."""
        a, r = s.authorizations, s.requests
        stmt = (
            select(a, *(c.label(f"r_{c.name}") for c in r.c))
            .outerjoin(r, a.c.request_id == r.c.id)
            .where(a.c.certification_number == certification_number)
            .order_by(a.c.id.desc())
            .limit(check_limit(limit))
        )
        return [self._auth_and_request(row) for row in self.run(stmt)]

    @db
    def units_used(
        self, authorization_ids: Iterable[int], *, exclude_claims: Iterable[str] = ()
    ) -> dict[tuple[int, int], Decimal]:
        """Units billed so far per (authorization id, service index), leaving out the claims (hashes)
        being checked again, whose lines are counted afresh."""
        ids = sorted(set(authorization_ids))
        if not ids:
            return {}
        t = s.authorization_units
        conds: list[ColumnElement[bool]] = [t.c.authorization_id.in_(ids)]
        excluded = sorted(set(exclude_claims))
        if excluded:
            conds.append(t.c.claim_hash.not_in(excluded))
        stmt = (
            select(t.c.authorization_id, t.c.service_index, func.sum(t.c.units_thousandths))
            .where(*conds)
            .group_by(t.c.authorization_id, t.c.service_index)
        )
        rows = self.run(stmt)
        return {(int(auth), int(index)): Decimal(int(total)) / 1000 for auth, index, total in rows}

    @db
    def record_units(
        self,
        *,
        authorization_id: int,
        service_index: int,
        claim_hash: str,
        line_number: int,
        units: Decimal,
        procedure_code: str | None = None,
    ) -> bool:
        """Record that a claim line used ``units`` of an authorization; False if that line was recorded
        before (committing a claim twice counts its units once). Logged as a state change."""
        if not HEX64.match(claim_hash):
            raise StoreError("claim_hash must be a 64-hex HMAC digest, not a claim number")
        thousandths = units * 1000
        if units <= 0 or thousandths != thousandths.to_integral_value():
            raise StoreError("units must be positive with at most three decimals")
        t = s.authorization_units
        dialect = postgresql if self.conn.dialect.name == "postgresql" else sqlite_dialect
        values = {
            "authorization_id": authorization_id,
            "service_index": service_index,
            "claim_hash": claim_hash,
            "line_number": line_number,
            "procedure_code": procedure_code,
            "units_thousandths": int(thousandths),
            "created_at": self.now(),
        }
        stmt = (
            dialect.insert(t)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["authorization_id", "claim_hash", "line_number"])
            .returning(t.c.id)
        )
        new_id = self.run(stmt).scalar_one_or_none()
        if new_id is None:
            return False
        units_text = format(units.normalize(), "f")
        detail = {"service_index": service_index, "line": line_number, "units": units_text}
        self.audit.record_change("authorization.units", authorization_id, None, "billed", detail)
        return True

    @db
    def authorizations_expiring(
        self,
        *,
        start: date,
        end: date,
        statuses: Iterable[str] = APPROVED,
        limit: int = DEFAULT_LIMIT,
    ) -> list[AuthorizationRow]:
        """Authorizations in ``statuses`` whose certification ends between ``start`` and ``end``
        (inclusive), soonest first."""
        t = s.authorizations
        where = [t.c.status.in_(list(statuses)), t.c.effective_to >= start, t.c.effective_to <= end]
        return self.listing(t, AuthorizationRow, where=where, order=[t.c.effective_to, t.c.id], limit=limit)
