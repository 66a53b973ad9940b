"""The Da Vinci PAS front door over real HTTP: bundles in, 278s through the simulator, ClaimResponses out."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from sqlalchemy import func, select

from gateway.runtime.context import Context
from gateway.runtime.runner import Gateway
from gateway.store import schema as s
from gateway.web import apiauth
from mappings.pas.paths import PAS_SD
from payersim.demo import run_until_answered
from tests.api_support import ROOT, serving

pytest_plugins = ["tests.api_fixtures"]
EXAMPLES = ROOT / "sample_edi" / "fhir"


def call(port: int, path: str, body: Any = None, key: str | None = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/fhir+json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        conn.request(
            "GET" if body is None else "POST",
            path,
            body=None if body is None else json.dumps(body),
            headers=headers,
        )
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))
    return data


def reviews(bundle: dict[str, Any]) -> list[tuple[int, str | None, str | None]]:
    out = []
    for item in bundle["entry"][0]["resource"]["item"]:
        action = next(e for e in item["extension"] if e["url"] == PAS_SD + "extension-reviewAction")
        parts = {p["url"]: p for p in action["extension"]}
        coding = (
            parts.get(PAS_SD + "extension-reviewActionCode", {}).get("valueCodeableConcept", {}).get("coding")
        )
        out.append(
            (
                item["itemSequence"],
                coding[0]["code"] if coding else None,
                parts.get("number", {}).get("valueString"),
            )
        )
    return out


def requests_count(ctx: Context) -> int:
    with ctx.store.read() as tx:
        return int(tx.conn.execute(select(func.count()).select_from(s.requests)).scalar_one())


def test_every_example_is_submitted_answered_and_inquired(workspace: tuple[Path, Context]) -> None:
    """Each PAS example: $submit answers a queued ClaimResponse (items pended); after the run loop and the
    simulator, $inquire answers each item with the simulator's decision and its certification number."""
    config_path, ctx = workspace
    _, key = apiauth.add_client(ctx.store, "ehr", apiauth.SCOPES)
    names = sorted(p.stem for p in EXAMPLES.glob("*.json"))
    with serving(config_path) as port:
        for name in names:
            status, answer = call(port, "/fhir/Claim/$submit", example(name), key)
            assert status == 200, (name, answer)
            Bundle.model_validate(answer)
            assert answer["entry"][0]["resource"]["outcome"] == "queued"
            assert {code for _, code, _ in reviews(answer)} == {"A4"}
        assert run_until_answered(Gateway(ctx), 120, expected=len(names), progress=lambda _m: None)
        decided = {}
        for name in names:
            bundle = example(name)
            status, answer = call(port, "/fhir/Claim/$inquire", bundle, key)
            assert status == 200, (name, answer)
            Bundle.model_validate(answer)
            decided[name] = reviews(answer)
    assert decided["own-cancellation"] == [(1, "C", None)]
    assert [code for _, code, _ in decided["own-outpatient-imaging"]] == ["A1", "A1"]
    for name in ("ig-surgical", "ig-homecare", "own-dme", "ig-referral"):
        assert all(code == "A1" and number for _, code, number in decided[name]), (name, decided[name])
    assert [seq for seq, _, _ in decided["ig-homecare-update"]] == [1, 3]
    shared = {decided[n][0][2] for n in ("ig-homecare", "ig-medical-services", "ig-referral")}
    assert len(shared) == 3, "the IG examples share a claim identifier: items tell them apart"


@pytest.mark.parametrize(
    ("breakage", "status", "expression"),
    [
        ("no-claim", 422, "Bundle.entry"),
        ("unresolved-patient", 422, "Bundle.entry[0].resource.patient.reference"),
        ("no-member-id", 422, "Bundle.entry[3].resource.subscriberId"),
        ("unknown-category-system", 422, "Bundle.entry[0].resource.item[0].category.coding(x12-1365).code"),
        ("wrong-fhir-type", 400, "Bundle.entry[0].resource.item[0].sequence"),
    ],
)
def test_broken_bundle_gets_operation_outcome_and_nothing_is_sent(
    workspace: tuple[Path, Context], breakage: str, status: int, expression: str
) -> None:
    """A bundle that cannot become a valid 278 is answered with an OperationOutcome naming the path,
    and no request is recorded."""
    config_path, ctx = workspace
    _, key = apiauth.add_client(ctx.store, "ehr", apiauth.SCOPES)
    bundle = example("ig-homecare")
    claim = bundle["entry"][0]["resource"]
    if breakage == "no-claim":
        bundle["entry"] = bundle["entry"][1:]
    elif breakage == "unresolved-patient":
        claim["patient"] = {"reference": "Patient/Elsewhere"}
    elif breakage == "no-member-id":
        del bundle["entry"][3]["resource"]["subscriberId"]
        del bundle["entry"][4]["resource"]["identifier"]
    elif breakage == "unknown-category-system":
        claim["item"][0]["category"]["coding"][0]["system"] = "http://example.org/codes"
    else:
        claim["item"][0]["sequence"] = "one"
    with serving(config_path) as port:
        got, outcome = call(port, "/fhir/Claim/$submit", bundle, key)
    assert got == status, outcome
    assert outcome["resourceType"] == "OperationOutcome"
    assert expression in [e for issue in outcome["issue"] for e in issue["expression"]]
    assert requests_count(ctx) == 0


def test_authentication_and_scopes_are_the_apis(workspace: tuple[Path, Context]) -> None:
    """No key: 401; a key without authorizations:write: 403 (both OperationOutcomes); metadata is open."""
    config_path, ctx = workspace
    _, reader = apiauth.add_client(ctx.store, "reader", ("authorizations:read",))
    with serving(config_path) as port:
        assert call(port, "/fhir/Claim/$submit", example("ig-homecare"))[0] == 401
        status, outcome = call(port, "/fhir/Claim/$submit", example("ig-homecare"), reader)
        assert (status, outcome["resourceType"]) == (403, "OperationOutcome")
        status, capability = call(port, "/fhir/metadata")
    assert status == 200
    CapabilityStatement.model_validate(capability)
    assert requests_count(ctx) == 0
