"""Scenarios of the clearinghouse simulator: what the payer answers, read from TOML.

The file format is documented in :mod:`payersim.simulator` (and shown in ``sample_edi/scenarios/demo.toml``).
This module holds the frozen scenario model, the rule matching (first matching rule wins, its unset
fields fall back to ``[defaults]``) and the translation of an outcome name ("active", "partial", ...)
into the response builders' decisions (:class:`EligibilityAnswer`, :class:`ReviewDecision`). It keeps
no state: certification numbers and references are allocated by the simulator and passed in.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, cast, get_args

from gateway.errors import ConfigError
from transactions.decisions import (
    Benefit,
    Contact,
    EligibilityAnswer,
    LineDecision,
    Reference,
    Rejection,
    ReviewDecision,
)
from transactions.models import (
    Attachment,
    DateRange,
    EligibilityInquiry,
    Procedure,
    ServiceLine,
    ServiceReviewRequest,
)

Eligibility = Literal["active", "inactive", "not_found", "reject_provider", "unable_to_respond"]
Review = Literal[
    "approve",
    "partial",
    "pend",
    "pend_then_approve",
    "deny",
    "modify",
    "cancel",
    "contact_payer",
    "no_action",
    "reject_subscriber",
]
Ack = Literal["accept", "reject", "ta1_reject"]
Kind = Literal["270", "278"]

ELIGIBILITY_OUTCOMES: tuple[str, ...] = get_args(Eligibility)
REVIEW_OUTCOMES: tuple[str, ...] = get_args(Review)
ACK_OUTCOMES: tuple[str, ...] = get_args(Ack)
DEFAULT_AUTH_CODES = ("70551-70553", "72141-72158", "78811-78816")
# Service types a 271 answers "authorization required" for, listing every auth_required code (EB13):
# 4 diagnostic X-ray, 62 MRI/CAT scan (the imaging the default codes are).
IMAGING_SERVICE_TYPES = frozenset({"4", "62"})
MAX_AUTH_BENEFITS = 60  # EBs listing auth-required codes in one 271 (wide ranges are cut here)
_MAX_RANGE = 1000
CERT_DAYS = 90  # a certification without dates of its own runs this long

_OUTCOME_KEYS = ("eligibility", "review", "ack", "delay_seconds", "approve_after_seconds")
_DEFAULT_KEYS = frozenset({*_OUTCOME_KEYS, "auth_required_codes", "reject_duplicates"})
_MATCH_KEYS = ("member_id", "procedure", "kind", "certification_type")
_RULE_KEYS = frozenset({*_MATCH_KEYS, *_OUTCOME_KEYS})


# ------------------------------------------------------------------------------------------ model


@dataclass(frozen=True, slots=True)
class CodeRange:
    """A procedure code or an inclusive range ``low-high`` of codes of the same length.

    Codes are compared as strings of equal length, which orders both CPT (``70551``) and HCPCS
    (``E0100``) codes correctly; a code of another length is never in the range.
    """

    low: str
    high: str

    @classmethod
    def parse(cls, text: str, where: str) -> CodeRange:
        low, _, high = text.strip().upper().partition("-")
        high = high or low
        if not (low.isalnum() and high.isalnum() and len(low) == len(high) and low <= high):
            raise ConfigError(f"scenario {where}: {text!r} is not a code or a LOW-HIGH range of codes")
        return cls(low, high)

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and len(code) == len(self.low) and self.low <= code.upper() <= self.high

    def codes(self) -> Iterator[str]:
        """Every code of the range when its codes are a letter prefix plus a number (else the ends)."""
        prefix = self.low.rstrip("0123456789")
        low_num, high_num = self.low[len(prefix) :], self.high[len(prefix) :]
        if not low_num or not high_num or self.high[: len(prefix)] != prefix:
            yield from dict.fromkeys((self.low, self.high))
            return
        width, first, last = len(low_num), int(low_num), int(high_num)
        for n in range(first, min(last, first + _MAX_RANGE) + 1):
            yield f"{prefix}{n:0{width}d}"

    def __str__(self) -> str:
        return self.low if self.low == self.high else f"{self.low}-{self.high}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happens to one transaction set: its 999 verdict, business answer and timing."""

    eligibility: Eligibility = "active"
    review: Review = "approve"
    ack: Ack = "accept"
    delay_seconds: float = 0.0
    approve_after_seconds: float = 2.0


@dataclass(frozen=True, slots=True)
class Rule:
    """Match keys (all given ones must match) and the outcome fields it overrides (``None``: default)."""

    member_id: str | None = None
    procedure: CodeRange | None = None
    kind: Kind | None = None
    certification_type: str | None = None
    eligibility: Eligibility | None = None
    review: Review | None = None
    ack: Ack | None = None
    delay_seconds: float | None = None
    approve_after_seconds: float | None = None

    def matches(
        self, kind: Kind, member_id: str | None, procedures: tuple[str, ...], cert_type: str | None
    ) -> bool:
        return (
            (self.kind is None or self.kind == kind)
            and (self.member_id is None or self.member_id == member_id)
            and (self.procedure is None or any(code in self.procedure for code in procedures))
            and (self.certification_type is None or self.certification_type == cert_type)
        )

    def apply(self, defaults: Outcome) -> Outcome:
        changes = {k: getattr(self, k) for k in _OUTCOME_KEYS if getattr(self, k) is not None}
        return replace(defaults, **changes)


@dataclass(frozen=True, slots=True)
class Scenario:
    """Defaults, the procedure codes that need authorization, and the rules (first match wins)."""

    defaults: Outcome = field(default_factory=Outcome)
    rules: tuple[Rule, ...] = ()
    auth_required_codes: tuple[CodeRange, ...] = tuple(
        CodeRange.parse(c, "default") for c in DEFAULT_AUTH_CODES
    )
    reject_duplicates: bool = True

    @classmethod
    def from_toml(cls, text: str, source: str = "scenario") -> Scenario:
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML ({exc})") from None
        return cls.from_mapping(doc, source)

    @classmethod
    def load(cls, path: Path) -> Scenario:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"scenario file {path} cannot be read ({exc})") from None
        return cls.from_toml(text, str(path))

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any], source: str = "scenario") -> Scenario:
        _only(doc, frozenset({"defaults", "rules"}), source)
        defaults_doc = _table(doc.get("defaults", {}), f"{source} [defaults]")
        _only(defaults_doc, _DEFAULT_KEYS, f"{source} [defaults]")
        defaults = Outcome(**_outcome_fields(defaults_doc, f"{source} [defaults]"))
        codes = defaults_doc.get("auth_required_codes", list(DEFAULT_AUTH_CODES))
        if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
            raise ConfigError(f"{source} [defaults]: auth_required_codes must be a list of strings")
        rules_doc = doc.get("rules", [])
        if not isinstance(rules_doc, list):
            raise ConfigError(f"{source}: rules must be an array of tables ([[rules]])")
        dup = defaults_doc.get("reject_duplicates", True)
        if not isinstance(dup, bool):
            raise ConfigError(f"{source} [defaults]: reject_duplicates must be true or false")
        return cls(
            defaults,
            tuple(_rule(r, f"{source} rule {i}") for i, r in enumerate(rules_doc, 1)),
            tuple(CodeRange.parse(c, f"{source} auth_required_codes") for c in codes),
            dup,
        )

    def outcome(
        self,
        kind: Kind,
        member_id: str | None,
        procedures: tuple[str, ...] = (),
        certification_type: str | None = None,
    ) -> Outcome:
        """The outcome for one request: the first rule that matches over the defaults."""
        for rule in self.rules:
            if rule.matches(kind, member_id, procedures, certification_type):
                return rule.apply(self.defaults)
        return self.defaults

    def outcome_for(self, request: EligibilityInquiry | ServiceReviewRequest) -> Outcome:
        if isinstance(request, EligibilityInquiry):
            asked = (request.procedure.code,) if request.procedure else ()
            return self.outcome("270", request.subscriber.member_id, asked)
        codes = tuple(line.procedure.code for line in request.lines if line.procedure is not None)
        return self.outcome("278", request.subscriber.member_id, codes, request.certification_type)

    def requires_auth(self, code: str) -> bool:
        return any(code in r for r in self.auth_required_codes)


def _only(doc: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})"
        )


def _table(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table")
    return value


def _choice(doc: Mapping[str, Any], key: str, allowed: tuple[str, ...], where: str) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if value not in allowed:
        raise ConfigError(f"{where}: {key} must be one of {', '.join(allowed)}")
    return str(value)


def _seconds(doc: Mapping[str, Any], key: str, where: str) -> float | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 86400:
        raise ConfigError(f"{where}: {key} must be a number of seconds between 0 and 86400")
    return float(value)


def _outcome_fields(doc: Mapping[str, Any], where: str) -> dict[str, Any]:
    values = {
        "eligibility": _choice(doc, "eligibility", ELIGIBILITY_OUTCOMES, where),
        "review": _choice(doc, "review", REVIEW_OUTCOMES, where),
        "ack": _choice(doc, "ack", ACK_OUTCOMES, where),
        "delay_seconds": _seconds(doc, "delay_seconds", where),
        "approve_after_seconds": _seconds(doc, "approve_after_seconds", where),
    }
    return {k: v for k, v in values.items() if v is not None}


def _rule(value: object, where: str) -> Rule:
    doc = _table(value, where)
    _only(doc, _RULE_KEYS, where)
    for key in ("member_id", "certification_type", "procedure"):
        if key in doc and (not isinstance(doc[key], str) or not doc[key]):
            raise ConfigError(f"{where}: {key} must be a non-empty string")
    kind = _choice(doc, "kind", get_args(Kind), where)
    procedure = doc.get("procedure")
    return Rule(
        member_id=doc.get("member_id"),
        procedure=CodeRange.parse(procedure, where) if procedure else None,
        kind=cast(Kind | None, kind),
        certification_type=doc.get("certification_type"),
        **_outcome_fields(doc, where),
    )


# ------------------------------------------------------------------------------------ eligibility

PLAN = Reference("18", "SIMGOLD01", "SIM GOLD PPO")
PAYER_DESK = Contact("PROVIDER SERVICES", phone="8005550100")


def _auth_benefits(scenario: Scenario, inquiry: EligibilityInquiry) -> list[Benefit]:
    """EB11 answers: for an inquiry by procedure, whether it needs authorization; for imaging service
    types, every auth_required code (EB13) with EB11=Y."""
    if inquiry.procedure is not None:
        if scenario.requires_auth(inquiry.procedure.code):
            return [Benefit.authorization(inquiry.procedure, message="PRIOR AUTHORIZATION REQUIRED")]
        return [Benefit.authorization(inquiry.procedure, required="N")]
    imaging = [st for st in inquiry.service_types if st in IMAGING_SERVICE_TYPES]
    if not imaging:
        return []
    codes = list(dict.fromkeys(c for r in scenario.auth_required_codes for c in r.codes()))
    return [
        Benefit.authorization(
            Procedure(code), service_types=(imaging[0],), message="PRIOR AUTHORIZATION REQUIRED"
        )
        for code in codes[:MAX_AUTH_BENEFITS]
    ]


def eligibility_answer(
    scenario: Scenario, inquiry: EligibilityInquiry, outcome: Eligibility, today: date
) -> EligibilityAnswer:
    """The 271 content for ``outcome``: active coverage with cost shares, inactive, or an AAA."""
    year = DateRange(date(today.year, 1, 1), date(today.year, 12, 31))
    if outcome == "inactive":
        last_year = DateRange(date(today.year - 1, 1, 1), date(today.year - 1, 12, 31))
        return EligibilityAnswer(benefits=(Benefit.inactive(),), plan_dates=last_year)
    if outcome == "not_found":
        return EligibilityAnswer.subscriber_not_found()
    if outcome == "reject_provider":
        return EligibilityAnswer.reject("2100B", "51")
    if outcome == "unable_to_respond":
        return EligibilityAnswer(rejections=(Rejection("2000A", "42", valid_request=True),))
    asked = tuple(Benefit.active(service_types=(st,)) for st in inquiry.service_types if st != "30")
    return EligibilityAnswer(
        benefits=(
            Benefit.active(PLAN.description, insurance_type="PR"),
            *asked,
            Benefit.copay(25, ("98",)),
            Benefit.coinsurance(Decimal(".2"), ("98",)),
            Benefit.deductible(1500),
            Benefit.deductible(640, remaining=True),
            *_auth_benefits(scenario, inquiry),
        ),
        plan=PLAN,
        plan_dates=year,
        payer_contact=PAYER_DESK,
    )


# ---------------------------------------------------------------------------------------- review

PEND_DOCUMENTS = (Attachment("09", "FX"),)
UM_NURSE_LINE = Contact("UM NURSE LINE", phone="8005550111")


def certification_window(req: ServiceReviewRequest, today: date) -> DateRange:
    """The dates a certification covers: the event dates, the admission (days), else from today."""
    if req.event_dates is not None:
        start = req.event_dates.start
        return DateRange(start, req.event_dates.end or start + timedelta(days=CERT_DAYS))
    if req.admission_date is not None:
        start = req.admission_date
        if req.discharge_date is not None:
            return DateRange(start, req.discharge_date)
        return DateRange(start, start + timedelta(days=max((req.days or 1) - 1, 0)))
    return DateRange(today, today + timedelta(days=CERT_DAYS))


def shortened(window: DateRange) -> DateRange:
    """The first half of a window (a modified certification covers less than was asked)."""
    if window.end is None:
        return window
    return DateRange(window.start, window.start + timedelta(days=(window.end - window.start).days // 2))


def _half(value: int) -> int:
    return max(1, value // 2)


def _partial_line(line: ServiceLine) -> LineDecision:
    if line.visits is not None:
        return LineDecision("A6", visits=_half(line.visits))
    return LineDecision("A6", quantity=Decimal(_half(int(line.quantity))))


def _certified(
    _req: ServiceReviewRequest, window: DateRange, cert: str | None, ref: str | None
) -> ReviewDecision:
    return ReviewDecision("A1", cert, admin_reference=ref, effective=window)


def _partial(
    req: ServiceReviewRequest, window: DateRange, cert: str | None, ref: str | None
) -> ReviewDecision:
    lines = tuple(_partial_line(line) if i == 0 else LineDecision("A1") for i, line in enumerate(req.lines))
    days = _half(req.days) if req.days else None
    if days is not None:  # an admission certified for fewer days: the window ends with the last one
        window = DateRange(window.start, window.start + timedelta(days=days - 1))
    return ReviewDecision("A2", cert, admin_reference=ref, effective=window, approved_days=days, lines=lines)


def _modified(
    req: ServiceReviewRequest, window: DateRange, cert: str | None, ref: str | None
) -> ReviewDecision:
    days = _half(req.days) if req.days else None
    return ReviewDecision("A6", cert, admin_reference=ref, effective=shortened(window), approved_days=days)


def _pended(
    _req: ServiceReviewRequest, _window: DateRange, _cert: str | None, ref: str | None
) -> ReviewDecision:
    return ReviewDecision(
        "A4",
        reason="0U",
        admin_reference=ref,
        documentation=PEND_DOCUMENTS,
        message="SEND CLINICAL NOTES TO COMPLETE THE REVIEW",
    )


def _fixed(decision: ReviewDecision) -> _Decide:
    return lambda _req, _window, _cert, _ref: decision


_Decide = Callable[[ServiceReviewRequest, DateRange, str | None, str | None], ReviewDecision]
_DECISIONS: dict[str, _Decide] = {
    "approve": _certified,
    "pend_then_approve": _certified,  # its approval step; the simulator sends "pend" first
    "partial": _partial,
    "modify": _modified,
    "pend": _pended,
    "deny": _fixed(
        ReviewDecision("A3", reason="0F", message="NOT CERTIFIED BASED ON THE INFORMATION SUBMITTED")
    ),
    "cancel": lambda req, _window, _cert, _ref: ReviewDecision("C", req.previous_certification),
    "contact_payer": _fixed(
        ReviewDecision(
            "CT", payer_contact=UM_NURSE_LINE, message="CALL THE UM NURSE LINE TO COMPLETE THIS REVIEW"
        )
    ),
    "no_action": _fixed(ReviewDecision("NA")),
    "reject_subscriber": _fixed(ReviewDecision.reject("2010C", "75")),
}


def review_decision(
    req: ServiceReviewRequest,
    step: Review,
    today: date,
    *,
    certification: str | None = None,
    reference: str | None = None,
) -> ReviewDecision:
    """The 278 response content for one step (``pend_then_approve`` is two steps: pend, approve).

    ``certification`` is the number issued for certifying steps (:func:`certifies`); ``reference``
    the UMO's REF*NT, shared by a pended response and its later approval so the two can be paired.
    """
    return _DECISIONS[step](req, certification_window(req, today), certification, reference)


def certifies(step: Review) -> bool:
    """Whether a step issues a certification number."""
    return step in ("approve", "pend_then_approve", "partial", "modify")
