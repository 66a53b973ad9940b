"""What billing staff act on: eligibility results (from 271s) and authorization records (from 278
responses). Frozen dataclasses; ``transactions.jsonform.to_dict`` gives their JSON form (ISO dates).

Identity fields (names, member ids, birth dates) are kept as data because the billing system needs
them; they are PHI, so the gateway masks them whenever a record is shown in logs or listings.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from datetime import date
from decimal import Decimal
from typing import Any, TypeVar

C = TypeVar("C")


def _slot_init(cls: type[C]) -> type[C]:
    """Give a frozen, slotted dataclass an ``__init__`` with the same signature that fills each slot
    through its descriptor. Mapping makes several records per response set, and the generated
    ``__init__`` of a frozen dataclass (``object.__setattr__`` per field, up to 45 fields here) costs
    about twice as much (``transactions.placed.Placed`` does the same by hand). The code is generated
    from the fields, as ``dataclasses`` generates its own; tests pin the two to the same behaviour."""
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]  # a dataclass, by construction
    space: dict[str, Any] = {f"_set_{n}": cls.__dict__[n].__set__ for n in names}
    params = []
    for f in fields(cls):  # type: ignore[arg-type]
        if f.default_factory is not MISSING:
            raise TypeError(f"{cls.__name__}.{f.name}: default factories are not supported")
        if f.default is MISSING:
            params.append(f.name)
        else:
            space[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
    body = "".join(f"\n    _set_{n}(self, {n})" for n in names)
    exec(f"def __init__(self, {', '.join(params)}) -> None:{body}", space)  # noqa: S102 - our own fields
    init = space["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


@_slot_init
@dataclass(frozen=True, slots=True)
class ControlRef:
    """Where a response came from: ISA13, GS06 and ST02 of its transaction set."""

    interchange: str
    group: str
    transaction_set: str


@_slot_init
@dataclass(frozen=True, slots=True)
class Rejection:
    """An AAA: the request (or part of it) could not be processed, and what to do about it."""

    level: str | None  # loop the AAA sits in (2000A, 2100C, 2000E ...)
    reason_code: str | None
    reason: str | None
    follow_up_code: str | None
    follow_up: str | None
    valid_request: bool | None


@_slot_init
@dataclass(frozen=True, slots=True)
class BenefitEntity:
    """A benefit-related entity (2120C/D): primary care provider, other payer, ..."""

    entity_code: str | None
    name: str | None
    first_name: str | None
    id_qualifier: str | None
    id: str | None


@_slot_init
@dataclass(frozen=True, slots=True)
class Benefit:
    """One EB (2110C/D) with its messages, dates and related entities."""

    code: str | None
    description: str | None
    coverage_level: str | None
    service_types: tuple[str, ...]
    insurance_type: str | None
    plan_description: str | None
    time_period: str | None
    amount: Decimal | None
    percent: Decimal | None
    quantity_qualifier: str | None
    quantity: Decimal | None
    authorization_required: str | None  # EB11: Y, N or U
    in_network: str | None  # EB12: Y, N, W or U
    procedure_qualifier: str | None
    procedure_code: str | None
    messages: tuple[str, ...]
    entities: tuple[BenefitEntity, ...]


@_slot_init
@dataclass(frozen=True, slots=True)
class AuthorizationRequirement:
    """EB11 evidence: whether the payer says a service type or procedure needs authorization."""

    required: str  # Y, N or U
    service_types: tuple[str, ...]
    procedure_code: str | None
    in_network: str | None


@_slot_init
@dataclass(frozen=True, slots=True)
class EligibilityResult:
    """The answer to one 270: coverage, plan, benefits and any rejection."""

    trace_numbers: tuple[str, ...]
    payer_trace_numbers: tuple[str, ...]
    bht_reference: str | None
    coverage: str  # active, inactive, not_found, rejected, unknown
    payer_name: str | None
    payer_id: str | None
    provider_name: str | None
    provider_id: str | None
    member_id: str | None
    subscriber_last_name: str | None
    subscriber_first_name: str | None
    subscriber_birth_date: date | None
    dependent_last_name: str | None
    dependent_first_name: str | None
    dependent_birth_date: date | None
    plan_name: str | None
    plan_number: str | None
    group_name: str | None
    group_number: str | None
    insurance_type: str | None
    plan_begin: date | None
    plan_end: date | None
    eligibility_begin: date | None
    eligibility_end: date | None
    benefits: tuple[Benefit, ...]
    authorization_requirements: tuple[AuthorizationRequirement, ...]
    rejections: tuple[Rejection, ...]
    control: ControlRef | None
    # for a dependent's result: the subscriber's own EBs (2110C), kept apart from the dependent's
    subscriber_benefits: tuple[Benefit, ...] = ()


@_slot_init
@dataclass(frozen=True, slots=True)
class Documentation:
    """A PWK in a response: documentation the payer asks for, and how to send it."""

    report_type: str | None
    transmission: str | None
    control_number: str | None


@_slot_init
@dataclass(frozen=True, slots=True)
class ServiceDecision:
    """The payer's decision on one service line (2000F)."""

    trace_number: str | None
    procedure_qualifier: str | None
    procedure_code: str | None
    modifiers: tuple[str, ...]
    revenue_code: str | None
    quantity: Decimal | None
    unit: str | None
    visits: int | None
    status: str
    action_code: str | None
    certification_number: str | None
    reason_code: str | None
    reason: str | None
    service_from: date | None
    service_to: date | None
    effective_from: date | None
    effective_to: date | None
    documentation_codes: tuple[str, ...]
    messages: tuple[str, ...]
    rejections: tuple[Rejection, ...]
    # "service": the line has its own HCR (the payer's line-level answer); "event": inherited
    decision_level: str = "event"


@_slot_init
@dataclass(frozen=True, slots=True)
class AuthorizationRecord:
    """The answer to one 278 request: the event-level decision and each line's decision."""

    trace_number: str | None
    payer_trace_number: str | None
    bht_reference: str | None
    response_type: str | None  # BHT06: 18 final, 19 further updates to follow
    status: str  # approved, partially_approved, denied, pended, modified, cancelled, contact_payer, ...
    action_code: str | None
    certification_number: str | None
    admin_reference: str | None
    previous_certification: str | None
    effective_from: date | None
    effective_to: date | None
    issued: date | None
    reason_code: str | None
    reason: str | None
    request_category: str | None
    certification_type: str | None
    service_type: str | None
    facility_code: str | None
    level_of_service: str | None
    event_from: date | None
    event_to: date | None
    admission_date: date | None
    discharge_date: date | None
    days_approved: int | None
    payer_name: str | None
    payer_id: str | None
    requester_name: str | None
    requester_id: str | None
    member_id: str | None
    subscriber_last_name: str | None
    subscriber_first_name: str | None
    patient_last_name: str | None
    patient_first_name: str | None
    servicing_provider_id: str | None
    servicing_provider_id_qualifier: str | None  # XX = NPI
    servicing_provider_name: str | None
    facility_id: str | None
    facility_name: str | None
    diagnoses: tuple[str, ...]
    messages: tuple[str, ...]
    documentation_requested: tuple[Documentation, ...]
    services: tuple[ServiceDecision, ...]
    rejections: tuple[Rejection, ...]
    control: ControlRef | None

    @property
    def all_lines_approved(self) -> bool:
        return all(s.status == "approved" for s in self.services)


R = TypeVar("R", AuthorizationRecord, ServiceDecision)


def blank_record(cls: type[R], **given: Any) -> R:
    """A record of ``cls`` with only ``given`` set (other fields None, tuple fields empty): for a record
    the gateway makes itself, such as a 278 answered locally by the pre-certification gate."""
    empty = {f.name: () if str(f.type).startswith("tuple[") else None for f in fields(cls)}
    unknown = set(given) - set(empty)
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {', '.join(sorted(unknown))}")
    return cls(**{**empty, **given})
