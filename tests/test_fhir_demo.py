"""`x12gw demo --fhir` runs every PAS example through the front door, CORE real time and the simulator."""

from __future__ import annotations

import io
from pathlib import Path

from payersim.demo_fhir import run_fhir_demo


def test_fhir_demo_answers_every_bundle(tmp_path: Path) -> None:
    """Each example gets a 200 ClaimResponse on $submit and on $inquire; the cancel is C, the rest A1
    or pended (A4), and the IG examples that share one claim identifier get their own answers."""
    out = io.StringIO()
    assert run_fhir_demo(keep=tmp_path / "ws", timeout=60, out=out) == 0, out.getvalue()
    inquired = out.getvalue().split("after the run loop, $inquire:")[1]
    lines = {line.split()[0]: line for line in inquired.strip().splitlines()}
    assert " 1:C" in lines["own-cancellation"]
    numbers = {lines[n].split("/")[-1] for n in ("ig-homecare", "ig-medical-services", "ig-referral")}
    assert len(numbers) == 3, lines
    assert all(" 200 " in line for line in lines.values())
