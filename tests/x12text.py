"""Helpers for tests that edit X12 as text: one segment per line, with counts re-computed on demand."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from transactions.envelope_writer import InterchangeHeader
from transactions.outbound import build_request_interchange
from transactions.requests_json import request_from_obj

ROOT = Path(__file__).resolve().parent.parent
WHEN = datetime(2026, 11, 26, 10, 30, tzinfo=UTC)


def built(name: str, control: int = 101) -> str:
    """The sample request ``sample_edi/requests/<name>.json`` built into an interchange, a segment a line."""
    req = request_from_obj(json.loads((ROOT / "sample_edi" / "requests" / f"{name}.json").read_text()))
    header = InterchangeHeader("ZZ", "X12GATEWAY", "ZZ", "CLEARINGHOUSE", control, WHEN)
    batch = build_request_interchange(
        [req],
        header,
        application_sender="X12GATEWAY",
        application_receiver="CLEARINGHOUSE",
        group_controls=[control],
        set_controls=[1],
        newline="\n",
    )
    return batch.data.decode()


def public(relative: str) -> str:
    """A public sample file with one segment per line (its delimiters kept)."""
    data = (ROOT / "tests" / "public_x12" / relative).read_bytes().decode("latin-1")
    term = data[105]
    lines = [s.strip("\r\n") for s in data.split(term)]
    return "".join(f"{s}{term}\n" for s in lines if s)


def fix_se(text: str) -> str:
    """Re-compute SE01 for every transaction set (for defects that add or remove segments)."""
    out: list[str] = []
    count = 0
    for line in text.splitlines(keepends=True):
        if line.startswith("ST"):
            count = 0
        count += 1
        if line.startswith("SE"):
            body, term = line.rstrip("\n")[:-1], line.rstrip("\n")[-1]
            sep = body[2]
            parts = body.split(sep)
            parts[1] = str(count)
            out.append(sep.join(parts) + term + "\n")
        else:
            out.append(line)
    return "".join(out)


def sub(text: str, pattern: str, replacement: str, count: int = 1) -> str:
    """Regex substitution that insists on matching (so a defect can never silently not apply)."""
    new, n = re.subn(pattern, replacement, text, count=count, flags=re.MULTILINE)
    assert n >= 1, f"pattern not found: {pattern}"
    return new
