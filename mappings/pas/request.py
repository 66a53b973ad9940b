"""A PAS request Bundle -> the gateway's 278 JSON request form (what an inbox file or the API takes).

Only translation happens here: the result is then checked by the same request models as any other
278 (``transactions.jsonform``), so a bundle and an inbox file are held to one standard. Every problem
is collected (not the first only) and named by FHIR path; values never appear in messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from mappings.pas.bundle import BundleIndex, Located
from mappings.pas.issues import Issue
from mappings.pas.paths import SYSTEMS, evaluate, first
from mappings.pas.table import FieldRule, read, read_one, table

CANCEL = "3"
_FOLLOW_UP = frozenset({"R", "S", "3", "4"})
_GENDER = {"male": "M", "female": "F", "other": "U", "unknown": "U"}
_SELF = frozenset({"self", "18"})  # subscriber-relationship#self, X12 1069 individual relationship 18


@dataclass(frozen=True, slots=True)
class ItemLink:
    """A Claim.item and the 278 service line that carries it (None: the item is the event itself)."""

    sequence: int
    line_trace: str | None
    cancelled: bool = False


@dataclass(frozen=True, slots=True)
class PasSubmission:
    """What the front door sends and what it needs later to answer in FHIR terms."""

    request: dict[str, Any]
    items: tuple[ItemLink, ...]
    bundle_identifier: dict[str, Any] | None
    claim_identifier: dict[str, Any] | None
    claim_type: dict[str, Any] | None
    references: dict[str, str]  # patient/insurer/requester/claim -> the reference the EHR used


def _rule(section: str, name: str) -> FieldRule:
    return table()[section][name]


def _is_cancelled(item: dict[str, Any]) -> bool:
    flags = evaluate(item, "ext(infoCancelled).valueBoolean")
    kind = first(item, "ext(certificationType).valueCodeableConcept.coding(x12-1322).code")
    return any(flags) or kind == CANCEL


class _Reader:
    """The resources of one bundle by context name, and the issues found while reading them."""

    def __init__(self, bundle: dict[str, Any]) -> None:
        self.index = BundleIndex.of(bundle)
        self.issues: list[Issue] = []
        self.where: dict[str, Located | None] = {}

    def value(self, section: str, name: str, context: str | None = None) -> Any:
        rule = _rule(section, name)
        return read_one(rule, self.where.get(context or rule.context), self.issues)

    def values(self, section: str, name: str, context: str | None = None) -> list[Any]:
        rule = _rule(section, name)
        return read(rule, self.where.get(context or rule.context), self.issues)

    def follow(self, located: Located | None, element: str, *, required: bool = True) -> Located | None:
        if located is None:
            return None
        ref = located.resource.get(element)
        return self.index.resolve(ref, f"{located.path}.{element}", self.issues, required=required)


def _locate(reader: _Reader, bundle: dict[str, Any]) -> Located | None:
    """Find the Claim and every resource the mapping reads, recording unresolved references."""
    claim = reader.index.first_of_type("Claim")
    if claim is None:
        reader.issues.append(Issue("Bundle.entry", "required", "a PAS request bundle holds one Claim"))
        return None
    if bundle.get("entry", [{}])[0].get("resource") is not claim.resource:
        reader.issues.append(Issue("Bundle.entry[0]", "structure", "the Claim must be the first entry"))
    w = reader.where
    w["claim"] = claim
    w["patient"] = reader.follow(claim, "patient")
    w["insurer"] = reader.follow(claim, "insurer")
    w["requester"] = _person_or_org(reader, reader.follow(claim, "provider"))
    insurance = [i for i in claim.resource.get("insurance") or () if isinstance(i, dict)]
    focal = next((i for i in insurance if i.get("focal")), insurance[0] if insurance else None)
    cov_path = f"{claim.path}.insurance[{insurance.index(focal) if focal else 0}]"
    w["coverage"] = reader.index.resolve((focal or {}).get("coverage"), f"{cov_path}.coverage", reader.issues)
    w["subscriber"] = _subscriber(reader)
    team = (claim.resource.get("careTeam") or [None])[0]
    if isinstance(team, dict):
        where = reader.index.resolve(
            team.get("provider"), f"{claim.path}.careTeam[0].provider", reader.issues
        )
        w["servicing"] = _person_or_org(reader, where)
    return claim


def _person_or_org(reader: _Reader, where: Located | None) -> Located | None:
    """A PractitionerRole stands for its Practitioner (whose name and NPI the 278 needs)."""
    if where is not None and where.resource.get("resourceType") == "PractitionerRole":
        return reader.follow(where, "practitioner")
    return where


def _subscriber(reader: _Reader) -> Located | None:
    coverage = reader.where.get("coverage")
    if coverage is None:
        return reader.where.get("patient")
    codes = evaluate(coverage.resource, "relationship.coding.code")
    if not codes or _SELF.intersection(codes):
        return reader.where.get("patient")
    return reader.follow(coverage, "subscriber")


def _person(reader: _Reader, context: str, *, member_id: bool) -> dict[str, Any]:
    person: dict[str, Any] = {
        "last_name": reader.value("person", "last_name", context),
        "first_name": reader.value("person", "first_name", context),
    }
    birth = reader.value("person", "birth_date", context)
    if birth:
        person["birth_date"] = birth
        gender = reader.value("person", "gender", context)
        if gender in _GENDER:
            person["gender"] = _GENDER[gender]
    if member_id:
        person["member_id"] = _member_id(reader)
    return person


def _member_id(reader: _Reader) -> Any:
    coverage = reader.where.get("coverage")
    found = first(coverage.resource, "subscriberId") if coverage else None
    if found:
        return found
    patient = reader.where.get("subscriber")
    fallback = first(patient.resource, "identifier.value") if patient else None
    if not fallback:
        reader.value("person", "member_id")  # records the issue with the table's X12 location
    return fallback


def _provider(reader: _Reader, section: str) -> dict[str, Any] | None:
    where = reader.where.get(section)
    if where is None:
        return None
    name = reader.value(section, "name")
    provider: dict[str, Any] = {"npi": reader.value(section, "npi")}
    if isinstance(name, dict):  # a Practitioner's HumanName (a list in FHIR; first taken)
        provider["name"] = name.get("family")
        given = name.get("given") or []
        if given:
            provider["first_name"] = given[0]
    else:
        provider["name"] = name
    return provider


def _payer(reader: _Reader, payer_ids: Mapping[str, str]) -> dict[str, Any]:
    name = reader.value("payer", "name")
    identifiers = reader.values("payer", "identifier")
    keys = [f"{i.get('system', '')}|{i.get('value', '')}" for i in identifiers if isinstance(i, dict)]
    payer_id = next((payer_ids[k] for k in keys if k in payer_ids), None)
    if payer_id is None and identifiers:
        where = reader.where.get("insurer")
        reader.issues.append(
            Issue(
                f"{where.path if where else 'Claim.insurer'}.identifier",
                "not-found",
                "no identifier of the insurer is in this gateway's payer directory ([fhir.payers])",
            )
        )
    return {"name": name, "id": payer_id, "id_qualifier": "PI"}


def _items(claim: Located) -> list[Located]:
    items = [i for i in claim.resource.get("item") or () if isinstance(i, dict)]
    return [Located(item, f"{claim.path}.item[{n}]") for n, item in enumerate(items)]


def _line(reader: _Reader, item: Located) -> dict[str, Any] | None:
    """The 2000F line for one item, or None when the item names a service type (the event itself)."""
    reader.where["item"] = item
    code = reader.value("line", "procedure") or reader.value("line", "procedure_cpt")
    revenue = reader.value("line", "revenue_code")
    if code is None and revenue is None:
        return None
    line: dict[str, Any] = {}
    if code is not None:
        line["procedure"] = {"code": code, "modifiers": reader.values("line", "modifiers")}
    if revenue is not None:
        line["revenue_code"] = revenue
    quantity = reader.value("line", "quantity")
    if quantity is not None:
        try:
            line["quantity"] = str(Decimal(str(quantity)))
        except InvalidOperation:
            reader.issues.append(Issue(f"{item.path}.quantity.value", "value", "not a number"))
    when = reader.value("line", "service_date")
    period = reader.value("line", "service_period")
    if when:
        line["service_date"] = {"start": when}
    elif isinstance(period, dict) and period.get("start"):
        line["service_date"] = {"start": period["start"], "end": period.get("end") or period["start"]}
    sequence = item.resource.get("sequence")
    line["trace_number"] = reader.value("line", "trace_number") or f"ITEM{sequence}"
    return line


def _supporting(reader: _Reader, claim: Located, request: dict[str, Any]) -> None:
    """Admission/discharge and event dates and PWK attachments from Claim.supportingInfo."""
    attachments: list[dict[str, Any]] = []
    for n, info in enumerate(i for i in claim.resource.get("supportingInfo") or () if isinstance(i, dict)):
        reader.where["info"] = Located(info, f"{claim.path}.supportingInfo[{n}]")
        category = first(info, "category.coding(supporting-info).code")
        if category == "admissionDates":
            period = reader.value("info", "admission_period") or {}
            request["admission_date"] = period.get("start")
            if period.get("end"):
                request["discharge_date"] = period["end"]
        elif category == "admissionReviewStart":
            request["admission_date"] = reader.value("info", "admission_start")
        elif category == "admissionReviewEnd":
            request["discharge_date"] = reader.value("info", "admission_end")
        elif category == "patientEvent":
            period = reader.value("info", "event_period") or {}
            request["event_dates"] = {"start": period.get("start"), "end": period.get("end")}
        elif category == "additionalInformation":
            report = reader.value("info", "report_type")
            if report:
                attachment = {"report_type": report, "transmission": reader.value("info", "transmission")}
                control = reader.value("info", "control_number")
                attachments.append({**attachment, "control_number": control} if control else attachment)
    if attachments:
        request["attachments"] = attachments


def _event(reader: _Reader, lead: Located, *, cancelling: bool) -> dict[str, Any]:
    reader.where["item"] = lead
    kind = reader.value("event", "certification_type") or "I"
    request: dict[str, Any] = {
        "type": "278",
        "trace_number": reader.value("event", "trace_number"),
        "request_category": reader.value("event", "request_category"),
        "certification_type": CANCEL if cancelling else kind,
        "service_type": reader.value("event", "service_type"),
        "facility_code": reader.value("event", "facility_code"),
        "facility_code_qualifier": "B",
        "diagnoses": [{"code": c} for c in reader.values("event", "diagnoses")],
    }
    assigner = reader.value("event", "trace_assigner")
    if isinstance(assigner, str) and len(assigner) == 10:
        request["trace_assigner"] = assigner
    level = reader.value("event", "level_of_service")
    if level:
        request["level_of_service"] = level
    if request["certification_type"] in _FOLLOW_UP:
        request["previous_certification"] = reader.value("event", "previous_certification")
    return request


def to_request(bundle: Any, *, payer_ids: Mapping[str, str]) -> PasSubmission | list[Issue]:
    """Translate a PAS request bundle; the issues instead when it cannot become a 278.

    ``payer_ids`` is the gateway's payer directory: ``"<identifier system>|<value>"`` of the
    insurer -> the payer id the clearinghouse knows (NM109 with PI), because PAS insurers are often
    named by NPI or other ids a 278 cannot carry as the payer's.
    """
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        return [Issue("Bundle", "structure", "the body must be a FHIR Bundle")]
    reader = _Reader(bundle)
    claim = _locate(reader, bundle)
    if claim is None:
        return reader.issues
    items = _items(claim)
    if not items:
        return [*reader.issues, Issue(f"{claim.path}.item", "required", "at least one item is required")]
    active = [i for i in items if not _is_cancelled(i.resource)]
    cancelling = not active
    request = _event(reader, (active or items)[0], cancelling=cancelling)
    request["payer"] = _payer(reader, payer_ids)
    request["requester"] = _provider(reader, "requester")
    servicing = _provider(reader, "servicing")
    if servicing is not None:
        request["servicing_provider"] = servicing
    _people(reader, request)
    _supporting(reader, claim, request)
    links, lines = _link_items(reader, items if cancelling else active, cancelling)
    if lines:
        request["lines"] = lines
    if reader.issues:
        return reader.issues
    return PasSubmission(
        request=request,
        items=tuple(links)
        + tuple(ItemLink(_seq(i), None, True) for i in items if i not in active and not cancelling),
        bundle_identifier=bundle.get("identifier"),
        claim_identifier=(claim.resource.get("identifier") or [None])[0],
        claim_type=claim.resource.get("type"),
        references={k: v for k, v in _references(claim, bundle).items() if v},
    )


def _seq(item: Located) -> int:
    sequence = item.resource.get("sequence")
    return sequence if isinstance(sequence, int) else 0


def _people(reader: _Reader, request: dict[str, Any]) -> None:
    subscriber, patient = reader.where.get("subscriber"), reader.where.get("patient")
    request["subscriber"] = _person(reader, "subscriber", member_id=True)
    if subscriber is not None and patient is not None and subscriber.resource is not patient.resource:
        request["dependent"] = _person(reader, "patient", member_id=False)


def _link_items(reader: _Reader, items: list[Located], cancelling: bool) -> tuple[list[ItemLink], list[Any]]:
    links: list[ItemLink] = []
    lines: list[dict[str, Any]] = []
    for item in items:
        line = _line(reader, item)
        if line is not None:
            lines.append(line)
        links.append(ItemLink(_seq(item), line["trace_number"] if line else None, cancelling))
    return links, lines


def _references(claim: Located, bundle: dict[str, Any]) -> dict[str, str | None]:
    """The references the EHR used, reused verbatim in the ClaimResponse (and the Claim's fullUrl)."""

    def ref(element: str) -> str | None:
        value = claim.resource.get(element)
        return value.get("reference") if isinstance(value, dict) else None

    entry: dict[str, Any] = next(
        (e for e in bundle.get("entry") or () if e.get("resource") is claim.resource), {}
    )
    return {
        "patient": ref("patient"),
        "insurer": ref("insurer"),
        "requester": ref("provider"),
        "claim": entry.get("fullUrl"),
    }


__all__ = ["SYSTEMS", "ItemLink", "PasSubmission", "to_request"]
