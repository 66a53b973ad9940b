"""Differential test against LinuxForHealth x12 (an independent 270/271 reader with pydantic models).

Mutants of valid 270/271 files (segments deleted, duplicated, swapped; elements blanked; bad codes;
impossible dates; wrong HL parents; wrong SE01) are judged by our validator and by LinuxForHealth x12
in its own venv (``.cache/lfh-venv``, git-ignored; created here or by ``make lfh-venv``). Every
disagreement must be one of the documented cases below, each checked against the file itself; any
other disagreement fails the test and is a bug to fix on one side or the other.

Documented cases where LinuxForHealth x12 (0.57, pydantic 1) is wrong or says nothing:
* ``se_miscount``: it reports SE01 wrong although SE01 equals the real count (ST..SE inclusive): it
  counts only the segments its models keep, so LS/LE and repeats beyond its own limits (a second
  2100C DTP, which X279A1 allows) are left out.
* ``hl04_2000a``: it requires HL04 = 1 on 2000A, but a 271 rejected at 2000A (AAA) has no children.
* ``aaa_reason``: its AAA03 list at 2100C/2100D lacks codes the TR3 allows there (75, 67, 72 ...).
* ``crash``: it raised something other than a validation error (KeyError on some EB and EQ loops):
  that is no verdict.
Cases where we are stricter, and right per the TR3:
* ``segment_order``: a swapped or repeated segment out of the guide's order (IK304 2/3/7);
  LinuxForHealth matches segments by id within a loop and does not check their order.
* ``code_list``: a code the guide's list does not have, in an element LinuxForHealth types as text.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.x12mutants import Mutant, mutants, split
from transactions.findings import Finding, ValidationReport
from transactions.validation import validate

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".cache" / "lfh-venv"
JUDGE = ROOT / "tests" / "lfh_judge.py"
PER_BASE = 16


def _bases() -> list[Path]:
    folders = [ROOT / "tests" / "public_x12" / "270", ROOT / "tests" / "public_x12" / "271"]
    files = [p for f in folders for p in f.iterdir() if p.is_file() and not p.name.endswith((".json", ".md"))]
    files += [p for p in (ROOT / "sample_edi" / "responses").glob("271-*.x12") if "batch" not in p.name]
    files += [p for p in (ROOT / "sample_edi" / "requests").glob("270-*.x12") if "batch" not in p.name]
    return sorted(files)


def _importable(python: Path) -> bool:
    if not python.exists():
        return False
    probe = [str(python), "-c", "import linuxforhealth.x12.io"]
    return subprocess.run(probe, capture_output=True, timeout=120, check=False).returncode == 0


@pytest.fixture(scope="module")
def lfh_python() -> Path:
    """The other tool's interpreter; installed on first use, skipped only when it cannot be installed."""
    python = VENV / "bin" / "python"
    steps = [
        [sys.executable, "-m", "venv", str(VENV)],
        [str(python), "-m", "pip", "install", "--quiet", "linuxforhealth-x12", "pydantic<2"],
    ]
    for step in [] if _importable(python) else steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            pytest.skip(f"LinuxForHealth x12 cannot be installed here: {done.stderr.strip()[-300:]}")
    return python


def _errors(report: ValidationReport) -> list[Finding]:
    return [
        f
        for i in report.interchanges
        for g in i.groups
        for s in g.sets
        for f in s.findings
        if f.severity == "error"
    ]


def ours_valid(report: ValidationReport) -> bool:
    return report.fatal is None and report.all_accepted and not _errors(report)


def _se_count_right(text: str) -> bool:
    segs, _, sep = split(text)
    st = next(i for i, s in enumerate(segs) if s.startswith(f"ST{sep}"))
    se = next(i for i, s in enumerate(segs) if s.startswith(f"SE{sep}"))
    return segs[se].split(sep)[1] == str(se - st + 1)


def explain(  # noqa: PLR0911 - one return per documented case reads like the list above
    m: Mutant, report: ValidationReport, lfh_valid: bool, lfh_error: str
) -> str | None:
    """The documented case behind a disagreement (module docstring), checked on the file; else None."""
    if not lfh_valid:
        if not lfh_error.startswith("ValidationError"):
            return "crash"
        if "hierarchical_child_code" in lfh_error and re.search(r"HL\*1\*\*20\*0", m.text):
            return "hl04_2000a"
        if "reject_reason_code" in lfh_error and re.search(r"loop_2100[cd]", lfh_error):
            return "aaa_reason"
        if "SE segment count" in lfh_error and _se_count_right(m.text):
            return "se_miscount"
        return None
    errors = _errors(report)
    if (
        m.op in ("swap", "duplicate")
        and errors
        and all(f.code in ("2", "3", "7") and not f.is_element for f in errors)
    ):
        return "segment_order"
    if m.op == "bad_code" and any(
        f.segment == m.tag and (f.element == f"{m.tag}01" or not f.is_element) for f in errors
    ):
        return "code_list"  # a bad qualifier also leaves the segment with no place in the loop (IK304)
    return None


def test_mutants_agree_with_linuxforhealth_or_a_documented_case(lfh_python: Path, tmp_path: Path) -> None:
    """Every verdict difference on ~400 mutants of valid 270/271 files is a documented case."""
    items: list[Mutant] = []
    for seed, base in enumerate(_bases()):
        text = base.read_bytes().decode("latin-1")
        items.append(Mutant(f"{base.name} base", "base", "", text))
        items += [Mutant(f"{base.name} {m.name}", m.op, m.tag, m.text) for m in mutants(text, seed, PER_BASE)]
    paths = []
    for n, m in enumerate(items):
        path = tmp_path / f"{n}.x12"
        path.write_text(m.text, encoding="latin-1")
        paths.append(str(path))
    run = subprocess.run(
        [str(lfh_python), str(JUDGE)],
        input=json.dumps(paths),
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    verdicts = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(verdicts) == len(items)
    cases: Counter[str] = Counter()
    unexplained = []
    for m, theirs in zip(items, verdicts, strict=True):
        report = validate(m.text.encode("latin-1"))
        if ours_valid(report) == theirs["valid"]:
            cases["agree"] += 1
            continue
        why = explain(m, report, theirs["valid"], theirs["error"] or "")
        if why is None:
            unexplained.append(
                (
                    m.name,
                    ours_valid(report),
                    theirs["error"],
                    [(f.segment, f.element, f.code) for f in _errors(report)],
                )
            )
        else:
            cases[why] += 1
    assert not unexplained, unexplained
    assert cases["agree"] > len(items) // 2, dict(cases)
