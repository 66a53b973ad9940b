"""Gateway results for a 278 become PAS response Bundles that parse as FHIR and say each item's decision."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fhir.resources.R4B.bundle import Bundle

from mappings.pas.paths import PAS_SD
from mappings.pas.request import PasSubmission, to_request
from mappings.pas.response import TRACKING_SYSTEM, response_bundle

FOLDER = Path(__file__).resolve().parent.parent / "sample_edi" / "fhir"
PAYERS = {"http://hl7.org/fhir/sid/us-npi|1234567893": "ACME01"}
NOW = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)


def _submission(name: str) -> tuple[PasSubmission, dict[str, Any]]:
    bundle = json.loads((FOLDER / f"{name}.json").read_text(encoding="utf-8"))
    sub = to_request(bundle, payer_ids=PAYERS)
    assert isinstance(sub, PasSubmission)
    return sub, bundle


def _service(trace: str, action: str, number: str | None, reason: str | None = None) -> dict[str, Any]:
    return {
        "trace_number": trace,
        "action_code": action,
        "certification_number": number,
        "reason_code": reason,
        "effective_from": "2026-12-10",
        "effective_to": "2027-03-10",
    }


def _review(bundle: dict[str, Any]) -> list[tuple[int, str | None, str | None]]:
    """(itemSequence, HCR01 code, certification number) per ClaimResponse item."""
    response = bundle["entry"][0]["resource"]
    out = []
    for item in response["item"]:
        action = next(e for e in item["extension"] if e["url"] == PAS_SD + "extension-reviewAction")
        parts = {p["url"]: p for p in action["extension"]}
        code = parts.get(PAS_SD + "extension-reviewActionCode", {}).get("valueCodeableConcept", {})
        out.append(
            (
                item["itemSequence"],
                (code.get("coding") or [{}])[0].get("code"),
                parts.get("number", {}).get("valueString"),
            )
        )
    return out


def test_line_decisions_reach_their_items_and_bundle_is_valid_fhir() -> None:
    """Two imaging items answered per line (A1 with a number, A4 pended) land on items 1 and 2."""
    sub, request = _submission("own-outpatient-imaging")
    result = {
        "tracking_number": "GW-T-0000000001",
        "state": "answered",
        "status": "partially_approved",
        "authorization": {
            "action_code": "A1",
            "certification_number": "SIM000010",
            "payer_trace_number": "P-77",
            "effective_from": "2026-12-10",
            "effective_to": "2027-03-10",
            "issued": "2026-12-02",
            "services": [_service("IMG-1", "A1", "SIM000010"), _service("IMG-2", "A4", None)],
        },
    }
    bundle = response_bundle(result, sub, request, created=NOW)
    Bundle.model_validate(bundle)  # raises on anything FHIR R4(B) does not allow
    assert _review(bundle) == [(1, "A1", "SIM000010"), (2, "A4", None)]
    response = bundle["entry"][0]["resource"]
    assert response["preAuthRef"] == "SIM000010"
    assert {"system": TRACKING_SYSTEM, "value": "GW-T-0000000001"} in response["identifier"]
    assert response["request"]["reference"] == "http://example.org/fhir/Claim/OutpatientImagingExample"


def test_every_reference_of_the_response_resolves_inside_it() -> None:
    """Patient, insurer and requestor of the ClaimResponse are entries of the response bundle."""
    sub, request = _submission("ig-surgical")
    bundle = response_bundle({"tracking_number": "GW-T-2", "state": "queued"}, sub, request, created=NOW)
    urls = {e["fullUrl"] for e in bundle["entry"]}
    response = bundle["entry"][0]["resource"]
    for key in ("patient", "insurer", "requestor"):
        ref = response[key]["reference"]
        assert any(u.endswith("/" + ref) or u == ref for u in urls), key


def test_unanswered_request_is_queued_with_every_item_pended() -> None:
    """No 278 response yet: outcome queued and A4 per item, which $inquire later completes."""
    sub, request = _submission("ig-homecare")
    bundle = response_bundle({"tracking_number": "GW-T-3", "state": "queued"}, sub, request, created=NOW)
    Bundle.model_validate(bundle)
    assert bundle["entry"][0]["resource"]["outcome"] == "queued"
    assert _review(bundle) == [(1, "A4", None), (2, "A4", None)]


def test_denial_carries_reason_code_and_event_decision_covers_items() -> None:
    """An event-level A3 with HCR03 reason applies to the item without a line of its own."""
    sub, request = _submission("ig-referral")
    result = {
        "tracking_number": "GW-T-4",
        "state": "answered",
        "status": "denied",
        "authorization": {"action_code": "A3", "reason_code": "0E", "services": []},
    }
    bundle = response_bundle(result, sub, request, created=NOW)
    Bundle.model_validate(bundle)
    assert _review(bundle) == [(1, "A3", None)]
    action = bundle["entry"][0]["resource"]["item"][0]["extension"][0]
    reason = next(p for p in action["extension"] if p["url"] == "reasonCode")
    assert reason["valueCodeableConcept"]["coding"][0]["code"] == "0E"


def test_aaa_rejection_becomes_claimresponse_error() -> None:
    """A payer AAA (reject reason 72, follow-up C) is a ClaimResponse.error with X12 901 code."""
    sub, request = _submission("ig-homecare")
    result = {
        "tracking_number": "GW-T-5",
        "state": "answered",
        "status": "rejected",
        "authorization": {
            "action_code": None,
            "services": [],
            "rejections": [{"level": "2010C", "reason_code": "72", "follow_up_code": "C"}],
        },
    }
    bundle = response_bundle(result, sub, request, created=NOW)
    Bundle.model_validate(bundle)
    error = bundle["entry"][0]["resource"]["error"][0]
    assert error["code"]["coding"][0]["code"] == "72"


def test_cancelled_update_item_is_not_answered() -> None:
    """The item a ClaimUpdate cancels was not sent, so the response answers items 1 and 3 only."""
    sub, request = _submission("ig-homecare-update")
    bundle = response_bundle({"tracking_number": "GW-T-6", "state": "queued"}, sub, request, created=NOW)
    assert [seq for seq, _, _ in _review(bundle)] == [1, 3]


def test_request_the_gateway_gave_up_is_an_error_outcome() -> None:
    """A 278 rejected by the clearinghouse (no payer answer) is outcome error, not queued."""
    sub, request = _submission("ig-homecare")
    result = {"tracking_number": "GW-T-7", "state": "rejected"}
    bundle = response_bundle(result, sub, request, created=NOW, failed=True)
    Bundle.model_validate(bundle)
    assert bundle["entry"][0]["resource"]["outcome"] == "error"
    assert response_bundle(result, sub, request, created=NOW)["entry"][0]["resource"]["outcome"] == "queued"
