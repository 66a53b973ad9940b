"""Streaming CLI output: ``validate --jsonl`` and ``map --jsonl`` say what ``--json`` says, set by set."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from tests.conftest import SAMPLE_EDI, public_files
from transactions.validation import Options, ValidationStream, validate

RESPONSES = sorted(p for p in (SAMPLE_EDI / "responses").glob("*.x12"))
VALIDATE_FILES = [*RESPONSES, *public_files("271"), *public_files("278req"), *public_files("999")]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


@pytest.mark.parametrize("path", VALIDATE_FILES, ids=lambda p: p.name[:50])
def test_validate_jsonl_says_what_json_says(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Per-set lines carry the sets of --json in order; the file line carries the rest; same exit code."""
    code_json, out_json = run_cli(capsys, "validate", "--json", str(path))
    code_jsonl, out_jsonl = run_cli(capsys, "validate", "--jsonl", str(path))
    assert code_jsonl == code_json
    whole = json.loads(out_json)["files"][0]
    lines = [json.loads(line) for line in out_jsonl.splitlines()]
    expected_sets = [
        (ic["control_number"], g["control_number"], s)
        for ic in whole["interchanges"]
        for g in ic["groups"]
        for s in g.pop("transaction_sets")
    ]
    assert [(x["interchange"], x["group"], x["set"]) for x in lines[:-1]] == expected_sets
    assert all(x["path"] == str(path) for x in lines)
    assert lines[-1] == whole


def test_validate_jsonl_over_several_files_and_a_missing_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Each file ends with its own summary line; an unreadable file is exit 2 with no line."""
    batch = SAMPLE_EDI / "responses" / "271-batch-100.x12"
    code, out = run_cli(capsys, "validate", "--jsonl", str(batch), str(RESPONSES[1]), str(tmp_path / "no"))
    lines = [json.loads(line) for line in out.splitlines()]
    summaries = [x for x in lines if "interchanges" in x]
    assert [x["path"] for x in summaries] == [str(batch), str(RESPONSES[1])]
    assert sum(1 for x in lines if x["path"] == str(batch) and "set" in x) == 100
    assert code == 2


def records(doc: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    return doc["eligibility"], doc["authorizations"]


@pytest.mark.parametrize("path", RESPONSES, ids=lambda p: p.name)
def test_map_jsonl_gives_the_records_of_json(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Concatenating the per-set lines gives --json's eligibility and authorization lists."""
    code_json, out_json = run_cli(capsys, "map", "--json", str(path))
    code_jsonl, out_jsonl = run_cli(capsys, "map", "--jsonl", str(path))
    assert code_jsonl == code_json
    lines = [json.loads(line) for line in out_jsonl.splitlines()]
    assert lines, "every response file has at least one set"
    if code_json == 0:
        whole = json.loads(out_json)
        assert [r for x in lines for r in x["eligibility"]] == whole["eligibility"]
        assert [r for x in lines for r in x["authorizations"]] == whole["authorizations"]
    assert all({"interchange", "group", "set", "ack_code"} <= x.keys() for x in lines)


def test_stream_yields_a_set_before_the_input_is_read_to_the_end() -> None:
    """The first set comes out while most of a 100-set file is still unread (true streaming)."""
    data = (SAMPLE_EDI / "responses" / "271-batch-100.x12").read_bytes()
    read = 0

    def chunks() -> Iterator[bytes]:
        nonlocal read
        for i in range(0, len(data), 512):
            read = i + 512
            yield data[i : i + 512]

    stream = ValidationStream(chunks())
    first = next(iter(stream))
    assert first.validated.report.set_id == "271"
    assert read < len(data) // 4


@pytest.mark.parametrize("path", VALIDATE_FILES[::3], ids=lambda p: p.name[:50])
def test_stream_report_equals_validate(path: Path) -> None:
    """After iteration the stream's report is exactly what validate() returns for the same bytes."""
    data = path.read_bytes()
    stream = ValidationStream(data, Options())
    sets = [item.validated.report for item in stream]
    report = validate(data)
    assert stream.report == report
    assert sets == [s for ic in report.interchanges for g in ic.groups for s in g.sets]
