"""271 field dicts into :class:`EligibilityResult` records."""

from __future__ import annotations

from typing import Any

from mappings.codes import ACTIVE, ELIGIBILITY, INACTIVE, text
from mappings.convert import d8, date_range, decimal, rejections
from mappings.records import (
    AuthorizationRequirement,
    Benefit,
    BenefitEntity,
    ControlRef,
    EligibilityResult,
    Rejection,
)

NOT_FOUND_REASONS = frozenset({"67", "72", "73", "75", "77"})


def _benefit(b: dict[str, Any]) -> Benefit:
    """One EB loop's benefit from its field dict."""
    entities = b["entities"]
    return benefit_of(
        b["code"],
        b["coverage_level"],
        b["service_types"],
        b["insurance_type"],
        b["plan_description"],
        b["time_period"],
        b["amount"],
        b["percent"],
        b["quantity_qualifier"],
        b["quantity"],
        b["authorization_required"],
        b["in_network"],
        b["procedure_qualifier"],
        b["procedure_code"],
        b["messages"],
        [BenefitEntity(**e) for e in entities] if entities else (),
    )


def benefit_of(  # noqa: PLR0917 - one parameter per field of the EB loop's rule, in rule order
    code: str | None,
    coverage_level: str | None,
    service_types: list[str],
    insurance_type: str | None,
    plan_description: str | None,
    time_period: str | None,
    amount: str | None,
    percent: str | None,
    quantity_qualifier: str | None,
    quantity: str | None,
    authorization_required: str | None,
    in_network: str | None,
    procedure_qualifier: str | None,
    procedure_code: str | None,
    messages: list[str],
    entities: list[BenefitEntity] | tuple[()],
) -> Benefit:
    """One EB loop's benefit from its field values (``mappings.direct271`` passes them without a
    dict). Runs for every EB of every 271: an absent amount, percent or quantity (most) and no
    entities (most) skip the converters' calls, which give None and () for them."""
    return Benefit(
        code,  # code
        text(ELIGIBILITY, code),  # description
        coverage_level,  # coverage_level
        tuple(service_types),  # service_types
        insurance_type,  # insurance_type
        plan_description,  # plan_description
        time_period,  # time_period
        decimal(amount) if amount else None,  # amount
        decimal(percent) if percent else None,  # percent
        quantity_qualifier,  # quantity_qualifier
        decimal(quantity) if quantity else None,  # quantity
        authorization_required,  # authorization_required
        in_network,  # in_network
        procedure_qualifier,  # procedure_qualifier
        procedure_code,  # procedure_code
        tuple(messages),  # messages
        tuple(entities),  # entities
    )


def coverage_status(benefits: tuple[Benefit, ...], rejected: tuple[Rejection, ...]) -> str:
    """active / inactive / not_found / rejected / unknown, from EB01 codes and AAA reasons."""
    if any(r.reason_code in NOT_FOUND_REASONS for r in rejected):
        return "not_found"
    if rejected:
        return "rejected"
    codes = {b.code for b in benefits}
    if codes & ACTIVE:
        return "active"
    if codes & INACTIVE:
        return "inactive"
    return "unknown"


def _requirements(benefits: tuple[Benefit, ...]) -> tuple[AuthorizationRequirement, ...]:
    return tuple(
        AuthorizationRequirement(b.authorization_required, b.service_types, b.procedure_code, b.in_network)
        for b in benefits
        if b.authorization_required in ("Y", "N", "U")
    )


def eligibility_result(f: dict[str, Any], control: ControlRef | None) -> EligibilityResult:
    """The record of one field dict (benefits as field dicts, as every rule gives them)."""
    return result_of(
        f,
        control,
        tuple([_benefit(b) for b in f["benefits"]]),
        tuple([_benefit(b) for b in f.get("subscriber_benefits", ())]),
    )


def result_of(
    f: dict[str, Any],
    control: ControlRef | None,
    benefits: tuple[Benefit, ...],
    subscriber_benefits: tuple[Benefit, ...],
) -> EligibilityResult:
    """The record of one field dict whose benefits are already made (``mappings.direct271``)."""
    rejected = rejections(f["rejections"])
    plan_from, plan_to = date_range(f["plan_dates"])
    insurance = next((b.insurance_type for b in benefits if b.insurance_type), None)
    return EligibilityResult(
        tuple(f["trace_numbers"]),  # trace_numbers
        tuple(f["payer_trace_numbers"]),  # payer_trace_numbers
        f["bht_reference"],  # bht_reference
        coverage_status(benefits, rejected),  # coverage
        f["payer_name"],  # payer_name
        f["payer_id"],  # payer_id
        f["provider_name"],  # provider_name
        f["provider_id"],  # provider_id
        f["member_id"],  # member_id
        f["subscriber_last_name"],  # subscriber_last_name
        f["subscriber_first_name"],  # subscriber_first_name
        d8(f["subscriber_birth_date"]),  # subscriber_birth_date
        f["dependent_last_name"],  # dependent_last_name
        f["dependent_first_name"],  # dependent_first_name
        d8(f["dependent_birth_date"]),  # dependent_birth_date
        f["plan_name"],  # plan_name
        f["plan_number"],  # plan_number
        f["group_name"],  # group_name
        f["group_number"],  # group_number
        insurance,  # insurance_type
        d8(f["plan_begin"]) or plan_from,  # plan_begin
        d8(f["plan_end"]) or plan_to,  # plan_end
        d8(f["eligibility_begin"]),  # eligibility_begin
        d8(f["eligibility_end"]),  # eligibility_end
        benefits,  # benefits
        _requirements(benefits),  # authorization_requirements
        rejected,  # rejections
        control,  # control
        subscriber_benefits,  # subscriber_benefits
    )
