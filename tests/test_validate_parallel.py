"""``x12gw validate --jobs N``: the report of worker processes is the report of one process, in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from gateway.runtime import parallel
from tests.conftest import SAMPLE_EDI, public_files
from transactions.validation import Options, validate

BOM = b"\xef\xbb\xbf"  # a byte-order mark is only allowed at the start of a file
INPUTS = [
    *sorted((SAMPLE_EDI / "responses").glob("*.x12")),
    *public_files("271"),
    *public_files("278req"),
    *public_files("999"),
]


def _mixed_file(tmp_path: Path) -> Path:
    """Damage first: a batch whose second set repeats the first's ST02 and whose first set has a wrong
    SE count and lost elements; many interchanges of every kind we read; one cut short."""
    batch = (SAMPLE_EDI / "responses" / "271-batch-100.x12").read_bytes()
    damaged = batch.replace(b"ST*271*0002*", b"ST*271*0001*", 1).replace(b"NM1*IL*1*", b"NM1*IL**", 3)
    damaged = damaged.replace(b"SE*", b"SE*9", 1)
    cut = batch[: len(batch) // 2]
    path = tmp_path / "mixed.x12"
    path.write_bytes(b"\n".join([damaged, *(p.read_bytes().removeprefix(BOM) for p in INPUTS), batch, cut]))
    return path


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_parallel_report_is_the_single_process_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--jobs 2 prints the same JSON and human report, byte for byte, with the same exit code, as
    --jobs 1 and as the library's validate(), though sets go to workers in many small chunks."""
    monkeypatch.setattr(parallel, "CHUNK_SETS", 7)  # many chunks, several in flight at once
    path = _mixed_file(tmp_path)
    single = _cli(capsys, "validate", "--json", "--jobs", "1", str(path))
    assert _cli(capsys, "validate", "--json", "--jobs", "2", str(path)) == single
    assert _cli(capsys, "validate", "--jobs", "2", str(path)) == _cli(
        capsys, "validate", "--jobs", "1", str(path)
    )
    report = parallel.validate_parallel(path.read_bytes(), Options(), 2)
    assert report == validate(path.read_bytes(), Options())
    codes = {c for ic in report.interchanges for g in ic.groups for s in g.sets for c in s.set_codes}
    assert {"23", "4", "5"} <= codes  # the damage was seen: duplicate ST02, SE count, element errors
    assert any(ic.ta1 is not None and ic.ta1.note_code == "023" for ic in report.interchanges)
    assert single[0] == 1


def test_parallel_validation_of_text_that_is_not_x12(tmp_path: Path) -> None:
    """An unreadable input gives the same fatal reason with workers as without."""
    data = b"hello, this is not an interchange\n" * 100
    assert parallel.validate_parallel(data, Options(), 2) == validate(data, Options())
    assert validate(data, Options()).fatal
