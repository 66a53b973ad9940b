"""Pre-certification rules per payer: which services need a prior authorization, how late a
retro-authorization may still be asked for, and how long the payer may take to decide.

Rules are data, one TOML document (documented example: ``config/precert-rules.toml``)::

    [code_lists]
    advanced_imaging = ["70551-70553", "72141-72158"]

    [default]                         # applies to every payer without its own table
    retro_authorization_days = 0      # a service may be authorized up to N days after it was rendered
    decision_time_standard = "7d"     # how long the payer may take: "Nd" calendar days or "Nh" hours
    decision_time_expedited = "72h"
    otherwise = "unknown"             # answer when no rule matches: required | not_required | unknown

    [[default.rules]]                 # checked in order; the first rule that matches decides
    name = "advanced imaging"
    required = true
    codes = ["@advanced_imaging", "78811-78816", "K*"]   # exact codes, LOW-HIGH ranges, PREFIX*, @list
    service_types = ["62"]            # EQ01/UM03 service type codes
    categories = ["AR"]               # 278 UM01 request category (AR = admission review)
    places_of_service = ["22"]        # CMS place-of-service codes

    [payers.ACME01]                   # keys not given here are taken from [default]
    extends_default = true            # after the payer's own rules, try the default rules

Every criterion a rule gives must match (codes AND place of service ...); inside one criterion any
listed value matches. Evidence from the payer wins over configuration: when the latest 271 for the
patient answers EB11 = Y or N for the procedure (or, failing that, the service type), that answer is
used and named as the reason. EB11 = U says nothing and is ignored. A procedure-specific answer beats
a service-type answer; when answers disagree, "required" wins (asking costs less than a denial).

Pure: the caller passes the rules text, the evidence and any dates; nothing here reads files or clocks.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal

from mappings.records import AuthorizationRequirement
from transactions.errors import X12GatewayError
from transactions.models import ServiceReviewRequest

Decision = Literal["required", "not_required", "unknown"]
Basis = Literal["271", "rule", "otherwise"]
DECISIONS: tuple[Decision, ...] = ("required", "not_required", "unknown")
EXPEDITED_LEVELS: frozenset[str] = frozenset({"U", "03"})  # UM06: U urgent, 03 emergency
_DURATION = re.compile(r"^\s*(\d{1,5})\s*([dh])\s*$")
_CODE = re.compile(r"^[A-Z0-9]{1,8}$")
_RANGE = re.compile(r"^([A-Z0-9]{1,8})\s*-\s*([A-Z0-9]{1,8})$")
_PREFIX = re.compile(r"^([A-Z0-9]{1,7})\*$")
_CODE_SHORT = re.compile(r"^[A-Z0-9]{1,3}$")  # service type, place of service, category codes
_TOP_KEYS = frozenset({"default", "payers", "code_lists"})
_SET_KEYS = frozenset(
    {
        "label",
        "retro_authorization_days",
        "decision_time_standard",
        "decision_time_expedited",
        "otherwise",
        "extends_default",
        "rules",
    }
)
_RULE_KEYS = frozenset(
    {"name", "required", "codes", "service_types", "categories", "places_of_service", "note"}
)


class PrecertRuleError(X12GatewayError):
    """A rules document is malformed; the message lists every problem with its key path."""


# ------------------------------------------------------------------------------------------- model


@dataclass(frozen=True, slots=True)
class CodeSet:
    """Procedure codes as exact codes, inclusive ranges of same-shaped codes, and prefixes.

    A range compares codes of equal length position by position (``E0100-E8002`` holds ``E0601``,
    ``0001T-0999T`` holds ``0042T``), which is how CPT and HCPCS level II code ranges are published.
    """

    exact: frozenset[str] = frozenset()
    ranges: tuple[tuple[str, str], ...] = ()
    prefixes: tuple[str, ...] = ()

    def __contains__(self, code: object) -> bool:
        if not isinstance(code, str) or not code:
            return False
        c = code.strip().upper()
        if c in self.exact or any(c.startswith(p) for p in self.prefixes):
            return True
        return any(len(c) == len(low) and low <= c <= high for low, high in self.ranges)

    def __bool__(self) -> bool:
        return bool(self.exact or self.ranges or self.prefixes)


@dataclass(frozen=True, slots=True)
class Service:
    """What is being asked about: a procedure, service type, request category, place, date."""

    code: str | None = None
    modifiers: tuple[str, ...] = ()
    service_type: str | None = None
    category: str | None = None
    place_of_service: str | None = None
    service_date: date | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """One line of a payer's list: when every given criterion matches, ``required`` decides."""

    name: str
    required: bool
    codes: CodeSet = field(default_factory=CodeSet)
    service_types: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    places_of_service: frozenset[str] = frozenset()
    note: str | None = None

    def matches(self, s: Service) -> bool:
        """All criteria the rule gives hold for ``s`` (a criterion ``s`` cannot answer does not hold)."""
        checks = (
            (bool(self.codes), s.code is not None and s.code in self.codes),
            (bool(self.service_types), s.service_type in self.service_types),
            (bool(self.categories), s.category in self.categories),
            (bool(self.places_of_service), s.place_of_service in self.places_of_service),
        )
        return all(ok for given, ok in checks if given)

    @property
    def decision(self) -> Decision:
        return "required" if self.required else "not_required"


@dataclass(frozen=True, slots=True)
class RuleSet:
    """One payer's rules (or the default set) with its retro window and decision times."""

    name: str
    rules: tuple[Rule, ...] = ()
    label: str | None = None
    otherwise: Decision = "unknown"
    retro_authorization_days: int = 0
    decision_time_standard: timedelta = timedelta(days=7)
    decision_time_expedited: timedelta = timedelta(hours=72)

    def decision_time(self, expedited: bool) -> timedelta:
        return self.decision_time_expedited if expedited else self.decision_time_standard


@dataclass(frozen=True)
class PrecertRules:
    """Every payer's rule set by payer id (upper-case), and the default for payers without one."""

    default: RuleSet = field(default_factory=lambda: RuleSet("default"))
    payers: Mapping[str, RuleSet] = field(default_factory=dict)

    def for_payer(self, payer_id: str | None) -> RuleSet:
        return self.payers.get((payer_id or "").strip().upper(), self.default)


EMPTY_RULES = PrecertRules()


@dataclass(frozen=True, slots=True)
class Evidence:
    """EB11 answers of one stored 271; ``source`` names it without PHI (tracking number, date)."""

    source: str
    requirements: tuple[AuthorizationRequirement, ...]


@dataclass(frozen=True, slots=True)
class PrecertDecision:
    """The answer for one service and why (``reason`` is plain language and free of PHI)."""

    decision: Decision
    basis: Basis
    reason: str
    rule_set: str
    rule: str | None = None
    evidence: str | None = None
    retro_authorization_days: int = 0
    retro_deadline: date | None = None  # last day a retro-authorization may be asked for

    @property
    def label(self) -> str:
        return self.decision.replace("_", " ")


@dataclass(frozen=True, slots=True)
class RequestDecision:
    """A 278 request's answer: one decision per service line and the combined one."""

    decision: Decision
    reason: str
    lines: tuple[PrecertDecision, ...]


# ------------------------------------------------------------------------------------------ parsing


def parse_rules(text: str, source: str = "pre-certification rules") -> PrecertRules:
    """Rules from TOML text (every problem is reported at once, under its key path)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PrecertRuleError(f"{source}: not valid TOML: {exc}") from None
    return rules_from_data(data, source)


def rules_from_data(data: Mapping[str, Any], source: str = "pre-certification rules") -> PrecertRules:
    """Rules from an already parsed TOML document."""
    p = _Problems()
    p.unknown(data, _TOP_KEYS, "")
    lists = _code_lists(data.get("code_lists", {}), p)
    default = _rule_set(data.get("default", {}), "default", None, lists, p)
    payers: dict[str, RuleSet] = {}
    raw_payers = data.get("payers", {})
    if not isinstance(raw_payers, Mapping):
        p.add("payers", "must be a table of payer tables ([payers.PAYERID])")
        raw_payers = {}
    for payer_id, table in raw_payers.items():
        key = str(payer_id).strip().upper()
        if key in payers:
            p.add(f"payers.{payer_id}", "is given twice (payer ids are compared without case)")
        payers[key] = _rule_set(table, key, default, lists, p)
    if p.items:
        listing = "\n".join(f"  - {item}" for item in p.items)
        raise PrecertRuleError(f"{source} has {len(p.items)} problem(s):\n{listing}")
    return PrecertRules(default, payers)


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")

    def unknown(self, table: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
        for key in table:
            if key not in allowed:
                self.add(f"{where}.{key}" if where else str(key), "unknown key")


def _code_lists(raw: Any, p: _Problems) -> dict[str, list[str]]:
    if not isinstance(raw, Mapping):
        p.add("code_lists", "must be a table of named code lists")
        return {}
    out: dict[str, list[str]] = {}
    for name, codes in raw.items():
        if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
            p.add(f"code_lists.{name}", "must be a list of strings")
            continue
        out[str(name)] = codes
    return out


def _duration(value: Any, where: str, default: timedelta, p: _Problems) -> timedelta:
    if value is None:
        return default
    m = _DURATION.match(value) if isinstance(value, str) else None
    if m is None or int(m.group(1)) == 0:
        p.add(where, 'must be a duration such as "7d" (calendar days) or "72h" (hours), more than 0')
        return default
    number = int(m.group(1))
    return timedelta(days=number) if m.group(2) == "d" else timedelta(hours=number)


def _rule_set(
    raw: Any, name: str, base: RuleSet | None, lists: Mapping[str, list[str]], p: _Problems
) -> RuleSet:
    where = "default" if base is None else f"payers.{name}"
    if not isinstance(raw, Mapping):
        p.add(where, "must be a table")
        return base or RuleSet(name)
    p.unknown(raw, _SET_KEYS, where)
    inherit = base or RuleSet("default")
    otherwise = raw.get("otherwise", inherit.otherwise)
    if otherwise not in DECISIONS:
        p.add(f"{where}.otherwise", "must be one of: required, not_required, unknown")
        otherwise = inherit.otherwise
    retro = raw.get("retro_authorization_days", inherit.retro_authorization_days)
    if isinstance(retro, bool) or not isinstance(retro, int) or not 0 <= retro <= 3650:
        p.add(f"{where}.retro_authorization_days", "must be a whole number of days from 0 to 3650")
        retro = inherit.retro_authorization_days
    extends = raw.get("extends_default", False)
    if not isinstance(extends, bool) or (extends and base is None):
        p.add(f"{where}.extends_default", "must be true or false, and only in a [payers.X] table")
        extends = False
    rules = _rules(raw.get("rules", []), f"{where}.rules", lists, p)
    if extends and base is not None:
        rules += base.rules
    label = raw.get("label")
    return RuleSet(
        name=name,
        rules=rules,
        label=label if isinstance(label, str) else None,
        otherwise=otherwise,
        retro_authorization_days=retro,
        decision_time_standard=_duration(
            raw.get("decision_time_standard"),
            f"{where}.decision_time_standard",
            inherit.decision_time_standard,
            p,
        ),
        decision_time_expedited=_duration(
            raw.get("decision_time_expedited"),
            f"{where}.decision_time_expedited",
            inherit.decision_time_expedited,
            p,
        ),
    )


def _rules(raw: Any, where: str, lists: Mapping[str, list[str]], p: _Problems) -> tuple[Rule, ...]:
    if not isinstance(raw, list):
        p.add(where, "must be an array of tables, written [[...rules]]")
        return ()
    out = []
    for index, item in enumerate(raw):
        rule = _rule(item, f"{where}[{index}]", lists, p)
        if rule is not None:
            out.append(rule)
    return tuple(out)


def _rule(raw: Any, where: str, lists: Mapping[str, list[str]], p: _Problems) -> Rule | None:
    if not isinstance(raw, Mapping):
        p.add(where, "must be a table")
        return None
    p.unknown(raw, _RULE_KEYS, where)
    required = raw.get("required")
    if not isinstance(required, bool):
        p.add(f"{where}.required", "is required: true (needs pre-certification) or false (does not)")
        return None
    codes = _code_set(raw.get("codes", []), f"{where}.codes", lists, p)
    short = {
        key: _short_codes(raw.get(key, []), f"{where}.{key}", p)
        for key in ("service_types", "categories", "places_of_service")
    }
    if not codes and not any(short.values()):
        p.add(where, "gives no criterion (codes, service_types, categories or places_of_service)")
        return None
    name = raw.get("name")
    note = raw.get("note")
    return Rule(
        name=name if isinstance(name, str) and name else where,
        required=required,
        codes=codes,
        service_types=short["service_types"],
        categories=short["categories"],
        places_of_service=short["places_of_service"],
        note=note if isinstance(note, str) else None,
    )


def _short_codes(raw: Any, where: str, p: _Problems) -> frozenset[str]:
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        p.add(where, "must be a list of strings")
        return frozenset()
    values = [v.strip().upper() for v in raw]
    for v in values:
        if not _CODE_SHORT.match(v):
            p.add(where, f"{v!r} is not a 1-3 character code")
    return frozenset(values)


def _code_set(raw: Any, where: str, lists: Mapping[str, list[str]], p: _Problems) -> CodeSet:
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        p.add(where, "must be a list of strings")
        return CodeSet()
    exact: set[str] = set()
    ranges: list[tuple[str, str]] = []
    prefixes: list[str] = []
    for entry in _expand(raw, where, lists, p):
        text = entry.strip().upper()
        if m := _RANGE.match(text):
            low, high = m.group(1), m.group(2)
            if len(low) != len(high) or low > high:
                p.add(where, f"range {text!r} needs two codes of the same length, low first")
            else:
                ranges.append((low, high))
        elif m := _PREFIX.match(text):
            prefixes.append(m.group(1))
        elif _CODE.match(text):
            exact.add(text)
        else:
            p.add(where, f"{text!r} is not a code, a LOW-HIGH range, a PREFIX* or an @list")
    return CodeSet(frozenset(exact), tuple(ranges), tuple(prefixes))


def _expand(raw: Iterable[str], where: str, lists: Mapping[str, list[str]], p: _Problems) -> list[str]:
    out: list[str] = []
    for entry in raw:
        if entry.startswith("@"):
            named = lists.get(entry[1:])
            if named is None:
                p.add(where, f"{entry!r} names no list in [code_lists]")
            else:
                out += named
        else:
            out.append(entry)
    return out


# ------------------------------------------------------------------------------------------ deciding


def evidence_from_record(record: Mapping[str, Any], source: str) -> Evidence:
    """The EB11 answers of a stored eligibility result (its JSON form, as the store keeps it)."""
    reqs = []
    for item in record.get("authorization_requirements") or ():
        if not isinstance(item, Mapping) or item.get("required") not in ("Y", "N", "U"):
            continue
        reqs.append(
            AuthorizationRequirement(
                required=str(item["required"]),
                service_types=tuple(str(s) for s in item.get("service_types") or ()),
                procedure_code=item.get("procedure_code") or None,
                in_network=item.get("in_network") or None,
            )
        )
    return Evidence(source, tuple(reqs))


def _evidence_answer(service: Service, evidence: Sequence[Evidence]) -> tuple[str, str, str] | None:
    """(Y|N, what it was about, source) from the most specific EB11 answer, or None."""
    by_code: list[tuple[str, str]] = []
    by_type: list[tuple[str, str]] = []
    code = (service.code or "").upper()
    for ev in evidence:
        for req in ev.requirements:
            if req.required not in ("Y", "N"):
                continue
            if req.procedure_code:
                if code and req.procedure_code.upper() == code:
                    by_code.append((req.required, ev.source))
            elif service.service_type and service.service_type in req.service_types:
                by_type.append((req.required, ev.source))
    for answers, about in ((by_code, f"procedure {code}"), (by_type, f"service type {service.service_type}")):
        if answers:
            chosen = next((a for a in answers if a[0] == "Y"), answers[0])
            return chosen[0], about, chosen[1]
    return None


def _rule_answer(rule_set: RuleSet, service: Service) -> tuple[Decision, Basis, str, str | None]:
    """(decision, basis, reason, rule name) from the first matching rule, else the set's ``otherwise``."""
    where = "default rules" if rule_set.name == "default" else f"rules for payer {rule_set.name}"
    rule = next((r for r in rule_set.rules if r.matches(service)), None)
    if rule is None:
        reason = f"{where}: no rule matches; the set's answer is {rule_set.otherwise.replace('_', ' ')}"
        return rule_set.otherwise, "otherwise", reason, None
    note = f" ({rule.note})" if rule.note else ""
    reason = f"{where}: {rule.name!r} -> {rule.decision.replace('_', ' ')}{note}"
    return rule.decision, "rule", reason, rule.name


def decide(
    rules: PrecertRules, payer_id: str | None, service: Service, evidence: Sequence[Evidence] = ()
) -> PrecertDecision:
    """Whether ``service`` needs pre-certification with ``payer_id``: 271 evidence, then rules."""
    rule_set = rules.for_payer(payer_id)
    answer = _evidence_answer(service, evidence)
    rule: str | None = None
    source: str | None = None
    if answer is not None:
        flag, about, source = answer
        decision: Decision = "required" if flag == "Y" else "not_required"
        says = "authorization required" if flag == "Y" else "no authorization required"
        basis: Basis = "271"
        reason = f"the payer's 271 ({source}) says {says} (EB11 {flag}) for {about}"
    else:
        decision, basis, reason, rule = _rule_answer(rule_set, service)
    deadline = None
    if decision == "required" and service.service_date is not None:
        deadline = service.service_date + timedelta(days=rule_set.retro_authorization_days)
    return PrecertDecision(
        decision=decision,
        basis=basis,
        reason=reason,
        rule_set=rule_set.name,
        rule=rule,
        evidence=source,
        retro_authorization_days=rule_set.retro_authorization_days,
        retro_deadline=deadline,
    )


def request_services(req: ServiceReviewRequest) -> tuple[Service, ...]:
    """The services of a 278 request: one per line (or one for the event when it has no lines)."""
    pos = req.facility_code if req.facility_code_qualifier == "B" else None
    event_date = req.event_dates.start if req.event_dates else req.admission_date
    common = Service(service_type=req.service_type, category=req.request_category, place_of_service=pos)
    if not req.lines:
        return (replace(common, service_date=event_date),)
    out = []
    for line in req.lines:
        when = line.service_date.start if line.service_date else event_date
        proc = line.procedure
        out.append(
            replace(
                common,
                code=proc.code if proc else None,
                modifiers=proc.modifiers if proc else (),
                service_date=when,
            )
        )
    return tuple(out)


def decide_request(
    rules: PrecertRules, req: ServiceReviewRequest, evidence: Sequence[Evidence] = ()
) -> RequestDecision:
    """Every line's decision; the request needs none only when no line needs one or may need one."""
    lines = tuple(decide(rules, req.payer.id, s, evidence) for s in request_services(req))
    wanted: Decision
    for wanted in ("required", "unknown"):
        hit = next((i for i, d in enumerate(lines) if d.decision == wanted), None)
        if hit is not None:
            return RequestDecision(wanted, f"line {hit + 1}: {lines[hit].reason}", lines)
    reasons = list(dict.fromkeys(d.reason for d in lines))
    return RequestDecision("not_required", "; ".join(reasons), lines)


def answer_locally(decision: RequestDecision, req: ServiceReviewRequest) -> bool:
    """Whether the gateway may answer "not required" instead of sending the 278.

    Only initial requests (UM02 I): a revision, extension, renewal or cancel concerns an authorization
    the payer already holds, so it always goes to the payer.
    """
    return decision.decision == "not_required" and req.certification_type == "I"


def is_expedited(level_of_service: str | None, levels: Iterable[str] = EXPEDITED_LEVELS) -> bool:
    """UM06 urgent (U) or emergency (03) asks for an expedited decision."""
    return level_of_service is not None and level_of_service.strip().upper() in set(levels)


def decision_due(submitted: datetime, rule_set: RuleSet, *, expedited: bool) -> datetime:
    """When the payer's decision is due for a request submitted at ``submitted``."""
    return submitted + rule_set.decision_time(expedited)
