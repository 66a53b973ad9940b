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
        s["trace_number"],  # trace_number
        s["procedure_qualifier"],  # procedure_qualifier
        s["procedure_code"],  # procedure_code
        tuple(s["modifiers"]),  # modifiers
        s["revenue_code"],  # revenue_code
        decimal(s["quantity"]),  # quantity
        s["unit"],  # unit
        integer(s["visits"]),  # visits
        "rejected" if s["rejections"] and not action else status_of(action),  # status
        action,  # action_code
        cert,  # certification_number
        s["reason_code"],  # reason_code
        text(DECISION_REASONS, s["reason_code"]),  # reason
        service_from,  # service_from
        service_to,  # service_to
        eff_from,  # effective_from
        eff_to or d8(s["expiration"]),  # effective_to
        tuple(s["documentation_codes"]),  # documentation_codes
        tuple(s["messages"]),  # messages
        rejections(s["rejections"]),  # rejections
        "service" if s["action_code"] else "event",  # decision_level
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
    services = tuple([_service(s, action, f["certification_number"]) for s in f["services"]])
    documentation = tuple([Documentation(**d) for d in f["documentation"]]) if f["documentation"] else ()
    rejected = rejections(f["rejections"])
    eff_from, eff_to = date_range(f["effective"])
    event_from, event_to = date_range(f["event_dates"])
    return AuthorizationRecord(
        f["trace_number"],  # trace_number
        f["payer_trace_number"],  # payer_trace_number
        f["bht_reference"],  # bht_reference
        f["response_type"],  # response_type
        overall_status(action, services, bool(rejected)),  # status
        action,  # action_code
        f["certification_number"],  # certification_number
        f["admin_reference"],  # admin_reference
        f["previous_certification"],  # previous_certification
        eff_from,  # effective_from
        eff_to or d8(f["expiration"]),  # effective_to
        d8(f["issued"]),  # issued
        f["reason_code"],  # reason_code
        text(DECISION_REASONS, f["reason_code"]),  # reason
        f["request_category"],  # request_category
        f["certification_type"],  # certification_type
        f["service_type"],  # service_type
        f["facility_code"],  # facility_code
        f["level_of_service"],  # level_of_service
        event_from,  # event_from
        event_to,  # event_to
        d8(f["admission_date"]),  # admission_date
        d8(f["discharge_date"]),  # discharge_date
        integer(f["days_approved"]),  # days_approved
        f["payer_name"],  # payer_name
        f["payer_id"],  # payer_id
        f["requester_name"],  # requester_name
        f["requester_id"],  # requester_id
        f["member_id"],  # member_id
        f["subscriber_last_name"],  # subscriber_last_name
        f["subscriber_first_name"],  # subscriber_first_name
        f["patient_last_name"] or f["subscriber_last_name"],  # patient_last_name
        f["patient_first_name"] or f["subscriber_first_name"],  # patient_first_name
        f["servicing_provider_id"],  # servicing_provider_id
        f["servicing_provider_id_qualifier"],  # servicing_provider_id_qualifier
        f["servicing_provider_name"],  # servicing_provider_name
        f["facility_id"],  # facility_id
        f["facility_name"],  # facility_name
        tuple(f["diagnoses"]),  # diagnoses
        tuple(f["messages"]),  # messages
        documentation,  # documentation_requested
        services,  # services
        rejected,  # rejections
        control,  # control
    )
