"""Golden mapping tests: every 271 and 278 response in sample_edi/ and in the public corpus has an
expected JSON beside it, and the mapped output equals it field for field.

Set X12GW_UPDATE_GOLDEN=1 to (re)write the expected files after a deliberate mapping change; review
the diff before committing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gateway.cli.map_cmd import load_rules, map_bytes
from mappings.records import AuthorizationRecord, EligibilityResult
from transactions.jsonform import to_dict

ROOT = Path(__file__).resolve().parent.parent
OVERRIDES = ROOT / "sample_edi" / "overrides"
RESPONSE_FILES = sorted(
    p
    for folder in (
        ROOT / "sample_edi" / "responses",
        ROOT / "tests" / "public_x12" / "271",
        ROOT / "tests" / "public_x12" / "278resp",
    )
    for p in folder.iterdir()
    if p.is_file() and not p.name.endswith((".json", ".md"))
)


def expected_path(path: Path) -> Path:
    return path.with_name(path.name + ".expected.json")


def mapped(path: Path) -> dict[str, object]:
    report, records = map_bytes(path.read_bytes(), load_rules(OVERRIDES))
    assert report.fatal is None
    return {
        "eligibility": [to_dict(r) for r in records if isinstance(r, EligibilityResult)],
        "authorizations": [to_dict(r) for r in records if isinstance(r, AuthorizationRecord)],
    }


@pytest.mark.parametrize("path", RESPONSE_FILES, ids=lambda p: p.name[:60])
def test_mapping_matches_golden_file(path: Path) -> None:
    """The records mapped from the response equal its expected JSON, field for field."""
    actual = mapped(path)
    golden = expected_path(path)
    if os.environ.get("X12GW_UPDATE_GOLDEN") == "1":
        golden.write_text(json.dumps(actual, indent=2, sort_keys=True) + "\n")
    assert golden.exists(), f"no golden file {golden.name}; run with X12GW_UPDATE_GOLDEN=1 and review it"
    assert actual == json.loads(golden.read_text())


def test_golden_corpus_covers_both_kinds() -> None:
    """The corpus has 271s and 278 responses (guards against an empty parametrisation)."""
    names = [p.name for p in RESPONSE_FILES]
    assert sum("271" in n for n in names) >= 8
    assert sum("278" in n or "response" in n for n in names) >= 10
