"""``print_report`` writes to the ``sys.stdout`` of the moment it is called."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from gateway.cli.validate_cmd import print_report
from transactions.findings import ValidationReport


def test_print_report_writes_to_the_stdout_current_at_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default stream is today's sys.stdout, not the one bound when the module was imported (a
    pytest capture stream closed since then gave "I/O operation on closed file")."""
    swapped = io.StringIO()
    monkeypatch.setattr(sys, "stdout", swapped)
    print_report(Path("in.x12"), ValidationReport((), fatal="no ISA"))
    assert swapped.getvalue() == "in.x12: NOT X12: no ISA\n"
