"""Map validated response transaction sets into records, with per-payer rule overrides."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

from mappings.authorization import authorization_record
from mappings.eligibility import eligibility_result
from mappings.engine import RecordRule, extract_records, load_overrides, load_rules
from mappings.records import AuthorizationRecord, ControlRef, EligibilityResult
from transactions.document import build_tree, to_xml
from transactions.findings import GroupReport, InterchangeReport, SetReport, set_validation
from transactions.validation import ValidatedSet, Validation

Record = EligibilityResult | AuthorizationRecord
RECORD_FOR_MAP = {"271": "eligibility", "278resp": "authorization"}


@dataclass(frozen=True)
class MappingRules:
    """Default record rules plus per-payer replacements (by payer id)."""

    default: dict[str, RecordRule]
    payers: dict[str, dict[str, RecordRule]] = field(default_factory=dict)

    def for_payer(self, payer_id: str | None) -> dict[str, RecordRule]:
        return self.payers.get(payer_id or "", self.default)


@functools.cache
def default_rules() -> MappingRules:
    data = files("mappings").joinpath("rules", "default.xml").read_bytes()
    return MappingRules(load_rules(data, "mappings/rules/default.xml"))


def with_overrides(rules: MappingRules, documents: Iterable[tuple[str, bytes]]) -> MappingRules:
    """``rules`` plus the payer overrides in each (name, xml bytes) document."""
    payers = dict(rules.payers)
    for name, data in documents:
        payers.update(load_overrides(data, rules.default, name))
    return MappingRules(rules.default, payers)


def _build(rule_name: str, fields: dict[str, Any], control: ControlRef) -> Record:
    if rule_name == "eligibility":
        return eligibility_result(fields, control)
    return authorization_record(fields, control)


def map_document(
    document: Any, map_abbr: str, control: ControlRef, rules: MappingRules | None = None
) -> list[Record]:
    """Records of one response transaction set given its XML form (``transactions.document.to_xml``)."""
    rule_name = RECORD_FOR_MAP.get(map_abbr)
    if rule_name is None:
        return []
    rules = rules or default_rules()
    base = rules.default[rule_name]
    field_sets = extract_records(document, base)
    payer_id = field_sets[0].get("payer_id") if field_sets else None
    payer_rules = rules.for_payer(payer_id)
    if payer_rules is not rules.default:
        field_sets = extract_records(document, payer_rules[rule_name])
    return [_build(rule_name, f, control) for f in field_sets]


def map_set(
    validated: ValidatedSet, interchange: str, group: str, rules: MappingRules | None = None
) -> list[Record]:
    """Records of a validated set (it must have been validated with ``keep_placed=True``)."""
    report = validated.report
    if report.map is None or not validated.placed:
        return []
    tree = build_tree(validated.placed)
    document = to_xml(tree, set_id=report.set_id, control_number=report.control_number)
    return map_document(document, report.map, ControlRef(interchange, group, report.control_number), rules)


@dataclass(frozen=True)
class MappedSet:
    """The records read from one response set, beside its acknowledgment verdict (``validation``:
    accepted, accepted_with_errors or rejected) and the report that explains it."""

    interchange: InterchangeReport
    group: GroupReport
    report: SetReport
    validation: str
    records: tuple[Record, ...]


def map_validation(validation: Validation, rules: MappingRules | None = None) -> list[MappedSet]:
    """Every readable 271/278 response set of a validated input, mapped whatever its 999 verdict
    (a payer's approval, denial or pend is never thrown away for an IG error). Interchanges and
    groups not addressed to us are left out: nothing from them is applied."""
    out: list[MappedSet] = []
    by_offset = {s.report.offset: s for s in validation.sets}
    for ic in validation.report.interchanges:
        if ic.misaddressed:
            continue
        for g in ic.groups:
            for s in g.sets:
                vs = by_offset.get(s.offset)
                if vs is None or s.map not in RECORD_FOR_MAP:
                    continue
                records = tuple(map_set(vs, ic.control_number, g.control_number, rules))
                out.append(MappedSet(ic, g, s, set_validation(ic, g, s), records))
    return out
