"""The compiled engine's remembered walks are kept from run to run (a real-time call validates one
set per run, and reading its walk from the tree saves walking it): each run's report and placement
stay the pyx12 walker's, and what is kept holds only the map's vocabulary, never a data value."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.x12mutants import mutants
from transactions.engine import walk as engine_walk
from transactions.engine.compile import _COMPILED
from transactions.validation import Options, validate_detailed

ROOT = Path(__file__).resolve().parent.parent
RESPONSES = sorted((ROOT / "sample_edi" / "responses").glob("*.x12"))
REQUESTS = sorted((ROOT / "sample_edi" / "requests").glob("*.x12"))
CANARY = "CANARYQUALZZ"


def _run(data: bytes, engine: str) -> tuple[object, list[object]]:
    result = validate_detailed(data, Options(engine=engine, keep_placed=True))
    return result.report, [s.placed for s in result.sets]


def _one_by_one(texts: list[str]) -> None:
    """Each text validated in a run of its own (as real-time calls are), the tree kept between them:
    every run gives the pyx12 walker's report and placed segments."""
    for text in texts:
        data = text.encode("latin-1")
        assert _run(data, "compiled") == _run(data, "pyx12")


def _keys(level: dict[object, object]) -> Iterator[object]:
    for key, step in level.items():
        yield key
        yield from _keys(step[-1])  # type: ignore[index]


def _kept_values() -> set[object]:
    """Every value held in a key of any compiled map's remembered walks."""
    out: set[object] = set()
    for cmap in _COMPILED:
        for level in cmap.walks.values():
            for key in _keys(level):
                out.update((key,) if isinstance(key, str) else key)  # type: ignore[arg-type]
    return out


def test_runs_of_one_set_read_from_kept_walks_give_the_pyx12_report() -> None:
    """Every sample, twice in separate runs (the second read from the kept tree), then mutants of each
    in runs of their own: pyx12's report every time."""
    for path in [*RESPONSES, *REQUESTS]:
        text = path.read_bytes().decode("latin-1")
        _one_by_one([text, text, *(m.text for m in mutants(text, seed=11, count=6)), text])


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(RESPONSES), st.integers(0, 2**16), st.integers(1, 8))
def test_hypothesis_mutants_in_runs_of_their_own_give_the_pyx12_report(path: Path, seed: int, n: int) -> None:
    """Any sample and its mutants, one run each with the walks kept between runs: pyx12's report."""
    text = path.read_bytes().decode("latin-1")
    _one_by_one([text, *(m.text for m in mutants(text, seed=seed, count=n)), text])


def test_a_full_tree_is_emptied_when_the_run_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tree that reached its bound is emptied at the end of the run, so it learns again; the reports
    stay pyx12's while it fills, is full and is emptied."""
    monkeypatch.setattr(engine_walk, "WALK_MEMO_LIMIT", 30)
    for cmap in _COMPILED:
        cmap.walks.clear()
    for path in RESPONSES[:6]:
        _one_by_one([path.read_bytes().decode("latin-1")] * 2)
        assert all(cmap.walks.entries < 30 for cmap in _COMPILED)


def test_values_that_are_not_the_maps_vocabulary_are_not_kept() -> None:
    """A canary value (standing for a name or a member id) at every qualifier element of a response
    set's segments, and an unknown segment id holding it: after the runs no kept key holds it."""
    for path in RESPONSES:
        text = path.read_bytes().decode("latin-1")
        sep, term = text[3], text[105]
        parts = text.split(term)
        for i, seg in enumerate(parts):
            fields = seg.strip().split(sep)
            if fields[0] in ("ISA", "GS", "ST", "SE", "GE", "IEA", ""):
                continue
            poisoned = [*parts[:i], sep.join([fields[0], *[CANARY] * (len(fields) - 1)]), *parts[i + 1 :]]
            validate_detailed(term.join(poisoned).encode("latin-1"), Options(keep_placed=True))
        unknown = [*parts[:4], f"\n{CANARY}{sep}{CANARY}", *parts[4:]]
        validate_detailed(term.join(unknown).encode("latin-1"), Options(keep_placed=True))
    kept = _kept_values()
    assert kept  # the tree is in use
    assert not any(CANARY in str(v) for v in kept)


def test_shape_key_refuses_composites_and_unknown_ids() -> None:
    """A composite at a qualifier element or an id the map does not know gives no key."""
    cmap = next(c for c in _COMPILED if "NM1" in c.qualifier_elements)
    assert engine_walk.shape_key(cmap, "ZZZ", ("1",)) is None
    assert engine_walk.shape_key(cmap, "NM1", (("IL", "X"),)) is None
    assert engine_walk.shape_key(cmap, "NM1", (CANARY,)) is None
    named = next(v for v in cmap.shape_values["NM1"][0] if v)
    assert engine_walk.shape_key(cmap, "NM1", (named, "1")) == engine_walk.walk_key(
        "NM1", (named, "1"), cmap.qualifier_elements["NM1"]
    )
