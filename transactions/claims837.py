"""Professional claims (837P, 005010X222A1) and their JSON form, read into the few fields that claim
to authorization matching needs.

An 837P is validated first (``transactions.validation`` with pyx12's map, ``keep_placed=True``); this
module then walks the placed segments: 2010AA billing provider NPI, 2010BA subscriber member id,
2010BB payer id, 2300 CLM (claim id, place of service CLM05-1), REF*G1 prior authorization and 2310B
rendering provider at claim level, 2310C service facility, and per 2400 line SV1 (procedure,
modifiers, units, place of service SV105), DTP*472 service date, REF*G1 and 2420A rendering provider.

The JSON form (``x12gw claims check FILE.json``) is one claim object, a list, or
``{"claims": [...]}`` with the fields of :class:`Claim` and :class:`ClaimLine`::

    {"claim_id": "PCN-1001", "payer_id": "ACME01", "member_id": "ZZM100000001",
     "billing_npi": "1234567893", "rendering_npi": null, "place_of_service": "22",
     "prior_authorization": "SIM000001",
     "lines": [{"number": 1, "procedure": {"code": "72148", "modifiers": []}, "units": 1,
                "service_date": {"start": "2026-12-05"}, "prior_authorization": null}]}
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from transactions.common import parse_dtp
from transactions.errors import RequestError
from transactions.jsonform import from_dict
from transactions.models import DateRange, Procedure
from transactions.placed import Placed
from transactions.segment import Segment


@dataclass(frozen=True, slots=True)
class ClaimLine:
    """One 2400 service line: what was done, how much, when, and the line's own references."""

    number: int
    procedure: Procedure
    service_date: DateRange
    units: Decimal = Decimal(1)
    unit: str = "UN"
    place_of_service: str | None = None
    prior_authorization: str | None = None
    rendering_npi: str | None = None
    charge: Decimal | None = None

    def __post_init__(self) -> None:
        if self.units <= 0:
            raise RequestError("must be positive", field="units")


@dataclass(frozen=True, slots=True)
class Claim:
    """One 2300 claim with the subscriber and payer it is billed for. ``member_id`` is PHI."""

    claim_id: str
    member_id: str
    lines: tuple[ClaimLine, ...]
    payer_id: str | None = None
    billing_npi: str | None = None
    rendering_npi: str | None = None
    facility_npi: str | None = None
    place_of_service: str | None = None
    prior_authorization: str | None = None

    def __post_init__(self) -> None:
        if not self.claim_id:
            raise RequestError("required", field="claim_id")
        if not self.member_id:
            raise RequestError("required", field="member_id")
        if not self.lines:
            raise RequestError("a claim needs at least one service line", field="lines")

    def line_place(self, line: ClaimLine) -> str | None:
        """SV105 when the line gives one, else the claim's CLM05-1."""
        return line.place_of_service or self.place_of_service

    def line_reference(self, line: ClaimLine) -> str | None:
        """The prior-authorization number for a line: its own REF*G1, else the claim's."""
        return line.prior_authorization or self.prior_authorization

    def provider_npis(self, line: ClaimLine) -> tuple[str, ...]:
        """Every NPI that may be the servicing provider of a line, most specific first."""
        npis = (line.rendering_npi, self.rendering_npi, self.facility_npi, self.billing_npi)
        return tuple(dict.fromkeys(n for n in npis if n))


# --------------------------------------------------------------------------------------------- 837P


@dataclass
class _Open:
    """The claim being assembled while walking the placed segments."""

    claim_id: str
    member_id: str
    payer_id: str | None
    billing_npi: str | None
    place_of_service: str | None
    prior_authorization: str | None = None
    rendering_npi: str | None = None
    facility_npi: str | None = None
    lines: list[ClaimLine] | None = None

    def close(self) -> Claim:
        return Claim(
            claim_id=self.claim_id,
            member_id=self.member_id,
            lines=tuple(self.lines or ()),
            payer_id=self.payer_id,
            billing_npi=self.billing_npi,
            rendering_npi=self.rendering_npi,
            facility_npi=self.facility_npi,
            place_of_service=self.place_of_service,
            prior_authorization=self.prior_authorization,
        )


def _decimal(text: str, what: str) -> Decimal | None:
    if not text:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        raise RequestError("not a number", field=what) from None


def _npi(nm1: Segment) -> str | None:
    """NM109 when NM108 says it is an NPI (XX)."""
    return (nm1.get(9) or None) if nm1.get(8) == "XX" else None


def _sv1(p: Placed, where: str) -> dict[str, Any]:
    """The fields of an SV1: procedure (SV101), charge, unit, units and place of service."""
    sv1 = p.segment
    comp = sv1.composite(1)
    try:
        procedure = Procedure(
            code=comp[1] if len(comp) > 1 else "", modifiers=tuple(m for m in comp[2:6] if m)
        )
    except RequestError as exc:
        raise RequestError(exc.reason, field=f"{where} SV101 {exc.field}") from None
    return {
        "procedure": procedure,
        "charge": _decimal(sv1.get(2), f"{where} SV102"),
        "unit": sv1.get(3) or "UN",
        "units": _decimal(sv1.get(4), f"{where} SV104") or Decimal(1),
        "place_of_service": sv1.get(5) or None,
    }


class _Walk:
    """State of the walk over one 837P: the current subscriber, claim and line."""

    def __init__(self) -> None:
        self.claims: list[Claim] = []
        self.billing: str | None = None
        self.member: str | None = None
        self.payer: str | None = None
        self.claim: _Open | None = None
        self.line: dict[str, Any] | None = None

    def close_line(self) -> None:
        if self.claim is None or self.line is None:
            return
        line, self.line = self.line, None
        where = line.pop("where")
        if "procedure" not in line:
            raise RequestError("service line has no SV1", field=where)
        if line.get("service_date") is None:
            raise RequestError("service line has no DTP*472 service date", field=where)
        try:
            built = ClaimLine(**line)
        except RequestError as exc:
            raise RequestError(exc.reason, field=f"{where} {exc.field}") from None
        self.claim.lines = [*(self.claim.lines or []), built]

    def close_claim(self) -> None:
        self.close_line()
        if self.claim is not None:
            claim, self.claim = self.claim, None
            try:
                self.claims.append(claim.close())
            except RequestError as exc:
                raise RequestError(exc.reason, field=f"CLM {claim.claim_id} {exc.field}") from None

    def claim_segment(self, p: Placed, loop: str) -> None:
        seg, claim = p.segment, self.claim
        if claim is None:
            return
        if seg.tag == "REF" and seg.get(1) == "G1" and loop == "2300":
            claim.prior_authorization = seg.get(2) or None
        elif seg.tag == "NM1" and loop == "2310B":
            claim.rendering_npi = _npi(seg)
        elif seg.tag == "NM1" and loop == "2310C":
            claim.facility_npi = _npi(seg)
        elif seg.tag == "LX":
            self.close_line()
            number = seg.get(1)
            self.line = {
                "number": int(number) if number.isascii() and number.isdigit() and len(number) <= 6 else 0,
                "where": f"CLM {claim.claim_id} LX {number}",
            }
        elif self.line is not None:
            self.line_segment(p, loop)

    def line_segment(self, p: Placed, loop: str) -> None:
        seg, line = p.segment, self.line
        if line is None:
            return
        if seg.tag == "SV1":
            line.update(_sv1(p, line["where"]))
        elif seg.tag == "DTP" and seg.get(1) == "472" and loop == "2400":
            line["service_date"] = parse_dtp(seg)
        elif seg.tag == "REF" and seg.get(1) == "G1" and loop == "2400":
            line["prior_authorization"] = seg.get(2) or None
        elif seg.tag == "NM1" and loop == "2420A":
            line["rendering_npi"] = _npi(seg)

    def feed(self, p: Placed) -> None:
        seg, loop = p.segment, (p.loops[-1] if p.loops else "")
        if seg.tag == "HL" and seg.get(3) in ("20", "22"):
            self.close_claim()
        elif seg.tag == "NM1" and loop == "2010AA":
            self.billing = _npi(seg)
        elif seg.tag == "NM1" and loop == "2010BA":
            self.member = seg.get(9) or None
        elif seg.tag == "NM1" and loop == "2010BB":
            self.payer = seg.get(9) or None
        elif seg.tag == "CLM":
            self.close_claim()
            self.claim = _Open(
                claim_id=seg.get(1),
                member_id=self.member or "",
                payer_id=self.payer,
                billing_npi=self.billing,
                place_of_service=seg.get(5, 1) or None,
            )
        else:
            self.claim_segment(p, loop)


def read_837p(placed: Sequence[Placed]) -> list[Claim]:
    """The claims of one validated 837P transaction set (its placed segments, ST to SE).

    RequestError names the CLM and LX (never a value) when a line cannot be read, e.g. without DTP*472.
    """
    walk = _Walk()
    for p in placed:
        walk.feed(p)
    walk.close_claim()
    return walk.claims


# --------------------------------------------------------------------------------------------- JSON


def claim_from_obj(obj: Any, path: str = "") -> Claim:
    """One claim from its JSON object (unknown keys are refused; errors name the field path)."""
    return from_dict(Claim, obj, path)


def parse_claims_document(text: str | bytes) -> list[Claim]:
    """Every claim of a JSON document: one object, a list, or ``{"claims": [...]}``."""
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise RequestError(f"not valid JSON{where}", field="document") from None
    if isinstance(doc, dict) and "claims" in doc:
        doc = doc["claims"]
    if isinstance(doc, list):
        return [claim_from_obj(item, f"claims[{i}]") for i, item in enumerate(doc)]
    return [claim_from_obj(doc)]
