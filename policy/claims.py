"""Claim-to-authorization matching before billing: for every claim line, find its authorization and
say, in plain language, what would make the payer deny it and how to fix that.

A line's authorization is the one its prior-authorization number names (REF*G1 on the line, else on
the claim); without one (or when no authorization carries that number) it is the member's
authorization that approved the line's procedure. Every candidate is checked and the one with the
fewest mismatches wins (then the most recent). The checks, each a mismatch ``kind``:

================== ==============================================================================
no_authorization   nothing on file, and the payer's rules say the service needs pre-certification
unknown_reference  the claim's prior-authorization number is not on file
member             the authorization found by number belongs to another member
not_approved       the authorization (or this service in it) is not approved: pended, denied ...
certification_number  the claim's number differs from the authorization's (or is missing)
procedure_code     the line's procedure is not among the approved services
modifiers          a modifier the authorization names is missing on the line
before_start       the service date is before the certification start date
after_end          the service date is after the certification end date
units              units billed plus units already billed exceed the approved quantity
provider           the authorization names a servicing provider whose NPI is not on the claim
================== ==============================================================================

A line without an authorization passes when the rules say the service needs none, and is a warning
when nobody knows. Units already billed come from the store (other claims) plus the lines checked
before in the same run, so two lines of one file cannot together exceed the approved quantity.

Pure: authorizations arrive as stored JSON records; the shell fetches them, passes ``as_of`` (today)
and records the returned consumption only when asked to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from policy.precert import PrecertDecision
from transactions.claims837 import Claim, ClaimLine

Outcome = Literal["ok", "fail", "warn"]
CERTIFIED = frozenset({"approved", "partially_approved", "modified"})
KINDS = (
    "no_authorization",
    "unknown_reference",
    "member",
    "not_approved",
    "certification_number",
    "procedure_code",
    "modifiers",
    "before_start",
    "after_end",
    "units",
    "provider",
)
_STATUS_FIX = {
    "pended": "wait for the payer's decision before billing",
    "denied": "appeal with clinical records, or do not bill the service",
    "cancelled": "it was cancelled: request a new authorization",
    "contact_payer": "call the payer, who asked to be contacted",
    "rejected": "the request was rejected: correct it and send it again",
    "no_action_required": "the payer reviewed nothing: confirm with the payer that none is needed",
    "not_required": "the gateway answered that none is needed: bill without a prior-authorization number",
}


# ----------------------------------------------------------------------------------------- models


@dataclass(frozen=True, slots=True)
class AuthorizedService:
    """One service line of an authorization, as decided by the payer."""

    index: int
    procedure_code: str | None
    modifiers: tuple[str, ...]
    quantity: Decimal | None
    status: str
    certification_number: str | None
    start: date | None
    end: date | None


@dataclass(frozen=True, slots=True)
class Authorization:
    """What matching needs of one stored authorization. ``member_id`` is PHI: it is compared, never shown."""

    id: int
    tracking_number: str
    status: str
    certification_number: str | None
    start: date | None
    end: date | None
    provider_npi: str | None
    services: tuple[AuthorizedService, ...]
    member_id: str | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """How messages refer to it: the certification number, else the tracking number."""
        return self.certification_number or self.tracking_number

    def numbers(self) -> frozenset[str]:
        """Every certification number it carries (event and lines)."""
        found = {self.certification_number, *(s.certification_number for s in self.services)}
        return frozenset(n for n in found if n)


@dataclass(frozen=True, slots=True)
class Mismatch:
    kind: str
    message: str  # what is wrong and how to fix it; dates and codes, never names or member ids


@dataclass(frozen=True, slots=True)
class Consumption:
    """Units a line uses up on one authorization service (``service_index`` -1: the whole event)."""

    authorization_id: int
    service_index: int
    units: Decimal


@dataclass(frozen=True, slots=True)
class LineResult:
    claim_id: str
    line_number: int
    procedure_code: str
    service_date: date
    outcome: Outcome
    mismatches: tuple[Mismatch, ...] = ()
    note: str | None = None
    authorization: str | None = None  # tracking number
    certification_number: str | None = None
    consumption: Consumption | None = None


@dataclass(frozen=True)
class Candidates:
    """Authorizations the shell fetched: by certification number, and by member id (in memory only)."""

    by_number: Mapping[str, Sequence[Authorization]] = field(default_factory=dict)
    by_member: Mapping[str, Sequence[Authorization]] = field(default_factory=dict)


UnitsUsed = Mapping[tuple[int, int], Decimal]  # (authorization id, service index) -> units billed
PrecertLookup = Callable[[Claim, ClaimLine], PrecertDecision | None]


# ------------------------------------------------------------------------------------- from record


def _date(value: Any) -> date | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def authorization_from_record(
    auth_id: int,
    tracking_number: str,
    record: Mapping[str, Any],
    request_payload: Mapping[str, Any] | None = None,
) -> Authorization:
    """An :class:`Authorization` from a stored record (``x12gw map --json`` form) and its request.

    The certified period of a service is its own DTP*007 when given, else the event's; the servicing
    provider is the response's 2010F NPI, else the one the request named.
    """
    start, end = _date(record.get("effective_from")), _date(record.get("effective_to"))
    services = []
    for index, s in enumerate(record.get("services") or ()):
        if not isinstance(s, Mapping):
            continue
        services.append(
            AuthorizedService(
                index=index,
                procedure_code=(s.get("procedure_code") or None),
                modifiers=tuple(m for m in s.get("modifiers") or () if m),
                quantity=_decimal(s.get("quantity")),
                status=str(s.get("status") or record.get("status") or "unknown"),
                certification_number=s.get("certification_number") or record.get("certification_number"),
                start=_date(s.get("effective_from")) or start,
                end=_date(s.get("effective_to")) or end,
            )
        )
    npi = (
        record.get("servicing_provider_id") if record.get("servicing_provider_id_qualifier") == "XX" else None
    )
    if not npi and request_payload:
        provider = request_payload.get("servicing_provider") or {}
        npi = provider.get("npi") if isinstance(provider, Mapping) else None
    member = record.get("member_id")
    if not member and request_payload:
        subscriber = request_payload.get("subscriber") or {}
        member = subscriber.get("member_id") if isinstance(subscriber, Mapping) else None
    return Authorization(
        id=auth_id,
        tracking_number=tracking_number,
        status=str(record.get("status") or "unknown"),
        certification_number=record.get("certification_number") or None,
        start=start,
        end=end,
        provider_npi=npi or None,
        services=tuple(services),
        member_id=member or None,
    )


# ------------------------------------------------------------------------------------------ checks


def _norm(value: str | None) -> str:
    return (value or "").strip().upper()


@dataclass(frozen=True, slots=True)
class _Line:
    """One line with everything the checks read."""

    claim: Claim
    line: ClaimLine
    reference: str | None
    first: date
    last: date

    @property
    def code(self) -> str:
        return self.line.procedure.code.upper()


def _service_for(auth: Authorization, ln: _Line) -> AuthorizedService | None:
    """The authorization's service for this line: same code, preferably certified and covering the date."""
    same = [s for s in auth.services if _norm(s.procedure_code) == ln.code]

    def score(s: AuthorizedService) -> tuple[bool, bool, bool]:
        covers = (s.start is None or s.start <= ln.first) and (s.end is None or ln.last <= s.end)
        mods = set(s.modifiers) <= set(ln.line.procedure.modifiers)
        return (s.status in CERTIFIED, covers, mods)

    return max(same, key=score) if same else None


def _status(auth: Authorization, svc: AuthorizedService | None) -> list[Mismatch]:
    if auth.status not in CERTIFIED:
        fix = _STATUS_FIX.get(auth.status, "call the payer about its status")
        return [
            Mismatch("not_approved", f"authorization {auth.name} is {auth.status.replace('_', ' ')}: {fix}")
        ]
    if svc is not None and svc.status not in CERTIFIED:
        return [
            Mismatch(
                "not_approved",
                f"authorization {auth.name} did not approve this service ({svc.status.replace('_', ' ')}), "
                "although it approved others: do not bill it as authorized, or appeal that line",
            )
        ]
    return []


def _number(auth: Authorization, svc: AuthorizedService | None, ln: _Line) -> list[Mismatch]:
    expected = (svc.certification_number if svc else None) or auth.certification_number
    if not expected or _norm(ln.reference) == _norm(expected):
        return []
    if not ln.reference:
        msg = f"the claim carries no prior-authorization number: add REF*G1 {expected} to the claim or line"
    else:
        msg = (
            f"prior-authorization number {ln.reference} on the claim differs from the authorization's "
            f"{expected}: correct REF*G1"
        )
    return [Mismatch("certification_number", msg)]


def _procedure(auth: Authorization, svc: AuthorizedService | None, ln: _Line) -> list[Mismatch]:
    if not auth.services:
        return []
    if svc is None:
        approved = ", ".join(
            dict.fromkeys(
                s.procedure_code for s in auth.services if s.procedure_code and s.status in CERTIFIED
            )
        )
        return [
            Mismatch(
                "procedure_code",
                f"procedure {ln.code} is not among the services authorization {auth.name} approved "
                f"({approved or 'none'}): correct the code, or ask the payer for a revision",
            )
        ]
    missing = [m for m in svc.modifiers if m not in ln.line.procedure.modifiers]
    if missing:
        return [
            Mismatch(
                "modifiers",
                f"modifier {', '.join(missing)} that authorization {auth.name} approved for {ln.code} is "
                "missing on the line: add it to SV101",
            )
        ]
    return []


def _dates(auth: Authorization, svc: AuthorizedService | None, ln: _Line) -> list[Mismatch]:
    start = svc.start if svc else auth.start
    end = svc.end if svc else auth.end
    out = []
    if start is not None and ln.first < start:
        out.append(
            Mismatch(
                "before_start",
                f"service date {ln.first} is before the certification start date {start}: correct the "
                "date, or ask the payer for a retro-authorization",
            )
        )
    if end is not None and ln.last > end:
        out.append(
            Mismatch(
                "after_end",
                f"service date {ln.last} is after the certification end date {end}: request an extension",
            )
        )
    return out


def _units(auth: Authorization, svc: AuthorizedService | None, ln: _Line, used: Decimal) -> list[Mismatch]:
    if svc is None or svc.quantity is None:
        return []
    billed = ln.line.units
    if billed + used <= svc.quantity:
        return []
    left = max(svc.quantity - used, Decimal(0))
    already = f" plus {_num(used)} already billed" if used else ""
    return [
        Mismatch(
            "units",
            f"{_num(billed)} unit(s) billed{already} exceed the {_num(svc.quantity)} approved by "
            f"authorization {auth.name}: bill at most {_num(left)}, or ask the payer for more units",
        )
    ]


def _provider(auth: Authorization, ln: _Line) -> list[Mismatch]:
    if not auth.provider_npi:
        return []
    npis = ln.claim.provider_npis(ln.line)
    if auth.provider_npi in npis:
        return []
    shown = ", ".join(npis) or "none"
    return [
        Mismatch(
            "provider",
            f"authorization {auth.name} names servicing provider NPI {auth.provider_npi}, the claim has "
            f"{shown}: bill under the authorized provider, or ask the payer to change the authorization",
        )
    ]


def _num(value: Decimal) -> str:
    return format(value.normalize(), "f")


@dataclass(frozen=True, slots=True)
class _Verdict:
    auth: Authorization
    service: AuthorizedService | None
    mismatches: tuple[Mismatch, ...]

    def key(self) -> tuple[int, bool, int]:
        return (-len(self.mismatches), self.service is not None, self.auth.id)


def _evaluate(auth: Authorization, ln: _Line, used: UnitsUsed, by_reference: bool) -> _Verdict:
    svc = _service_for(auth, ln)
    out: list[Mismatch] = []
    if by_reference and auth.member_id and _norm(auth.member_id) != _norm(ln.claim.member_id):
        out.append(
            Mismatch(
                "member",
                f"authorization {auth.name} was issued for another member: check the prior-authorization "
                "number and the member id on the claim",
            )
        )
    already = used.get((auth.id, svc.index if svc else -1), Decimal(0))
    out += _status(auth, svc)
    out += _number(auth, svc, ln)
    out += _procedure(auth, svc, ln)
    out += _dates(auth, svc, ln)
    out += _units(auth, svc, ln, already)
    out += _provider(auth, ln)
    return _Verdict(auth, svc, tuple(out))


# --------------------------------------------------------------------------------------- matching


def _by_member(candidates: Candidates, ln: _Line) -> list[Authorization]:
    """The member's authorizations that mention the line's procedure (or have no service lines)."""
    member = _norm(ln.claim.member_id)
    found = [a for key, auths in candidates.by_member.items() if _norm(key) == member for a in auths]
    return [
        a
        for a in found
        if a.status != "not_required"
        and (not a.services or any(_norm(s.procedure_code) == ln.code for s in a.services))
    ]


def _without_authorization(
    ln: _Line, decision: PrecertDecision | None, as_of: date
) -> tuple[Outcome, tuple[Mismatch, ...], str | None]:
    """A line no authorization matches: a failure, a pass or a warning, by the number and the rules."""
    what = f"no authorization on file for {ln.code} on {ln.first}"
    if ln.reference:
        message = (
            f"no authorization with number {ln.reference} is on file (nor one for this member, procedure "
            f"{ln.code} and date): check the number; if it came by phone or portal, confirm it with the payer"
        )
        return "fail", (Mismatch("unknown_reference", message),), None
    if decision is None or decision.decision == "unknown":
        why = f" ({decision.reason})" if decision else ""
        return "warn", (), f"{what}, and no rule says whether it needs one{why}: check the payer's list"
    if decision.decision == "not_required":
        return "ok", (), f"no authorization needed: {decision.reason}"
    retro = decision.retro_deadline
    if retro is None:
        fix = "request an authorization before billing"
    elif retro >= as_of:
        fix = f"request a retro-authorization by {retro}"
    else:
        fix = (
            f"the retro-authorization window closed on {retro}: expect a denial; appeal with clinical records"
        )
    message = f"{what}, and it needs one ({decision.reason}): {fix}"
    return "fail", (Mismatch("no_authorization", message),), None


def check_line(
    claim: Claim,
    line: ClaimLine,
    candidates: Candidates,
    used: UnitsUsed,
    *,
    as_of: date,
    precert: PrecertLookup | None = None,
) -> LineResult:
    """The verdict for one claim line (see the module docstring for the checks)."""
    first = line.service_date.start
    ln = _Line(claim, line, claim.line_reference(line), first, line.service_date.end or first)
    pool: list[tuple[Authorization, bool]] = []
    if ln.reference:
        wanted = _norm(ln.reference)
        pool = [
            (a, True) for key, auths in candidates.by_number.items() if _norm(key) == wanted for a in auths
        ]
    if not pool:
        pool = [(a, False) for a in _by_member(candidates, ln)]
    base = {
        "claim_id": claim.claim_id,
        "line_number": line.number,
        "procedure_code": line.procedure.code,
        "service_date": first,
    }
    if not pool:
        outcome, mismatches, note = _without_authorization(
            ln, precert(claim, line) if precert else None, as_of
        )
        return LineResult(outcome=outcome, mismatches=mismatches, note=note, **base)  # type: ignore[arg-type]
    verdicts = {v.auth.id: v for v in (_evaluate(a, ln, used, by_ref) for a, by_ref in pool)}
    best = max(verdicts.values(), key=_Verdict.key)
    consumption = Consumption(best.auth.id, best.service.index if best.service else -1, line.units)
    return LineResult(
        outcome="fail" if best.mismatches else "ok",
        mismatches=best.mismatches,
        authorization=best.auth.tracking_number,
        certification_number=(best.service.certification_number if best.service else None)
        or best.auth.certification_number,
        consumption=None if best.mismatches else consumption,
        **base,  # type: ignore[arg-type]
    )


def check_claims(
    claims: Sequence[Claim],
    candidates: Candidates,
    used: UnitsUsed,
    *,
    as_of: date,
    precert: PrecertLookup | None = None,
) -> list[LineResult]:
    """Every line of every claim, in order; lines that pass add their units for the lines after them."""
    tally: dict[tuple[int, int], Decimal] = dict(used)
    results = []
    for claim in claims:
        for line in claim.lines:
            result = check_line(claim, line, candidates, tally, as_of=as_of, precert=precert)
            c = result.consumption
            if c is not None:
                key = (c.authorization_id, c.service_index)
                tally[key] = tally.get(key, Decimal(0)) + c.units
            results.append(result)
    return results
