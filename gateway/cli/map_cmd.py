"""``x12gw map FILE [--json] [--overrides DIR]``: the records a response file yields.

Every readable 271/278 response set is mapped whatever its 999 verdict; each record carries that
verdict (``validation``: accepted, accepted_with_errors or rejected) and its findings. Exit 0 when
records were produced (or the file validates), 1 when nothing could be mapped and validation failed
(findings are printed), 2 when it is not X12.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gateway.cli.validate_cmd import print_report
from mappings.mapper import MappedSet, MappingRules, Record, default_rules, map_validation, with_overrides
from mappings.records import AuthorizationRecord, EligibilityResult
from transactions.findings import ValidationReport, finding_json
from transactions.jsonform import to_dict
from transactions.validation import Options, validate_detailed


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("map", help="map 271/278 responses into eligibility results and authorization records")
    p.add_argument("file", type=Path)
    p.add_argument("--json", action="store_true", help="print {eligibility: [...], authorizations: [...]}")
    p.add_argument("--overrides", type=Path, help="folder of per-payer mapping override files (*.xml)")
    p.set_defaults(func=run)


def load_rules(folder: Path | None) -> MappingRules:
    rules = default_rules()
    if folder is None:
        return rules
    return with_overrides(rules, [(p.name, p.read_bytes()) for p in sorted(folder.glob("*.xml"))])


def map_file(data: bytes, rules: MappingRules) -> tuple[ValidationReport, list[MappedSet]]:
    """Validate, then map every readable response set of a file (see module docstring)."""
    validation = validate_detailed(data, Options(keep_placed=True))
    return validation.report, map_validation(validation, rules)


def map_bytes(data: bytes, rules: MappingRules) -> tuple[ValidationReport, list[Record]]:
    """The report and every record of a file, in file order."""
    report, mapped = map_file(data, rules)
    return report, [r for m in mapped for r in m.records]


def _record_doc(record: Record, m: MappedSet) -> dict[str, Any]:
    return {
        **to_dict(record),
        "validation": m.validation,
        "findings": [finding_json(f) for f in m.report.findings],
    }


def document(mapped: list[MappedSet]) -> dict[str, Any]:
    """The ``--json`` document: records with their verdicts, and every mapped set's verdict."""
    return {
        "eligibility": [
            _record_doc(r, m) for m in mapped for r in m.records if isinstance(r, EligibilityResult)
        ],
        "authorizations": [
            _record_doc(r, m) for m in mapped for r in m.records if isinstance(r, AuthorizationRecord)
        ],
        "transaction_sets": [
            {
                "interchange": m.interchange.control_number,
                "group": m.group.control_number,
                "control_number": m.report.control_number,
                "map": m.report.map,
                "ack_code": m.report.ack_code,
                "set_codes": list(m.report.set_codes),
                "validation": m.validation,
                "records": len(m.records),
                "errors": [finding_json(f) for f in m.report.findings if f.severity == "error"],
            }
            for m in mapped
        ],
    }


def run(args: argparse.Namespace) -> int:
    report, mapped = map_file(args.file.read_bytes(), load_rules(args.overrides))
    if report.fatal or not report.interchanges:
        print(f"x12gw: {args.file}: not X12: {report.fatal}", file=sys.stderr)
        return 2
    produced = any(m.records for m in mapped)
    if not report.all_accepted:
        print_report(args.file, report, stream=sys.stderr)
        if not produced:
            return 1
    doc = document(mapped)
    if args.json:
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for e in doc["eligibility"]:
        trace = ",".join(e["trace_numbers"]) or e["bht_reference"]
        print(f"eligibility {trace}: {e['coverage']} {e['plan_name'] or ''} [{e['validation']}]")
    for a in doc["authorizations"]:
        dates = f"{a['effective_from'] or ''}..{a['effective_to'] or ''}"
        cert = a["certification_number"] or "-"
        print(f"authorization {a['trace_number']}: {a['status']} cert {cert} {dates} [{a['validation']}]")
    return 0
