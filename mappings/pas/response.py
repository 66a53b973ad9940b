"""The gateway's result for a 278 (the outbox JSON) -> a Da Vinci PAS response Bundle.

Each Claim.item the request carried gets a ClaimResponse.item with the payer's decision for it: the
line's own HCR when the payer answered per line (matched by the 2000F trace number the request gave
the item), else the event's HCR. A request with no answer yet is ``queued`` with every item pended
(A4), which ``$inquire`` later replaces with the decision. X12 trace numbers travel as identifiers, so
an operator can follow a ClaimResponse back to its 278s.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from mappings.codes import DECISION_REASONS, HCR_ACTIONS, REJECT_REASONS
from mappings.pas.bundle import BundleIndex
from mappings.pas.paths import PAS_SD, SYSTEMS
from mappings.pas.request import ItemLink, PasSubmission

TRACKING_SYSTEM = "urn:x12gw:tracking-number"  # our TRN02 (2000E trace sent to the payer)
PAYER_TRACE_SYSTEM = "urn:x12gw:payer-trace-number"  # the payer's own TRN in its 278 response
PENDED = "A4"
CANCELLED = "C"


def _coded(alias: str, code: str, display: str | None = None) -> dict[str, Any]:
    coding: dict[str, Any] = {"system": SYSTEMS[alias], "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


def _review_action(action: str | None, number: str | None, reason: str | None) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if action:
        meaning = HCR_ACTIONS.get(action, (None, None))[1]
        parts.append(
            {
                "url": PAS_SD + "extension-reviewActionCode",
                "valueCodeableConcept": _coded("x12-306", action, meaning),
            }
        )
    if number:
        parts.append({"url": "number", "valueString": number})
    if reason:
        parts.append(
            {
                "url": "reasonCode",
                "valueCodeableConcept": _coded("x12-886", reason, DECISION_REASONS.get(reason)),
            }
        )
    return {"url": PAS_SD + "extension-reviewAction", "extension": parts}


def _period(start: str | None, end: str | None) -> dict[str, str] | None:
    if not start:
        return None
    return {"start": start, "end": end or start}


def _decision_for(link: ItemLink, record: Mapping[str, Any]) -> Mapping[str, Any]:
    """The line decision the payer gave this item's 2000F line, else the event-level decision."""
    for service in record.get("services") or ():
        if link.line_trace and service.get("trace_number") == link.line_trace:
            found: Mapping[str, Any] = service
            return found
    return record


def _item(link: ItemLink, record: Mapping[str, Any] | None) -> dict[str, Any]:
    action: str | None
    number: str | None
    reason: str | None
    issued: str | None
    period: dict[str, str] | None
    if record is None:  # no answer yet: pended from the EHR's point of view
        action, number, reason, period, issued = PENDED, None, None, None, None
    else:
        decision = _decision_for(link, record)  # a line's own decision is taken as it is
        action = decision.get("action_code")
        number = decision.get("certification_number")
        reason = decision.get("reason_code")
        period = _period(decision.get("effective_from"), decision.get("effective_to"))
        issued = record.get("issued")
    extensions = [_review_action(action, number, reason)]
    if period:
        extensions.append({"url": PAS_SD + "extension-itemPreAuthPeriod", "valuePeriod": period})
    if issued:
        extensions.append({"url": PAS_SD + "extension-itemPreAuthIssueDate", "valueDate": issued})
    adjudication = {
        "category": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication", "code": "submitted"}]
        }
    }
    return {"itemSequence": link.sequence, "extension": extensions, "adjudication": [adjudication]}


def _errors(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for rejection in record.get("rejections") or ():
        code = rejection.get("reason_code")
        if not code:
            continue
        error: dict[str, Any] = {
            "code": {
                "coding": [
                    {
                        "system": "https://codesystem.x12.org/005010/901",
                        "code": code,
                        "display": REJECT_REASONS.get(code),
                    }
                ]
            }
        }
        error["extension"] = [
            {"url": PAS_SD + "extension-errorElement", "valueString": rejection.get("level") or ""}
        ]
        if rejection.get("follow_up_code"):
            error["extension"].append(
                {
                    "url": PAS_SD + "extension-errorFollowupAction",
                    "valueCodeableConcept": {
                        "coding": [
                            {
                                "system": "https://codesystem.x12.org/005010/889",
                                "code": rejection["follow_up_code"],
                            }
                        ]
                    },
                }
            )
        out.append(error)
    return out


def _outcome(record: Mapping[str, Any] | None, *, failed: bool) -> str:
    if record is None:
        return "error" if failed else "queued"
    return "queued" if record.get("action_code") == PENDED else "complete"


def _identifiers(
    result: Mapping[str, Any], sub: PasSubmission, record: Mapping[str, Any] | None
) -> list[Any]:
    out: list[dict[str, Any]] = [dict(sub.claim_identifier)] if sub.claim_identifier else []
    out.append({"system": TRACKING_SYSTEM, "value": result["tracking_number"]})
    if record and record.get("payer_trace_number"):
        out.append({"system": PAYER_TRACE_SYSTEM, "value": record["payer_trace_number"]})
    return out


def claim_response(
    result: Mapping[str, Any], sub: PasSubmission, *, created: datetime, failed: bool = False
) -> dict[str, Any]:
    """The PAS ClaimResponse for one request's current result (see the module docstring); ``failed``
    says the gateway gave the request up (its 278 rejected by a 999/TA1, or not buildable)."""
    record = result.get("authorization")
    refs = sub.references
    response: dict[str, Any] = {
        "resourceType": "ClaimResponse",
        "id": result["tracking_number"],
        "identifier": _identifiers(result, sub, record),
        "status": "active",
        "type": sub.claim_type
        or {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]
        },
        "use": "preauthorization",
        "patient": {"reference": refs.get("patient", "")},
        "created": created.isoformat(),
        "insurer": {"reference": refs.get("insurer", "")},
        "outcome": _outcome(record, failed=failed),
    }
    if refs.get("requester"):
        response["requestor"] = {"reference": refs["requester"]}
    if refs.get("claim"):
        response["request"] = {"reference": refs["claim"]}
    if result.get("status"):
        response["disposition"] = str(result["status"]).replace("_", " ")
    if record and record.get("certification_number"):
        response["preAuthRef"] = record["certification_number"]
    period = _period(record.get("effective_from"), record.get("effective_to")) if record else None
    if period:
        response["preAuthPeriod"] = period
    links = [link for link in sub.items if not link.cancelled or sub.request.get("certification_type") == "3"]
    response["item"] = [_item(link, record) for link in links]
    errors = _errors(record) if record else []
    if errors:
        response["error"] = errors
    return response


def response_bundle(
    result: Mapping[str, Any],
    sub: PasSubmission,
    request_bundle: Mapping[str, Any],
    *,
    created: datetime,
    failed: bool = False,
) -> dict[str, Any]:
    """The PAS response Bundle: the ClaimResponse first, then the resources it references, copied from
    the request bundle with their fullUrls so every reference resolves inside the response."""
    response = claim_response(result, sub, created=created, failed=failed)
    index = BundleIndex.of(dict(request_bundle))
    entries = [
        {
            "fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'x12gw:' + response['id'])}",
            "resource": response,
        }
    ]
    seen: set[int] = set()
    for key in ("patient", "insurer", "requestor"):
        target = response.get(key, {}).get("reference")
        found = _entry_for(index, request_bundle, target)
        if found is not None and id(found["resource"]) not in seen:
            seen.add(id(found["resource"]))
            entries.append({"fullUrl": found["fullUrl"], "resource": found["resource"]})
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": created.isoformat(),
        "entry": entries,
    }
    if sub.bundle_identifier:
        bundle["identifier"] = dict(sub.bundle_identifier)
    return bundle


def _entry_for(
    index: BundleIndex, bundle: Mapping[str, Any], reference: str | None
) -> Mapping[str, Any] | None:
    if not reference:
        return None
    issues: list[Any] = []
    located = index.resolve({"reference": reference}, "", issues, required=False)
    if located is None:
        return None
    for entry in bundle.get("entry") or ():
        if entry.get("resource") is located.resource:
            hit: Mapping[str, Any] = entry
            return hit
    return None
