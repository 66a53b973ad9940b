"""The PAS -> 278 field table (``mappings/rules/pas_278.toml``) loaded as data.

The table is what README's mapping section shows and what ``request`` reads fields with, so the
document and the behaviour cannot drift apart.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from mappings.pas.bundle import Located
from mappings.pas.issues import Issue
from mappings.pas.paths import evaluate


@dataclass(frozen=True, slots=True)
class FieldRule:
    """One row: which 278 field, read from which context by which path, landing where in X12."""

    section: str
    name: str
    context: str
    path: str
    x12: str
    required: bool = False
    many: bool = False


def parse_table(data: bytes) -> dict[str, dict[str, FieldRule]]:
    """Section -> field name -> rule, from the TOML text."""
    raw: dict[str, Any] = tomllib.loads(data.decode("utf-8"))
    return {
        section: {name: FieldRule(section=section, name=name, **dict(spec)) for name, spec in fields.items()}
        for section, fields in raw.items()
    }


@functools.cache
def table() -> dict[str, dict[str, FieldRule]]:
    """The packaged table (read once per process; package data, not a file the gateway manages)."""
    return parse_table(files("mappings").joinpath("rules", "pas_278.toml").read_bytes())


def read(rule: FieldRule, where: Located | None, issues: list[Issue]) -> list[Any]:
    """Every value ``rule`` reaches in ``where``; a missing required one becomes an issue."""
    found = [v for v in evaluate(where.resource, rule.path) if v not in (None, "")] if where else []
    if not found and rule.required:
        base = where.path if where else f"<{rule.context}>"
        issues.append(Issue(f"{base}.{rule.path}", "required", f"required for X12 {rule.x12}"))
    return found


def read_one(rule: FieldRule, where: Located | None, issues: list[Issue]) -> Any:
    found = read(rule, where, issues)
    return found[0] if found else None


CONTEXTS = {
    "claim": "Claim",
    "item": "Claim.item",
    "patient": "Patient (Claim.patient; the subscriber's Patient for 2010C)",
    "subscriber": "Patient (subscriber)",
    "coverage": "Coverage (focal)",
    "insurer": "Organization (Claim.insurer)",
    "requester": "Claim.provider",
    "servicing": "Claim.careTeam[0].provider",
    "info": "Claim.supportingInfo",
}


def readme_rows() -> list[str]:
    """The README mapping table's rows, made from the table itself (a test keeps README in step)."""
    return [
        f"| `{r.section}.{r.name}` | {CONTEXTS[r.context]}: `{r.path}` | {r.x12} | "
        f"{'yes' if r.required else ''} |"
        for rows in table().values()
        for r in rows.values()
    ]
