"""Every public TR3-style 270/271/278 example validates against our maps with zero errors; the one
example whose HL nesting is a known typo is rejected with exactly that finding."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import public_files
from transactions.findings import ValidationReport
from transactions.validation import Options, validate

# The TR3 non-emergency-transportation request chains SS under SS (HL*6*5*SS*0); its own response
# example uses HL*6*4*SS*0. We report the typo instead of accepting it.
KNOWN_INVALID = {
    "kputnam-stupidedi__request-for-non-emergency-transportation.edi": {
        ("HL", 28, "HL04", "7"),
        ("HL", 30, "HL02", "7"),
        ("HL", 30, "HL04", "7"),
        ("HL", 32, "HL02", "7"),
    }
}
FILES = [p for kind in ("270", "271", "278req", "278resp") for p in public_files(kind)]


def _errors(report: ValidationReport) -> set[tuple[str, int, str | None, str]]:
    return {
        (f.segment, f.position, f.element, f.code)
        for i in report.interchanges
        for g in i.groups
        for s in g.sets
        for f in s.findings
        if f.severity == "error"
    }


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name[:50]}")
def test_public_example_validates(path: Path) -> None:
    """Zero errors (warnings only for pre-errata version codes and HL04 in rejection examples)."""
    report = validate(path.read_bytes())
    assert report.fatal is None
    expected = KNOWN_INVALID.get(path.name, set())
    assert _errors(report) == expected
    assert report.all_accepted == (not expected)


def test_pre_errata_271_is_refused_when_strict() -> None:
    """With lenient versions off, a 271 that says 005010X279 is rejected as another errata (IK502 19)."""
    path = next(p for p in public_files("271") if "response-to-generic-request-by-clinic" in p.name)
    report = validate(path.read_bytes(), Options(leniency=frozenset()))
    (s,) = [s for i in report.interchanges for g in i.groups for s in g.sets]
    assert s.set_codes[0] == "19"


def test_public_corpus_kinds_present() -> None:
    """All four kinds are in the corpus."""
    assert len(FILES) >= 20
