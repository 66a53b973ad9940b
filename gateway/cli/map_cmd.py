"""``x12gw map FILE [--json | --jsonl] [--overrides DIR]``: the records a response file yields.

Every readable 271/278 response set is mapped whatever its 999 verdict; each record carries that
verdict (``validation``: accepted, accepted_with_errors or rejected) and its findings. Exit 0 when
records were produced (or the file validates), 1 when nothing could be mapped and validation failed
(findings are printed), 2 when it is not X12. ``--jsonl`` reads the file in chunks and prints one JSON
document per transaction set as soon as it is validated and mapped (``--json``'s
``eligibility``/``authorizations`` lists for that set), so memory holds one set at a time; there a
record's verdict is its set's own (a group or interchange rejected later shows only in the report).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gateway.cli.validate_cmd import print_report, read_chunks
from gateway.runtime import gcpolicy
from mappings.mapper import (
    RECORD_FOR_MAP,
    MappedSet,
    MappingRules,
    Record,
    default_rules,
    map_set,
    map_validation,
    with_overrides,
)
from mappings.records import AuthorizationRecord, EligibilityResult
from transactions.findings import Finding, SetReport, ValidationReport, finding_json
from transactions.jsonform import to_dict
from transactions.validation import ENGINES, Options, ValidationStream, validate_detailed


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("map", help="map 271/278 responses into eligibility results and authorization records")
    p.add_argument("file", type=Path)
    output = p.add_mutually_exclusive_group()
    output.add_argument(
        "--json", action="store_true", help="print {eligibility: [...], authorizations: [...]}"
    )
    output.add_argument("--jsonl", action="store_true", help="one JSON line per transaction set, streamed")
    p.add_argument("--overrides", type=Path, help="folder of per-payer mapping override files (*.xml)")
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="compiled",
        help="validation engine: compiled tables (default) or pyx12's map walker (the reference)",
    )
    p.set_defaults(func=run)


def load_rules(folder: Path | None) -> MappingRules:
    rules = default_rules()
    if folder is None:
        return rules
    return with_overrides(rules, [(p.name, p.read_bytes()) for p in sorted(folder.glob("*.xml"))])


def map_file(
    data: bytes, rules: MappingRules, engine: str = "compiled"
) -> tuple[ValidationReport, list[MappedSet]]:
    """Validate, then map every readable response set of a file (see module docstring)."""
    validation = validate_detailed(data, Options(keep_placed=True, engine=engine))
    return validation.report, map_validation(validation, rules)


def map_bytes(data: bytes, rules: MappingRules) -> tuple[ValidationReport, list[Record]]:
    """The report and every record of a file, in file order."""
    report, mapped = map_file(data, rules)
    return report, [r for m in mapped for r in m.records]


def _record_doc(record: Record, validation: str, findings: tuple[Finding, ...]) -> dict[str, Any]:
    return {
        **to_dict(record),
        "validation": validation,
        "findings": [finding_json(f) for f in findings],
    }


def _records_json(records: list[Record], validation: str, findings: tuple[Finding, ...]) -> dict[str, Any]:
    return {
        "eligibility": [
            _record_doc(r, validation, findings) for r in records if isinstance(r, EligibilityResult)
        ],
        "authorizations": [
            _record_doc(r, validation, findings) for r in records if isinstance(r, AuthorizationRecord)
        ],
    }


def document(mapped: list[MappedSet]) -> dict[str, Any]:
    """The ``--json`` document: records with their verdicts, and every mapped set's verdict."""
    return {
        "eligibility": [
            _record_doc(r, m.validation, m.report.findings)
            for m in mapped
            for r in m.records
            if isinstance(r, EligibilityResult)
        ],
        "authorizations": [
            _record_doc(r, m.validation, m.report.findings)
            for m in mapped
            for r in m.records
            if isinstance(r, AuthorizationRecord)
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


def _own_verdict(s: SetReport) -> str:
    """A set's 999 verdict from its own report alone (what is known while streaming)."""
    if s.ack_code == "R":
        return "rejected"
    return "accepted" if s.ack_code == "A" and not s.findings else "accepted_with_errors"


def stream_jsonl(path: Path, rules: MappingRules, engine: str = "compiled") -> tuple[ValidationReport, bool]:
    """Print each set's records as one JSON line as soon as the set is validated; return the report
    and whether any record was produced."""
    produced = False
    with path.open("rb") as fh:
        stream = ValidationStream(read_chunks(fh), Options(keep_placed=True, engine=engine))
        for item in stream:
            report = item.validated.report
            readable = report.map in RECORD_FOR_MAP
            records = map_set(item.validated, item.interchange, item.group, rules) if readable else []
            produced = produced or bool(records)
            doc = {
                "interchange": item.interchange,
                "group": item.group,
                "set": report.control_number,
                "ack_code": report.ack_code,
                **_records_json(records, _own_verdict(report), report.findings),
            }
            sys.stdout.write(json.dumps(doc, separators=(",", ":")) + "\n")
    assert stream.report is not None  # noqa: S101 - set when iteration ends
    return stream.report, produced


def run(args: argparse.Namespace) -> int:
    rules = load_rules(args.overrides)
    gcpolicy.apply(warm=False)  # the rules (overrides too) are loaded; maps compile as the file needs
    mapped: list[MappedSet] = []
    if args.jsonl:
        report, produced = stream_jsonl(args.file, rules, args.engine)
    else:
        report, mapped = map_file(args.file.read_bytes(), rules, args.engine)
        produced = any(m.records for m in mapped)
    if report.fatal or not report.interchanges:
        print(f"x12gw: {args.file}: not X12: {report.fatal}", file=sys.stderr)
        return 2
    if not report.all_accepted:
        print_report(args.file, report, stream=sys.stderr)
        if not produced:
            return 1
    if args.jsonl:
        return 0
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
