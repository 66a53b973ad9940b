"""``iter_envelope`` (segments inside a set appended without a generator per segment) against the
reference walk that hands every segment to ``_Walk.step``: the same events, in the same order, and
the same error at the same point, for every sample, public and golden file, their deterministic
mutants, hypothesis-mutated interchanges and hypothesis-built envelope orders (stray, missing and
repeated ISA/GS/ST/SE/GE/IEA)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_engine_differential import CORPUS
from tests.test_fuzz import mutated_x12
from tests.x12mutants import mutants
from transactions.envelope_reader import Event, _Walk, iter_envelope
from transactions.errors import TruncatedError, X12SyntaxError
from transactions.reader import SegmentReader


def _reference(source: bytes | Iterable[bytes], *, strict: bool = False) -> Iterator[Event]:
    """iter_envelope as it was: every segment through ``_Walk.step``."""
    reader = SegmentReader(source)
    walk = _Walk()
    for seg in reader:
        yield from walk.step(seg, reader.offset, reader.number, reader.delimiters)
    if strict and walk.in_isa:
        raise TruncatedError(
            "data ends inside an interchange (no IEA)", offset=reader.offset, segment=reader.number
        )
    yield from walk.close_interchange(None, reader.offset)


def _run(events: Iterator[Event]) -> tuple[list[Event], Any]:
    """The events up to the end or to an error, and the error (type, message, offset) if one."""
    out: list[Event] = []
    try:
        out.extend(events)
    except X12SyntaxError as exc:
        return out, (type(exc), str(exc), exc.offset)
    return out, None


def _assert_same(data: bytes) -> None:
    for strict in (False, True):
        for source in (data, [data[i : i + 97] for i in range(0, len(data), 97)]):
            assert _run(iter_envelope(source, strict=strict)) == _run(_reference(source, strict=strict))


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(p.parents[1]))[:70])
def test_every_file_and_its_mutants_give_the_reference_events(path: Path) -> None:
    """Samples, public and golden files and their deterministic mutants: the same events and errors."""
    data = path.read_bytes()
    _assert_same(data)
    text = data.decode("latin-1")
    for mutant in mutants(text, seed=3, count=4):
        _assert_same(mutant.text.encode("latin-1"))


@settings(max_examples=150, deadline=None)
@given(mutated_x12())
def test_mutated_interchanges_give_the_reference_events(data: bytes) -> None:
    """Hypothesis-mutated files (bytes cut, inserted, delimiters broken): the same events and errors."""
    _assert_same(data)


ISA = (
    "ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       "
    "*261126*0900*^*00501*000000001*0*T*:~"
)
_SEGMENTS = st.sampled_from(["GS*HB*S*R*20261126*0900*1*X*005010X279A1", "ST*271*0001*005010X279A1",
                             "SE*3*0001", "GE*1*1", "IEA*1*000000001", "NM1*IL*1*DOE", "EB*1", "HL*1**20*1",
                             ISA[:-1]])  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(_SEGMENTS, max_size=14))
def test_any_order_of_envelope_segments_gives_the_reference_events(body: list[str]) -> None:
    """Envelope segments stray, missing, repeated or out of order around body segments: the same events."""
    _assert_same((ISA + "".join(f"{s}~" for s in body)).encode("ascii"))
