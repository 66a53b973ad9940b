"""Da Vinci PAS request bundles become 278s our validator accepts, or OperationOutcome issues by path."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mappings.pas.issues import Issue, operation_outcome
from mappings.pas.request import PasSubmission, to_request
from transactions.envelope_writer import InterchangeHeader
from transactions.models import ServiceReviewRequest
from transactions.outbound import build_request_interchange
from transactions.requests_json import request_from_obj
from transactions.validation import validate

FOLDER = Path(__file__).resolve().parent.parent / "sample_edi" / "fhir"
PAYERS = {"http://hl7.org/fhir/sid/us-npi|1234567893": "ACME01"}
WHEN = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FOLDER / f"{name}.json").read_text(encoding="utf-8"))
    return data


def _submit(bundle: dict[str, Any]) -> PasSubmission:
    result = to_request(bundle, payer_ids=PAYERS)
    assert isinstance(result, PasSubmission), result
    return result


def _findings(req: ServiceReviewRequest) -> list[str]:
    header = InterchangeHeader("ZZ", "GATEWAY", "ZZ", "CLEARING", 7, WHEN)
    built = build_request_interchange(
        [req],
        header,
        application_sender="GATEWAY",
        application_receiver="CLEARING",
        group_controls=[7],
        set_controls=[1],
    )
    report = validate(built.data)
    found = [
        f"{f.segment}:{f.element}:{f.code}:{f.message}"
        for i in report.interchanges
        for g in i.groups
        for s in g.sets
        for f in s.findings
    ]
    assert report.all_accepted or found
    return found


@pytest.mark.parametrize("name", sorted(p.stem for p in FOLDER.glob("*.json")))
def test_every_example_bundle_builds_a_clean_278(name: str) -> None:
    """Each PAS example (the IG's own and ours) maps to a 278 request with zero validator findings."""
    req = request_from_obj(_submit(_load(name)).request)
    assert isinstance(req, ServiceReviewRequest)
    assert _findings(req) == []


def test_surgical_example_fields_land_where_the_table_says() -> None:
    """The IG's surgical example: AR/I/2/21, elective, C18.9, admission and discharge, line trace."""
    sub = _submit(_load("ig-surgical"))
    req = request_from_obj(sub.request)
    assert isinstance(req, ServiceReviewRequest)
    assert (req.request_category, req.certification_type, req.service_type, req.facility_code) == (
        "AR",
        "I",
        "2",
        "21",
    )
    assert req.level_of_service == "E"
    assert [d.code for d in req.diagnoses] == ["C189"]
    assert (str(req.admission_date), str(req.discharge_date)) == ("2020-07-02", "2020-07-09")
    assert req.payer.id == "ACME01"
    assert req.requester.npi == "8189991234"
    assert req.servicing_provider is not None
    assert req.servicing_provider.first_name == "SUSAN"
    assert req.subscriber.member_id == "1122334455"
    assert req.dependent is None
    assert [ln.trace_number for ln in req.lines] == ["1122334"]
    assert req.trace_number == "16139462398"
    assert req.trace_assigner == "3030240928"


def test_referral_service_type_item_is_the_event_and_attachment_is_pwk() -> None:
    """An item whose productOrService is a service type code adds no 2000F line; PWK from supportingInfo."""
    sub = _submit(_load("ig-referral"))
    req = request_from_obj(sub.request)
    assert isinstance(req, ServiceReviewRequest)
    assert (req.lines, req.service_type, req.request_category) == ((), "3", "SC")
    assert [(a.report_type, a.transmission, a.control_number) for a in req.attachments] == [
        ("PY", "EL", "111222")
    ]
    assert [(link.sequence, link.line_trace) for link in sub.items] == [(1, None)]


def test_update_leaves_the_cancelled_item_out_and_remembers_it() -> None:
    """A ClaimUpdate's cancelled item is not sent but stays linked, flagged cancelled."""
    sub = _submit(_load("ig-homecare-update"))
    assert [ln["procedure"]["code"] for ln in sub.request["lines"]] == ["G0154", "B4185"]
    assert {(link.sequence, link.cancelled) for link in sub.items} == {(1, False), (2, True), (3, False)}


def test_dependent_patient_becomes_2010d_with_subscriber_from_coverage() -> None:
    """Coverage.relationship child: Claim.patient is the dependent, Coverage.subscriber the subscriber."""
    req = request_from_obj(_submit(_load("own-inpatient-dependent")).request)
    assert isinstance(req, ServiceReviewRequest)
    assert req.dependent is not None
    assert req.dependent.first_name == "JESSE"
    assert str(req.dependent.birth_date) == "2012-01-18"
    assert req.dependent.gender == "F"
    assert req.subscriber.first_name == "JOE"
    assert req.subscriber.member_id == "1122334455"


def _issues(bundle: dict[str, Any]) -> list[Issue]:
    result = to_request(bundle, payer_ids=PAYERS)
    assert isinstance(result, list)
    return result


def test_bundle_without_claim_is_refused() -> None:
    """No Claim in the bundle: one issue at Bundle.entry, nothing to send."""
    bundle = _load("ig-homecare")
    bundle["entry"] = bundle["entry"][1:]
    assert [(i.path, i.code) for i in _issues(bundle)] == [("Bundle.entry", "required")]


def test_unresolved_reference_is_named_by_path() -> None:
    """A Claim.patient that points outside the bundle is named by its path, not its value."""
    bundle = _load("ig-homecare")
    bundle["entry"][0]["resource"]["patient"] = {"reference": "Patient/NotHere"}
    issues = _issues(bundle)
    assert ("Bundle.entry[0].resource.patient.reference", "not-found") in [(i.path, i.code) for i in issues]
    assert "NotHere" not in json.dumps(operation_outcome(issues))


def test_missing_subscriber_id_and_unknown_payer_reported_together() -> None:
    """Every problem at once: no member id anywhere, and an insurer outside the payer directory."""
    bundle = copy.deepcopy(_load("ig-homecare"))
    for entry in bundle["entry"]:
        entry["resource"].pop("subscriberId", None)
        if entry["resource"]["resourceType"] == "Patient":
            entry["resource"].pop("identifier", None)
    result = to_request(bundle, payer_ids={})
    assert isinstance(result, list)
    codes = {(i.path.split(".")[-1], i.code) for i in result}
    assert ("subscriberId", "required") in codes
    assert ("identifier", "not-found") in codes


def test_unknown_code_system_for_category_is_refused() -> None:
    """A service category coded in a system other than X12 1365 cannot fill UM03: refused by path."""
    bundle = _load("ig-homecare")
    for item in bundle["entry"][0]["resource"]["item"]:
        item["category"]["coding"][0]["system"] = "http://example.org/made-up"
    issues = _issues(bundle)
    assert any(i.path.endswith("item[0].category.coding(x12-1365).code") for i in issues)


def test_fhir_structure_errors_named_by_path_without_values() -> None:
    """Wrong FHIR types are reported by path and kind; the submitted values never appear."""
    from mappings.pas.structure import structure_issues  # noqa: PLC0415 - the FHIR library is heavy

    bundle = _load("ig-homecare")
    bundle["entry"][0]["resource"]["item"][0]["sequence"] = "SECRET-SEQ"
    bundle["entry"][4]["resource"]["birthDate"] = "SECRET-DATE"
    issues = structure_issues(bundle)
    paths = {i.path for i in issues}
    assert "Bundle.entry[0].resource.item[0].sequence" in paths
    assert "Bundle.entry[4].resource.birthDate" in paths
    assert "SECRET" not in json.dumps(operation_outcome(issues))
    assert structure_issues(_load("ig-surgical")) == []


def test_readme_mapping_table_is_the_field_table() -> None:
    """README's PAS -> 278 table lists exactly the rows of mappings/rules/pas_278.toml."""
    from mappings.pas.table import readme_rows  # noqa: PLC0415 - only this test needs it

    readme = (FOLDER.parent.parent / "README.md").read_text(encoding="utf-8")
    rows = readme_rows()
    assert rows
    missing = [row for row in rows if row not in readme]
    assert missing == []
