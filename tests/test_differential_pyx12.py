"""Differential test for 837P and 999 against pyx12's own engine (``x12n_document`` with its own maps
and error handler), over mutants of valid files (see tests/x12mutants.py).

Our validator walks the same pyx12 maps for 837P and 999, so a disagreement is where our driver adds or
corrects a check. Each must be one of these documented cases, checked on the file:
* ``no_map``: pyx12 raises EngineError for 005010X222A2 (it ships X222A1 only); we read it with the
  X222A1 map as another errata (the ``version`` quirk).
* ``pwk_dme``: pyx12 places ``PWK*CT`` (DME certificate of medical necessity, 837P 2400) on the
  attachment PWK node and rejects PWK02 ``AD``; we try the loop's sibling PWK node.
* ``ctx_max_use``: pyx12 does not restart the count of the 999 Business Unit CTX per IK3 loop, so the
  999 guide's own example fails; we count uses per loop instance.
* ``loop_repeat_gap``: a duplicated segment that opens a loop (CLM, SBR, AK2) leaves the first loop
  instance without its required segments; pyx12 does not notice, we report IK304 3.
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from pathlib import Path

from pyx12.params import ParamsBase
from pyx12.x12n_document import x12n_document

from tests.x12mutants import Mutant, mutants
from transactions.findings import Finding, ValidationReport
from transactions.validation import validate

ROOT = Path(__file__).resolve().parent.parent
PER_BASE = 10


def _bases() -> list[Path]:
    folders = [ROOT / "tests" / "public_x12" / "837p", ROOT / "tests" / "public_x12" / "999"]
    files = [p for f in folders for p in f.iterdir() if p.is_file() and not p.name.endswith((".json", ".md"))]
    return sorted(files + sorted((ROOT / "sample_edi" / "claims").glob("*.x12")))


def pyx12_verdict(text: str) -> str:
    """'valid', 'invalid' or 'crash:<exception>' from pyx12's own validation (its log silenced: it
    would write the data)."""
    log = logging.getLogger("pyx12")
    was = log.disabled
    log.disabled = True
    try:
        ok = x12n_document(ParamsBase(), io.StringIO(text), io.StringIO(), None)
    except Exception as exc:  # noqa: BLE001 - any refusal to judge is the other engine's answer
        return f"crash:{type(exc).__name__}"
    finally:
        log.disabled = was
    return "valid" if ok else "invalid"


def _errors(report: ValidationReport) -> list[Finding]:
    return [
        f
        for i in report.interchanges
        for g in i.groups
        for s in g.sets
        for f in s.findings
        if f.severity == "error"
    ]


def explain(m: Mutant, report: ValidationReport, theirs: str) -> str | None:
    """The documented case behind a disagreement (module docstring), checked on the file; else None."""
    if theirs == "crash:EngineError" and "005010X222A2" in m.text:
        return "no_map"
    if theirs == "invalid" and "PWK*CT*" in m.text:
        return "pwk_dme"
    if theirs == "invalid" and "ST*999*" in m.text and "CTX*SITUATIONAL TRIGGER" in m.text:
        return "ctx_max_use"
    errors = _errors(report)
    if (
        theirs == "valid"
        and m.op == "duplicate"
        and errors
        and all(f.code == "3" and not f.is_element for f in errors)
    ):
        return "loop_repeat_gap"
    return None


def test_mutants_agree_with_pyx12_or_a_documented_case() -> None:
    """Every verdict difference on mutants of valid 837P and 999 files is a documented case."""
    cases: Counter[str] = Counter()
    unexplained = []
    for seed, base in enumerate(_bases()):
        text = base.read_bytes().decode("latin-1")
        for m in [Mutant(f"{base.name} base", "base", "", text), *mutants(text, seed, PER_BASE)]:
            report = validate(m.text.encode("latin-1"))
            ours = report.fatal is None and report.all_accepted and not _errors(report)
            theirs = pyx12_verdict(m.text)
            if ours == (theirs == "valid"):
                cases["agree"] += 1
                continue
            why = explain(m, report, theirs)
            if why is None:
                unexplained.append(
                    (
                        base.name,
                        m.name,
                        ours,
                        theirs,
                        [(f.segment, f.element, f.code) for f in _errors(report)],
                    )
                )
            else:
                cases[why] += 1
    assert not unexplained, unexplained
    assert cases["agree"] > sum(cases.values()) // 2, dict(cases)
