"""A small path language over FHIR JSON, enough for the PAS -> 278 field table.

FHIRPath proper is a large language; the mapping table needs four kinds of step, so it gets exactly
those and stays readable as data:

* ``name``            a property (a list property yields every element),
* ``name[2]``         one element of a list property,
* ``ext(alias)``      the extensions (or modifier extensions) whose URL is the alias's PAS extension,
* ``coding(alias)``   the codings of a CodeableConcept whose ``system`` is the alias's code system,
* ``identifier(alias)`` the identifiers whose ``system`` is the alias's (``identifier(npi)``).

Evaluation yields every value reached, in document order; the caller takes the first or all.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

PAS_SD = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/"

# code system aliases used in the field table (X12 code lists as published by X12 for FHIR use)
SYSTEMS = {
    "x12-98": "https://codesystem.x12.org/005010/98",
    "x12-306": "https://codesystem.x12.org/005010/306",
    "x12-1322": "https://codesystem.x12.org/005010/1322",
    "x12-1338": "https://codesystem.x12.org/005010/1338",
    "x12-1365": "https://codesystem.x12.org/005010/1365",
    "x12-1525": "https://codesystem.x12.org/005010/1525",
    "x12-755": "https://codesystem.x12.org/005010/755",
    "x12-756": "https://codesystem.x12.org/005010/756",
    "x12-886": "https://codesystem.x12.org/external/886",
    "icd10cm": "http://hl7.org/fhir/sid/icd-10-cm",
    "hcpcs": "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
    "cpt": "http://www.ama-assn.org/go/cpt",
    "revenue": "https://www.nubc.org/CodeSystem/RevenueCodes",
    "pos": "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set",
    "npi": "http://hl7.org/fhir/sid/us-npi",
    "supporting-info": "http://hl7.org/fhir/us/davinci-pas/CodeSystem/PASSupportingInfoType",
    "subscriber-relationship": "http://terminology.hl7.org/CodeSystem/subscriber-relationship",
}

# extension aliases whose PAS name differs between IG releases (both spellings are accepted)
_EXTENSION_NAMES = {
    "requestType": ("serviceItemRequestType", "serviceItemReqestType"),
    "levelOfService": ("levelOfServiceCode", "levelOfServiceType"),
    "infoCancelled": ("infoCancelled", "infoCancelledFlag"),
}

_STEP = re.compile(
    r"^(?:(?P<call>ext|coding|identifier)\((?P<arg>[^)]*)\)|(?P<name>[A-Za-z]+)(?:\[(?P<index>\d+)\])?)$"
)


def extension_urls(alias: str) -> frozenset[str]:
    """Every URL an extension alias stands for (``extension-`` and ``modifierextension-`` forms)."""
    names = _EXTENSION_NAMES.get(alias, (alias,))
    return frozenset(f"{PAS_SD}{kind}-{n}" for n in names for kind in ("extension", "modifierextension"))


def _children(value: Any, name: str) -> Iterator[Any]:
    if isinstance(value, dict) and name in value:
        found = value[name]
        yield from found if isinstance(found, list) else (found,)


def _step(value: Any, step: str) -> Iterator[Any]:
    match = _STEP.match(step)
    if match is None:
        raise ValueError(f"bad path step {step!r}")
    if match["call"] == "ext":
        urls = extension_urls(match["arg"]) | {match["arg"]}  # sub-extensions use bare names
        for key in ("extension", "modifierExtension"):
            yield from (e for e in _children(value, key) if isinstance(e, dict) and e.get("url") in urls)
    elif match["call"] is not None:  # coding(alias) / identifier(alias): filtered by system
        system = SYSTEMS.get(match["arg"], match["arg"])
        found = _children(value, match["call"])
        yield from (c for c in found if isinstance(c, dict) and c.get("system") == system)
    elif match["index"] is not None:
        items = list(_children(value, match["name"]))
        index = int(match["index"])
        if index < len(items):
            yield items[index]
    else:
        yield from _children(value, match["name"])


def evaluate(root: Any, path: str) -> list[Any]:
    """Every value ``path`` reaches from ``root`` (an empty path is the root itself)."""
    values = [root]
    for step in filter(None, path.split(".")):
        values = [child for value in values for child in _step(value, step)]
    return values


def first(root: Any, path: str) -> Any:
    """The first value ``path`` reaches, or None."""
    found = evaluate(root, path)
    return found[0] if found else None
