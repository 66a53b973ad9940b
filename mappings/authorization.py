"""278-response field dicts into :class:`AuthorizationRecord` records.

Status rules: a rejection (AAA) without any HCR is ``rejected``. Otherwise the event's HCR01 gives the
status, and lines without their own HCR inherit it (and its certification number). "approved" for the
request means every line approved: an event A1 with a line not approved becomes ``partially_approved``.
Each line says where its decision comes from (``decision_level``): ``service`` when it has its own HCR,
``event`` when it inherits the event's; only the first is the payer's line-level answer.
Without an event HCR the status is derived from the lines.
"""

from __future__ import annotations

from typing import Any

from mappings.codes import DECISION_REASONS, HCR_ACTIONS, text
from mappings.convert import d8, date_range, decimal, integer, rejections
from mappings.records import AuthorizationRecord, ControlRef, Documentation, ServiceDecision

CERTIFIED = frozenset({"A1", "A2", "A6"})


def status_of(action: str | None) -> str:
    return HCR_ACTIONS[action][0] if action in HCR_ACTIONS else ("unknown" if action else "no_decision")


def _service(s: dict[str, Any], event_action: str | None, event_cert: str | None) -> ServiceDecision:
    action = s["action_code"] or event_action
    cert = s["certification_number"] or (event_cert if action in CERTIFIED else None)
    service_from, service_to = date_range(s["service_dates"])
    eff_from, eff_to = date_range(s["effective"])
    return ServiceDecision(
        trace_number=s["trace_number"],
        procedure_qualifier=s["procedure_qualifier"],
        procedure_code=s["procedure_code"],
        modifiers=tuple(s["modifiers"]),
        revenue_code=s["revenue_code"],
        quantity=decimal(s["quantity"]),
        unit=s["unit"],
        visits=integer(s["visits"]),
        status="rejected" if s["rejections"] and not action else status_of(action),
        action_code=action,
        certification_number=cert,
        reason_code=s["reason_code"],
        reason=text(DECISION_REASONS, s["reason_code"]),
        service_from=service_from,
        service_to=service_to,
        effective_from=eff_from,
        effective_to=eff_to or d8(s["expiration"]),
        documentation_codes=tuple(s["documentation_codes"]),
        messages=tuple(s["messages"]),
        rejections=rejections(s["rejections"]),
        decision_level="service" if s["action_code"] else "event",
    )


def overall_status(  # noqa: PLR0911 - one return per rule reads like the rules
    event_action: str | None, services: tuple[ServiceDecision, ...], rejected: bool
) -> str:
    if event_action is None and rejected and not any(s.action_code for s in services):
        return "rejected"
    if event_action is not None:
        status = status_of(event_action)
        if status == "approved" and any(s.status != "approved" for s in services):
            return "partially_approved"
        return status
    line = {s.status for s in services}
    if not line:
        return "no_decision"
    if len(line) == 1:
        return line.pop()
    if "pended" in line:
        return "pended"
    return "partially_approved" if "approved" in line or "modified" in line else "denied"


def authorization_record(f: dict[str, Any], control: ControlRef | None) -> AuthorizationRecord:
    action = f["action_code"]
    services = tuple(_service(s, action, f["certification_number"]) for s in f["services"])
    rejected = rejections(f["rejections"])
    eff_from, eff_to = date_range(f["effective"])
    event_from, event_to = date_range(f["event_dates"])
    return AuthorizationRecord(
        trace_number=f["trace_number"],
        payer_trace_number=f["payer_trace_number"],
        bht_reference=f["bht_reference"],
        response_type=f["response_type"],
        status=overall_status(action, services, bool(rejected)),
        action_code=action,
        certification_number=f["certification_number"],
        admin_reference=f["admin_reference"],
        previous_certification=f["previous_certification"],
        effective_from=eff_from,
        effective_to=eff_to or d8(f["expiration"]),
        issued=d8(f["issued"]),
        reason_code=f["reason_code"],
        reason=text(DECISION_REASONS, f["reason_code"]),
        request_category=f["request_category"],
        certification_type=f["certification_type"],
        service_type=f["service_type"],
        facility_code=f["facility_code"],
        level_of_service=f["level_of_service"],
        event_from=event_from,
        event_to=event_to,
        admission_date=d8(f["admission_date"]),
        discharge_date=d8(f["discharge_date"]),
        days_approved=integer(f["days_approved"]),
        payer_name=f["payer_name"],
        payer_id=f["payer_id"],
        requester_name=f["requester_name"],
        requester_id=f["requester_id"],
        member_id=f["member_id"],
        subscriber_last_name=f["subscriber_last_name"],
        subscriber_first_name=f["subscriber_first_name"],
        patient_last_name=f["patient_last_name"] or f["subscriber_last_name"],
        patient_first_name=f["patient_first_name"] or f["subscriber_first_name"],
        servicing_provider_id=f["servicing_provider_id"],
        servicing_provider_id_qualifier=f["servicing_provider_id_qualifier"],
        servicing_provider_name=f["servicing_provider_name"],
        facility_id=f["facility_id"],
        facility_name=f["facility_name"],
        diagnoses=tuple(f["diagnoses"]),
        messages=tuple(f["messages"]),
        documentation_requested=tuple(Documentation(**d) for d in f["documentation"]),
        services=services,
        rejections=rejected,
        control=control,
    )
