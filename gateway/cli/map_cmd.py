"""``x12gw map FILE [--json | --jsonl] [--overrides DIR]``: the records a response file yields.

Exit 0 when the file validates and maps, 1 when it does not validate (findings are printed), 2 when it
is not X12. ``--jsonl`` reads the file in chunks and prints one JSON document per transaction set as
soon as it is validated and mapped (``--json``'s ``eligibility``/``authorizations`` lists for that set),
so memory holds one set at a time; a set or interchange rejected later still makes the exit code 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gateway.cli.validate_cmd import print_report, read_chunks
from mappings.mapper import MappingRules, Record, default_rules, map_set, with_overrides
from mappings.records import AuthorizationRecord, EligibilityResult
from transactions.findings import ValidationReport
from transactions.jsonform import to_dict
from transactions.validation import Options, ValidationStream, validate_detailed


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("map", help="map 271/278 responses into eligibility results and authorization records")
    p.add_argument("file", type=Path)
    output = p.add_mutually_exclusive_group()
    output.add_argument(
        "--json", action="store_true", help="print {eligibility: [...], authorizations: [...]}"
    )
    output.add_argument("--jsonl", action="store_true", help="one JSON line per transaction set, streamed")
    p.add_argument("--overrides", type=Path, help="folder of per-payer mapping override files (*.xml)")
    p.set_defaults(func=run)


def load_rules(folder: Path | None) -> MappingRules:
    rules = default_rules()
    if folder is None:
        return rules
    return with_overrides(rules, [(p.name, p.read_bytes()) for p in sorted(folder.glob("*.xml"))])


def map_bytes(data: bytes, rules: MappingRules) -> tuple[Any, list[Record]]:
    """Validate then map every accepted response set of a file."""
    validation = validate_detailed(data, Options(keep_placed=True))
    records: list[Record] = []
    by_offset = {s.report.offset: s for s in validation.sets}
    for ic in validation.report.interchanges:
        for g in ic.groups:
            for s in g.sets:
                vs = by_offset.get(s.offset)
                if vs is not None and s.accepted:
                    records += map_set(vs, ic.control_number, g.control_number, rules)
    return validation.report, records


def _records_json(records: list[Record]) -> dict[str, list[Any]]:
    return {
        "eligibility": [to_dict(r) for r in records if isinstance(r, EligibilityResult)],
        "authorizations": [to_dict(r) for r in records if isinstance(r, AuthorizationRecord)],
    }


def stream_jsonl(path: Path, rules: MappingRules) -> ValidationReport:
    """Print each set's records as one JSON line as soon as the set is validated; return the report."""
    with path.open("rb") as fh:
        stream = ValidationStream(read_chunks(fh), Options(keep_placed=True))
        for item in stream:
            report = item.validated.report
            records = map_set(item.validated, item.interchange, item.group, rules) if report.accepted else []
            doc = {
                "interchange": item.interchange,
                "group": item.group,
                "set": report.control_number,
                "ack_code": report.ack_code,
                **_records_json(records),
            }
            sys.stdout.write(json.dumps(doc, separators=(",", ":")) + "\n")
    assert stream.report is not None  # noqa: S101 - set when iteration ends
    return stream.report


def run(args: argparse.Namespace) -> int:
    rules = load_rules(args.overrides)
    records: list[Record] = []
    if args.jsonl:
        report = stream_jsonl(args.file, rules)
    else:
        report, records = map_bytes(args.file.read_bytes(), rules)
    if report.fatal or not report.interchanges:
        print(f"x12gw: {args.file}: not X12: {report.fatal}", file=sys.stderr)
        return 2
    if not report.all_accepted:
        print_report(args.file, report, stream=sys.stderr)
        return 1
    doc = _records_json(records)
    if args.jsonl:
        return 0
    if args.json:
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for e in doc["eligibility"]:
        trace = ",".join(e["trace_numbers"]) or e["bht_reference"]
        print(f"eligibility {trace}: {e['coverage']} {e['plan_name'] or ''}")
    for a in doc["authorizations"]:
        dates = f"{a['effective_from'] or ''}..{a['effective_to'] or ''}"
        cert = a["certification_number"] or "-"
        print(f"authorization {a['trace_number']}: {a['status']} cert {cert} {dates}")
    return 0
