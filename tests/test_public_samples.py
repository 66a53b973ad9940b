"""Every public TR3-style example file reads without error and re-serialises to the same segments."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import public_files
from transactions.envelope_reader import read_interchanges
from transactions.reader import SegmentReader, iter_segments
from transactions.writer import serialize


@pytest.mark.parametrize("path", public_files(), ids=lambda p: f"{p.parent.name}/{p.name[:50]}")
def test_public_file_round_trips(path: Path) -> None:
    """Reading then writing with the file's own delimiters gives back the same segments."""
    data = path.read_bytes()
    reader = SegmentReader(data)
    segments = list(reader)
    assert segments
    assert segments[0].tag == "ISA"
    assert reader.delimiters is not None
    again = serialize(segments, reader.delimiters)
    assert list(iter_segments(again)) == segments
    interchanges = read_interchanges(data, strict=True)
    assert all(ic.iea is not None for ic in interchanges)
    assert sum(1 for ic in interchanges for _ in ic.transaction_sets()) >= 1


def test_corpus_is_present() -> None:
    """The copied public corpus is complete (guards against an empty parametrisation)."""
    assert len(public_files()) >= 30
