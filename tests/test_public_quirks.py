"""sample_edi/public/: third-party public files and our own envelope-quirk cases, each with its expected
acknowledgment verdicts and, for responses, golden records carrying the business verdict.

Set X12GW_UPDATE_GOLDEN=1 to rewrite the ``.expected.json`` files after a deliberate change (review the
diff); the verdict table below is written by hand and is never regenerated.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from gateway.cli.map_cmd import document, load_rules, map_file
from transactions.findings import Finding, ValidationReport

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = ROOT / "sample_edi" / "public"
FILES = sorted(p for p in PUBLIC.iterdir() if p.is_file() and p.suffix not in (".json", ".md"))

# file -> (TA1 note or None, [(map, IK501, IK502 codes)], mapped records' validation verdicts)
EXPECTED: dict[str, tuple[str | None, list[tuple[str | None, str, tuple[str, ...]]], list[str]]] = {
    "LinuxForHealth-x12__subscriber.271": ("000", [("271", "A", ())], ["accepted"]),
    "LinuxForHealth-x12__subscriber-health-benefit-check-error.271": (
        "000",
        [("271", "R", ("3",))],  # SE02 4323 vs ST02 4321: the file's own deliberate error
        ["rejected"],
    ),
    "LinuxForHealth-x12__demo.autoaccident.837": ("000", [("837P", "E", ())], []),
    "LinuxForHealth-x12__drug-in-office.837": ("000", [("837P", "E", ())], []),
    "quirk-270-in-HB-group.x12": ("000", [("270", "R", ("18",))], []),
    "quirk-271-in-HS-group.x12": (None, [("271", "R", ("18",))], ["rejected"]),
    "quirk-278-gs08-names-X279.x12": (None, [("278resp", "R", ("19",))], ["rejected"]),
    "quirk-271-isa12-00401.x12": ("003", [("271", "A", ())], ["rejected"]),
    "quirk-271-isa11-U.x12": ("024", [], []),
    "quirk-271-bom-crlf-indented.x12": (None, [("271", "A", ())], ["accepted"]),
    "quirk-278-medicaid-placeholder-dob.x12": (None, [("278resp", "A", ())], ["accepted"]),
    "quirk-278-line-inherits-event-decision.x12": (None, [("278resp", "A", ())], ["accepted"]),
    "quirk-278-um02-bad-code.x12": (None, [("278resp", "R", ("5",))], ["rejected"]),
    "quirk-271-dependent-and-subscriber-benefits.x12": (None, [("271", "A", ())], ["accepted"]),
    "quirk-271-lower-case-segment-in-one-of-two-sets.x12": (
        None,
        [("271", "R", ("5",)), ("271", "A", ())],
        ["rejected", "accepted"],
    ),
}


def _finding(f: Finding) -> str:
    return " ".join(x for x in (f.severity, f"{f.segment}@{f.position}", f.element, f.code) if x)


def verdicts(report: ValidationReport) -> dict[str, Any]:
    return {
        "interchanges": [
            {
                "ta1": None if i.ta1 is None else f"{i.ta1.ack_code} {i.ta1.note_code}",
                "warnings": list(i.warnings),
                "groups": [
                    {
                        "ack_code": g.ack_code,
                        "group_codes": list(g.group_codes),
                        "sets": [
                            {
                                "map": s.map,
                                "ack_code": s.ack_code,
                                "set_codes": list(s.set_codes),
                                "notes": list(s.notes),
                                "findings": [_finding(f) for f in s.findings],
                            }
                            for s in g.sets
                        ],
                    }
                    for g in i.groups
                ],
            }
            for i in report.interchanges
        ]
    }


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name[:60])
def test_public_file_verdicts_and_records(path: Path) -> None:
    """Hand-written verdicts hold, and verdicts plus records equal the golden file."""
    report, mapped = map_file(path.read_bytes(), load_rules(None))
    ta1, sets, validations = EXPECTED[path.name]
    (ic,) = report.interchanges
    assert (ic.ta1.note_code if ic.ta1 else None) == ta1
    assert [(s.map, s.ack_code, s.set_codes) for g in ic.groups for s in g.sets] == sets
    doc = document(mapped)
    records = doc["eligibility"] + doc["authorizations"]
    assert [r["validation"] for r in records] == validations
    actual = {"verdicts": verdicts(report), **doc}
    golden = path.with_name(path.name + ".expected.json")
    if os.environ.get("X12GW_UPDATE_GOLDEN") == "1":
        golden.write_text(json.dumps(actual, indent=2, sort_keys=True) + "\n")
    assert actual == json.loads(golden.read_text())


def test_every_public_file_has_an_expected_verdict() -> None:
    """The hand-written table covers the folder exactly (no file slips in unjudged)."""
    assert {p.name for p in FILES} == set(EXPECTED)
