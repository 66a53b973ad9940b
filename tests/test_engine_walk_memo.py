"""The compiled engine's remembered walks (``transactions.engine.walk``: a run's set walks kept as a
tree keyed by segment id and qualifier values): a set read from the tree, one leaving it at any
segment, and one walked after the tree is full all give the pyx12 walker's report and placement."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.x12mutants import mutants
from transactions.engine import elements
from transactions.engine import walk as engine_walk
from transactions.engine.compile import compiled_map
from transactions.maps import index as map_index
from transactions.validation import Options, ValidationStream, validate_detailed

ROOT = Path(__file__).resolve().parent.parent
RESPONSES = sorted((ROOT / "sample_edi" / "responses").glob("*.x12"))


def _run(data: bytes, engine: str) -> tuple[object, list[object]]:
    result = validate_detailed(data, Options(engine=engine, keep_placed=True))
    return result.report, [s.placed for s in result.sets]


def _chained(path: Path, seed: int, count: int) -> bytes:
    """The file, then ``count`` mutants of it, then the file again, as interchanges of one input:
    later sets follow the first one's remembered walk and leave it wherever their mutant differs."""
    text = path.read_bytes().decode("latin-1")
    parts = [text, *(m.text for m in mutants(text, seed=seed, count=count)), text]
    return "".join(parts).encode("latin-1")


def _assert_same_as_pyx12(data: bytes) -> None:
    reference, compiled = _run(data, "pyx12"), _run(data, "compiled")
    assert compiled == reference


def _tree_keys(level: dict[object, object]) -> Iterator[object]:
    """Every key of a remembered-walk tree, at every level (a step's next level is its last item)."""
    for key, step in level.items():
        yield key
        yield from _tree_keys(step[-1])  # type: ignore[index]


def test_every_response_sample_is_walked_from_the_memo() -> None:
    """The response samples exist and a run of one of them fills the memo of its map, which keeps
    after the run only the map's vocabulary as keys: known segment ids, qualifier values it names."""
    assert len(RESPONSES) >= 10
    data = (ROOT / "sample_edi" / "responses" / "271-batch-100.x12").read_bytes()
    entry = next(e for e in map_index() if e.abbr == "271")
    cmap = compiled_map(entry.file, entry.source)
    walks = cmap.walks
    walks.clear()
    stream = iter(ValidationStream(data))
    next(stream)
    assert walks.entries > 0
    for _ in stream:
        pass
    assert walks.entries > 0
    keys = [k for level in walks.values() for k in _tree_keys(level)]
    assert len(keys) == walks.entries
    for key in keys:
        if isinstance(key, str):
            assert key in cmap.known_ids
            continue
        assert isinstance(key, tuple)
        tag: str = key[0]
        quals: tuple[object, ...] = key[1:]
        assert tag in cmap.known_ids
        assert all(q in named for q, named in zip(quals, cmap.shape_values[tag], strict=True))


@pytest.mark.parametrize("path", RESPONSES, ids=lambda p: p.name)
def test_sets_leaving_a_remembered_walk_give_the_pyx12_report(path: Path) -> None:
    """A response file followed by sixteen mutants of it in one run: every set read from, leaving or
    adding to the remembered walks gives pyx12's report and placed segments."""
    _assert_same_as_pyx12(_chained(path, seed=7, count=16))


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(RESPONSES), st.integers(0, 2**16), st.integers(1, 12))
def test_hypothesis_chained_mutants_give_the_pyx12_report(path: Path, seed: int, count: int) -> None:
    """Any response sample chained with any number of its mutants: the same report as pyx12's."""
    _assert_same_as_pyx12(_chained(path, seed=seed, count=count))


@pytest.mark.parametrize("limit", [0, 1, 5, 40])
def test_a_full_memo_goes_on_walking_live(limit: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the memo is full (after 0, 1, 5 or 40 remembered steps) the walk goes on live, part of
    a set read from the tree and the rest walked: still pyx12's report."""
    monkeypatch.setattr(engine_walk, "WALK_MEMO_LIMIT", limit)
    for path in RESPONSES[:4]:
        _assert_same_as_pyx12(_chained(path, seed=limit, count=6))


def test_memos_off_walks_every_set_live(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the memos off (``elements.MEMO_LIMIT = 0``, as ``bench_map --memos off``) nothing is
    remembered and the report is the one the memo gives."""
    data = _chained(ROOT / "sample_edi" / "responses" / "271-batch-100.x12", seed=3, count=4)
    remembered = _run(data, "compiled")
    monkeypatch.setattr(elements, "MEMO_LIMIT", 0)
    entry = next(e for e in map_index() if e.abbr == "271")
    walks = compiled_map(entry.file, entry.source).walks
    walks.clear()  # kept from earlier runs (shapes only): this run must add nothing
    stream = iter(ValidationStream(data))
    next(stream)
    assert walks.entries == 0
    for _ in stream:
        pass
    assert _run(data, "compiled") == remembered
