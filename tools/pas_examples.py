"""Write the FHIR PAS example request bundles of sample_edi/fhir/ (run from the repository root).

The ``ig-*`` bundles transcribe the Da Vinci PAS implementation guide's own examples (HL7,
input/fsh/Examples.fsh, CC0) from FSH into FHIR JSON; the ``own-*`` bundles are this project's and
cover the cases the guide has no example for (inpatient admission of a dependent, outpatient imaging
with several items, DME, extension, cancellation).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BASE = "http://example.org/fhir/"
X12 = "https://codesystem.x12.org/005010/"
SD = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/"
POS = "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set"
HCPCS = "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
CPT = "http://www.ama-assn.org/go/cpt"
INFO = "http://hl7.org/fhir/us/davinci-pas/CodeSystem/PASSupportingInfoType"
NPI = "http://hl7.org/fhir/sid/us-npi"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"


def cc(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    coding = {"system": system, "code": code}
    return {"coding": [{**coding, "display": display} if display else coding]}


def ext(name: str, **value: Any) -> dict[str, Any]:
    return {"url": SD + "extension-" + name, **value}


def ref(kind: str, rid: str) -> dict[str, str]:
    return {"reference": f"{kind}/{rid}"}


UMO: dict[str, Any] = {
    "resourceType": "Organization",
    "id": "UMOExample",
    "active": True,
    "type": [cc(X12 + "98", "X3")],
    "name": "DR. JOE SMITH CORPORATION",
    "identifier": [{"system": NPI, "value": "8189991234"}],
    "address": [
        {
            "line": ["111 1ST STREET"],
            "city": "SAN DIEGO",
            "state": "CA",
            "country": "US",
            "postalCode": "92101",
        }
    ],
}
INSURER: dict[str, Any] = {
    "resourceType": "Organization",
    "id": "InsurerExample",
    "active": True,
    "type": [cc(X12 + "98", "PR")],
    "name": "MARYLAND CAPITAL INSURANCE COMPANY",
    "identifier": [{"system": NPI, "value": "1234567893"}],
}
COVERAGE: dict[str, Any] = {
    "resourceType": "Coverage",
    "id": "InsuranceExample",
    "status": "active",
    "subscriberId": "1122334455",
    "beneficiary": ref("Patient", "SubscriberExample"),
    "relationship": {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship", "code": "self"},
            {"system": X12 + "1069", "code": "18"},
        ]
    },
    "payor": [ref("Organization", "InsurerExample")],
}
SUBSCRIBER: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "SubscriberExample",
    "identifier": [{"system": "http://example.org/MIN", "value": "12345678901"}],
    "name": [{"family": "SMITH", "given": ["JOE"]}],
    "gender": "male",
}
PRACTITIONER: dict[str, Any] = {
    "resourceType": "Practitioner",
    "id": "ReferralPractitionerExample",
    "identifier": [{"system": NPI, "value": "1234567893"}],
    "name": [{"family": "WATSON", "given": ["SUSAN"]}],
}
ROLE: dict[str, Any] = {
    "resourceType": "PractitionerRole",
    "id": "ReferralPractitionerRoleExample",
    "practitioner": ref("Practitioner", "ReferralPractitionerExample"),
    "location": [ref("Location", "ReferralLocationExample")],
    "telecom": [{"system": "phone", "value": "4029993456"}],
}
LOCATION: dict[str, Any] = {
    "resourceType": "Location",
    "id": "ReferralLocationExample",
    "name": "REFERRAL CLINIC",
    "address": {
        "line": ["111 1ST STREET"],
        "city": "SAN DIEGO",
        "state": "CA",
        "country": "US",
        "postalCode": "92101",
    },
}


def claim(cid: str, trace: str, items: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "Claim",
        "id": cid,
        "identifier": [
            {
                "system": "http://example.org/PATIENT_EVENT_TRACE_NUMBER",
                "value": trace,
                "assigner": {
                    "identifier": {"system": "http://example.org/USER_ASSIGNED", "value": "9012345678"}
                },
            }
        ],
        "status": "active",
        "type": cc("http://terminology.hl7.org/CodeSystem/claim-type", "professional"),
        "use": "preauthorization",
        "patient": ref("Patient", "SubscriberExample"),
        "created": "2005-05-02T11:01:00+05:00",
        "insurer": ref("Organization", "InsurerExample"),
        "provider": ref("Organization", "UMOExample"),
        "priority": cc("http://terminology.hl7.org/CodeSystem/processpriority", "normal"),
        "insurance": [{"sequence": 1, "focal": True, "coverage": ref("Coverage", "InsuranceExample")}],
        "item": items,
        **more,
    }


def item(
    seq: int,
    category: str,
    product: dict[str, Any],
    *,
    request_type: str = "HS",
    cert: str = "I",
    pos: str = "11",
    **more: Any,
) -> dict[str, Any]:
    extensions = [
        ext("serviceItemRequestType", valueCodeableConcept=cc(X12 + "1525", request_type)),
        ext("certificationType", valueCodeableConcept=cc(X12 + "1322", cert)),
    ]
    return {
        "extension": extensions + more.pop("extension", []),
        "sequence": seq,
        "category": cc(X12 + "1365", category),
        "productOrService": product,
        "locationCodeableConcept": cc(POS, pos),
        **more,
    }


def bundle(bid: str, value: str, stamp: str, resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "id": bid,
        "identifier": {"system": "http://example.org/SUBMITTER_TRANSACTION_IDENTIFIER", "value": value},
        "type": "collection",
        "timestamp": stamp,
        "entry": [{"fullUrl": f"{BASE}{r['resourceType']}/{r['id']}", "resource": r} for r in resources],
    }


COMMON: list[dict[str, Any]] = [UMO, INSURER, COVERAGE, SUBSCRIBER]


def ig_referral() -> dict[str, Any]:
    doc_info = {
        "url": SD + "extension-documentInformation",
        "extension": [
            {"url": "reportTypeCode", "valueCodeableConcept": cc(X12 + "755", "PY", "Physician's Report")},
            {
                "url": "transmissionMethod",
                "valueCodeableConcept": cc(X12 + "756", "EL", "Electronically Only"),
            },
            {"url": "controlNumber", "valueString": "111222"},
            {
                "url": "description",
                "valueString": "A procedure note included to provide details of what has "
                "been tried before the referral.",
            },
        ],
    }
    the_item = item(
        1,
        "3",
        cc(X12 + "1365", "3", "Consultation"),
        request_type="SC",
        extension=[
            ext(
                "itemTraceNumber",
                valueIdentifier={"system": "http://example.org/ITEM_TRACE_NUMBER", "value": "1122334"},
            ),
            ext("authorizationNumber", valueString="1122445"),
            ext("administrationReferenceNumber", valueString="9988311"),
            ext("requestedService", valueReference=ref("ServiceRequest", "ReferralRequestExample")),
            ext("epsdtIndicator", valueBoolean=False),
            ext("revenueUnitRateLimit", valueDecimal=100.00),
        ],
        careTeamSequence=[1],
        diagnosisSequence=[1],
    )
    the_claim = claim(
        "ReferralAuthorizationExample",
        "111099",
        [the_item],
        extension=[ext("levelOfServiceCode", valueCodeableConcept=cc(X12 + "1338", "U", "Urgent"))],
        diagnosis=[
            {
                "sequence": 1,
                "diagnosisCodeableConcept": cc(ICD, "G89.4"),
                "extension": [ext("diagnosisRecordedDate", valueDate="2021-05-10")],
            }
        ],
        careTeam=[{"sequence": 1, "provider": ref("PractitionerRole", "ReferralPractitionerRoleExample")}],
        supportingInfo=[
            {
                "sequence": 1,
                "category": cc(INFO, "additionalInformation"),
                "extension": [doc_info],
                "valueReference": ref("DocumentReference", "DocumentReferenceExample"),
            }
        ],
    )
    service_request = {
        "resourceType": "ServiceRequest",
        "id": "ReferralRequestExample",
        "status": "active",
        "intent": "order",
        "subject": ref("Patient", "SubscriberExample"),
        "code": cc(X12 + "1365", "3", "Consultation"),
        "quantityQuantity": {"value": 1, "unit": "visit", "system": "http://unitsofmeasure.org", "code": "1"},
    }
    document = {
        "resourceType": "DocumentReference",
        "id": "DocumentReferenceExample",
        "status": "current",
        "type": cc("http://loinc.org", "11505-5"),
        "subject": ref("Patient", "SubscriberExample"),
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain",
                    "data": "VGhpcyBpcyBzYW1wbGUgYmFzZTY0IGVuY29kaW5nLg==",
                }
            }
        ],
    }
    return bundle(
        "ReferralAuthorizationBundleExample",
        "A12345",
        "2005-05-02T11:01:00+05:00",
        [the_claim, *COMMON, service_request, ROLE, PRACTITIONER, LOCATION, document],
    )


def _homecare_items() -> list[dict[str, Any]]:
    return [item(1, "42", cc(HCPCS, "G0154")), item(2, "42", cc(HCPCS, "B4184"))]


def ig_homecare() -> dict[str, Any]:
    the_claim = claim(
        "HomecareAuthorizationExample", "111099", _homecare_items(), created="2019-07-20T11:01:00+05:00"
    )
    return bundle(
        "HomecareAuthorizationBundleExample", "B56789", "2005-05-02T14:30:00+05:00", [the_claim, *COMMON]
    )


def ig_homecare_update() -> dict[str, Any]:
    cancelled = item(2, "42", cc(HCPCS, "B4184"), cert="3")
    cancelled["modifierExtension"] = [{"url": SD + "modifierextension-infoCancelled", "valueBoolean": True}]
    added = item(3, "42", cc(HCPCS, "B4185"), extension=[ext("infoChanged", valueCode="added")])
    update = claim(
        "HomecareAuthorizationUpdateExample",
        "111099-UPDATE",
        [item(1, "42", cc(HCPCS, "G0154")), cancelled, added],
        created="2019-07-20T11:01:00+05:00",
        related=[{"claim": ref("Claim", "HomecareAuthorizationExample")}],
    )
    original = claim(
        "HomecareAuthorizationExample", "111099", _homecare_items(), created="2019-07-20T11:01:00+05:00"
    )
    return bundle(
        "HomecareAuthorizationUpdateBundleExample",
        "A12345",
        "2005-05-02T11:01:00+05:00",
        [update, *COMMON, original],
    )


def ig_medical_services() -> dict[str, Any]:
    the_item = item(
        1,
        "1",
        cc(HCPCS, "99212", "Established Office Visit"),
        request_type="IN",
        servicedDate="2005-05-10",
        extension=[
            ext("authorizationNumber", valueString="1122344"),
            ext("administrationReferenceNumber", valueString="33441122"),
        ],
    )
    the_claim = claim("MedicalServicesAuthorizationExample", "111099", [the_item])
    return bundle(
        "MedicalServicesAuthorizationBundleExample",
        "5269367",
        "2005-05-02T11:01:00+05:00",
        [the_claim, *COMMON],
    )


def ig_surgical() -> dict[str, Any]:
    the_item = item(
        1,
        "2",
        cc(HCPCS, "33510", "Under Venous Grafting Only for Coronary Artery Bypass"),
        request_type="AR",
        pos="21",
        extension=[
            ext(
                "itemTraceNumber",
                valueIdentifier={"system": "http://example.org/ITEM_TRACE_NUMBER", "value": "1122334"},
            ),
            ext("authorizationNumber", valueString="1122445"),
            ext("administrationReferenceNumber", valueString="9988311"),
        ],
        careTeamSequence=[1],
        diagnosisSequence=[1],
    )
    the_claim = claim(
        "SurgicalAuthorizationRequestExample",
        "16139462398",
        [the_item],
        extension=[
            ext("levelOfServiceCode", valueCodeableConcept=cc(X12 + "1338", "E", "Elective")),
            ext("encounter", valueReference=ref("Encounter", "SurgicalEncounterExample")),
        ],
        diagnosis=[{"sequence": 1, "diagnosisCodeableConcept": cc(ICD, "C18.9")}],
        careTeam=[{"sequence": 1, "provider": ref("PractitionerRole", "SurgicalPractitionerRoleExample")}],
        supportingInfo=[
            {
                "sequence": 1,
                "category": cc(INFO, "admissionDates"),
                "timingPeriod": {"start": "2020-07-02", "end": "2020-07-09"},
            }
        ],
        created="2020-06-24T07:34:00+05:00",
    )
    the_claim["identifier"][0]["assigner"]["identifier"]["value"] = "3030240928"
    the_claim["type"] = cc("http://terminology.hl7.org/CodeSystem/claim-type", "institutional")
    encounter = {
        "resourceType": "Encounter",
        "id": "SurgicalEncounterExample",
        "status": "planned",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": ref("Patient", "SubscriberExample"),
        "period": {"start": "2020-07-02", "end": "2020-07-09"},
    }
    role = {**ROLE, "id": "SurgicalPractitionerRoleExample"}
    return bundle(
        "SurgicalRequestBundleExample",
        "16139462398",
        "2020-06-24T07:34:00+05:00",
        [the_claim, *COMMON, encounter, role, PRACTITIONER, LOCATION],
    )


def _own(
    bid: str,
    the_claim: dict[str, Any],
    extra: list[dict[str, Any]] | None = None,
    common: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return bundle(
        bid, bid.upper()[:20], "2026-12-02T09:00:00-05:00", [the_claim, *(common or COMMON), *(extra or [])]
    )


def own_inpatient_dependent() -> dict[str, Any]:
    child = {
        "resourceType": "Patient",
        "id": "DependentExample",
        "identifier": [{"system": "http://example.org/MIN", "value": "12345678902"}],
        "name": [{"family": "SMITH", "given": ["JESSE"]}],
        "gender": "female",
        "birthDate": "2012-01-18",
    }
    coverage = {
        **COVERAGE,
        "beneficiary": ref("Patient", "DependentExample"),
        "subscriber": ref("Patient", "SubscriberExample"),
        "relationship": cc("http://terminology.hl7.org/CodeSystem/subscriber-relationship", "child"),
    }
    room = item(
        1,
        "1",
        cc(HCPCS, "99223"),
        request_type="AR",
        pos="21",
        revenue=cc("https://www.nubc.org/CodeSystem/RevenueCodes", "0120"),
        quantity={"value": 3},
    )
    the_claim = claim(
        "InpatientAdmissionExample",
        "PAS-INPT-0001",
        [room],
        patient=ref("Patient", "DependentExample"),
        extension=[ext("levelOfServiceCode", valueCodeableConcept=cc(X12 + "1338", "U"))],
        diagnosis=[
            {"sequence": 1, "diagnosisCodeableConcept": cc(ICD, "J18.9")},
            {"sequence": 2, "diagnosisCodeableConcept": cc(ICD, "E11.9")},
        ],
        supportingInfo=[
            {"sequence": 1, "category": cc(INFO, "admissionReviewStart"), "timingDate": "2026-12-05"},
            {"sequence": 2, "category": cc(INFO, "admissionReviewEnd"), "timingDate": "2026-12-08"},
        ],
    )
    the_claim["type"] = cc("http://terminology.hl7.org/CodeSystem/claim-type", "institutional")
    return _own("own-inpatient-dependent", the_claim, [child], [UMO, INSURER, coverage, SUBSCRIBER])


def own_outpatient_imaging() -> dict[str, Any]:
    def mri(seq: int, code: str) -> dict[str, Any]:
        trace = ext(
            "itemTraceNumber", valueIdentifier={"system": "http://example.org/ITEM", "value": f"IMG-{seq}"}
        )
        return item(
            seq,
            "62",
            cc(CPT, code),
            pos="22",
            servicedDate="2026-12-10",
            quantity={"value": 1},
            extension=[trace],
        )

    the_claim = claim(
        "OutpatientImagingExample",
        "PAS-IMG-0001",
        [mri(1, "70553"), mri(2, "72148")],
        diagnosis=[
            {"sequence": 1, "diagnosisCodeableConcept": cc(ICD, "R51.9")},
            {"sequence": 2, "diagnosisCodeableConcept": cc(ICD, "M54.50")},
        ],
        careTeam=[{"sequence": 1, "provider": ref("PractitionerRole", "ReferralPractitionerRoleExample")}],
    )
    return _own("own-outpatient-imaging", the_claim, [ROLE, PRACTITIONER, LOCATION])


def own_dme() -> dict[str, Any]:
    device = {
        "resourceType": "DeviceRequest",
        "id": "WheelchairExample",
        "status": "active",
        "intent": "order",
        "codeCodeableConcept": cc(HCPCS, "E1223"),
        "subject": ref("Patient", "SubscriberExample"),
    }
    chair = item(
        1,
        "12",
        cc(HCPCS, "E1223"),
        pos="12",
        quantity={"value": 1},
        servicedPeriod={"start": "2026-12-15", "end": "2027-03-15"},
        extension=[ext("requestedService", valueReference=ref("DeviceRequest", "WheelchairExample"))],
    )
    the_claim = claim(
        "DmeExample",
        "PAS-DME-0001",
        [chair],
        diagnosis=[{"sequence": 1, "diagnosisCodeableConcept": cc(ICD, "G35")}],
    )
    return _own("own-dme", the_claim, [device])


def own_extension() -> dict[str, Any]:
    visits = item(
        1,
        "42",
        cc(HCPCS, "G0154"),
        cert="4",
        quantity={"value": 10},
        servicedPeriod={"start": "2027-01-01", "end": "2027-01-31"},
        extension=[ext("authorizationNumber", valueString="SIM000001")],
    )
    the_claim = claim(
        "ExtensionExample",
        "PAS-EXT-0001",
        [visits],
        diagnosis=[{"sequence": 1, "diagnosisCodeableConcept": cc(ICD, "I50.9")}],
    )
    return _own("own-extension", the_claim)


def own_cancellation() -> dict[str, Any]:
    scan = item(
        1,
        "62",
        cc(CPT, "72148"),
        cert="3",
        pos="22",
        extension=[ext("authorizationNumber", valueString="SIM000004")],
    )
    the_claim = claim(
        "CancellationExample",
        "PAS-CAN-0001",
        [scan],
        diagnosis=[{"sequence": 1, "diagnosisCodeableConcept": cc(ICD, "M54.50")}],
    )
    return _own("own-cancellation", the_claim)


EXAMPLES = {
    "ig-referral": ig_referral,
    "ig-homecare": ig_homecare,
    "ig-homecare-update": ig_homecare_update,
    "ig-medical-services": ig_medical_services,
    "ig-surgical": ig_surgical,
    "own-inpatient-dependent": own_inpatient_dependent,
    "own-outpatient-imaging": own_outpatient_imaging,
    "own-dme": own_dme,
    "own-extension": own_extension,
    "own-cancellation": own_cancellation,
}


def main() -> None:
    folder = Path("sample_edi/fhir")
    folder.mkdir(parents=True, exist_ok=True)
    for name, make in EXAMPLES.items():
        (folder / f"{name}.json").write_text(json.dumps(make(), indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
