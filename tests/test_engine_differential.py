"""The compiled validation engine against pyx12's walker (the reference): the same report, findings,
999/TA1 codes and placed segments for every sample, public and golden file, for deterministic mutants
of each, and for hypothesis-built and hypothesis-mutated interchanges."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.strategies import delimiters, inquiries, review_requests
from tests.test_fuzz import mutated_x12
from tests.x12mutants import mutants
from transactions.acks import AckEnvelope, build_999
from transactions.envelope_writer import InterchangeHeader
from transactions.models import EligibilityInquiry, ServiceReviewRequest
from transactions.outbound import build_request_interchange
from transactions.segment import Delimiters
from transactions.validation import (
    ENGINES,
    Options,
    Validation,
    ValidationStream,
    validate,
    validate_detailed,
)

ROOT = Path(__file__).resolve().parent.parent
WHEN = datetime(2026, 11, 26, 8, 15, tzinfo=UTC)
SKIP_SUFFIXES = (".json", ".md", ".py", ".toml", ".xml", ".pyc")


def _shared_samples() -> list[Path]:
    """The shared public samples beside the checkout (``../shared`` of the main tree), when present."""
    env = os.environ.get("X12GW_SHARED_SAMPLES")
    candidates = [Path(env)] if env else [ROOT.parent / "shared", ROOT.parent.parent / "shared"]
    for base in candidates:
        folder = base / "samples" / "public-x12" if not env else base
        if folder.is_dir():
            return sorted(folder.rglob("*"))
    return []


def _corpus() -> list[Path]:
    paths = [*(ROOT / "sample_edi").rglob("*"), *(ROOT / "tests").rglob("*"), *_shared_samples()]
    out = []
    for p in sorted(set(paths)):
        if not p.is_file() or p.name.endswith(SKIP_SUFFIXES) or "__pycache__" in p.parts:
            continue
        head = p.read_bytes()[:200].lstrip(b"\xef\xbb\xbf \r\n\t")
        if head.startswith(b"ISA"):
            out.append(p)
    return out


CORPUS = _corpus()


def _both(data: bytes, *, placed: bool = False) -> tuple[Validation, Validation]:
    runs = [validate_detailed(data, Options(engine=e, keep_placed=placed)) for e in ("pyx12", "compiled")]
    return runs[0], runs[1]


def _assert_same(data: bytes, *, placed: bool = True) -> None:
    reference, compiled = _both(data, placed=placed)
    assert compiled.report == reference.report
    assert [s.placed for s in compiled.sets] == [s.placed for s in reference.sets]


def test_corpus_is_not_empty() -> None:
    """The differential corpus holds the samples, the public files and the 837P/999 sets."""
    names = " ".join(p.name for p in CORPUS)
    assert len(CORPUS) >= 40
    assert ".837" in names or "837" in names


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(p.parents[1]))[:70])
def test_every_sample_gives_the_same_report_and_placed_segments(path: Path) -> None:
    """Each sample, public and golden file: identical reports (findings, codes, 999/TA1 verdicts) and
    identical loop placement under the compiled engine and the pyx12 walker."""
    _assert_same(path.read_bytes())


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(p.parents[1]))[:70])
def test_mutants_of_every_sample_give_the_same_report(path: Path) -> None:
    """Segments deleted, duplicated, swapped, blanked, codes and dates broken, HL parents wrong and
    SE counts off: the compiled engine reports exactly what the pyx12 walker reports."""
    text = path.read_bytes().decode("latin-1")
    for mutant in mutants(text, seed=len(text), count=16):
        data = mutant.text.encode("latin-1")
        reference, compiled = _both(data)
        assert compiled.report == reference.report, mutant.name


def test_the_999_built_from_either_engine_is_the_same() -> None:
    """What goes into our 999 (IK3/IK4/IK5/AK9) is the same bytes whichever engine validated."""
    envelope = AckEnvelope("ZZ", "GATEWAY", 7, 7, WHEN)
    for path in CORPUS:
        text = path.read_bytes().decode("latin-1")
        for mutant in mutants(text, seed=3, count=4):
            data = mutant.text.encode("latin-1")
            reports = [validate(data, Options(engine=e)) for e in ENGINES]
            acks = [[build_999(ic, envelope, 1) for ic in r.interchanges] for r in reports]
            assert acks[0] == acks[1], mutant.name


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutated_x12())
def test_hypothesis_mutated_interchanges_give_the_same_report(data: bytes) -> None:
    """Byte-level mutations (truncation, corrupted delimiters and counts, random bytes, non-ASCII,
    over-long elements) of the corpus: the same report under both engines."""
    _assert_same(data, placed=False)


def _build(reqs: list[EligibilityInquiry] | list[ServiceReviewRequest], d: Delimiters) -> bytes:
    header = InterchangeHeader("ZZ", "GATEWAY", "ZZ", "CLEARING", 3, WHEN)
    return build_request_interchange(
        reqs,
        header,
        application_sender="GATEWAY",
        application_receiver="CLEARING",
        group_controls=[3],
        set_controls=list(range(1, len(reqs) + 1)),
        delimiters=d,
    ).data


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(inquiries(), min_size=1, max_size=3), delimiters(), st.integers(0, 2**16))
def test_built_270s_and_their_mutants_give_the_same_report(
    reqs: list[EligibilityInquiry], d: Delimiters, seed: int
) -> None:
    """Generated 270s (any delimiters) and mutants of them: the same report and placement."""
    data = _build(reqs, d)
    _assert_same(data)
    for mutant in mutants(data.decode("utf-8", "surrogateescape"), seed=seed, count=8):
        _assert_same(mutant.text.encode("utf-8", "surrogateescape"), placed=False)


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(review_requests(), min_size=1, max_size=2), delimiters(), st.integers(0, 2**16))
def test_built_278s_and_their_mutants_give_the_same_report(
    reqs: list[ServiceReviewRequest], d: Delimiters, seed: int
) -> None:
    """Generated 278 requests and mutants of them: the same report and placement."""
    data = _build(reqs, d)
    _assert_same(data)
    for mutant in mutants(data.decode("utf-8", "surrogateescape"), seed=seed, count=8):
        _assert_same(mutant.text.encode("utf-8", "surrogateescape"), placed=False)


def test_unknown_engine_is_refused() -> None:
    """An engine name that is neither compiled nor pyx12 is an error, not a silent default."""
    data = CORPUS[0].read_bytes()
    with pytest.raises(ValueError, match="unknown validation engine"):
        validate(data, Options(engine="fast"))


def test_compiled_is_the_default_engine() -> None:
    """Options() validates with the compiled engine."""
    assert Options().engine == "compiled"


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    from gateway.cli import main  # noqa: PLC0415 - the CLI only for these two tests

    code = main(list(argv))
    return code, capsys.readouterr().out


@pytest.mark.parametrize("command", ["validate", "map"])
def test_cli_engine_option_gives_the_same_output(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`x12gw validate|map --engine pyx12` prints what the default compiled engine prints."""
    path = next(p for p in CORPUS if "271" in p.name and "sample_edi" in p.parts)
    outputs = [_cli(capsys, command, str(path), "--json", "--engine", e) for e in ("pyx12", "compiled")]
    assert outputs[0] == outputs[1]
    assert outputs[0][1].strip().startswith("{")


def test_no_data_value_is_remembered_after_a_run() -> None:
    """The compiled engine's result memos (keyed by data values, possibly PHI) are empty once a
    validation run or a stream ends."""
    from transactions.engine.compile import _COMPILED  # noqa: PLC0415 - the memos under test

    data = next(p for p in CORPUS if "271" in p.name).read_bytes()
    validate(data)
    assert _COMPILED
    assert all(not memo for cmap in _COMPILED for memo in cmap.memos)
    sets = iter(ValidationStream(data))
    next(sets)
    assert any(memo for cmap in _COMPILED for memo in cmap.memos)  # in use while the stream runs
    for _ in sets:
        pass
    assert all(not memo for cmap in _COMPILED for memo in cmap.memos)


def test_range_date_with_two_hyphens_is_an_invalid_date_where_pyx12_raises() -> None:
    """The one difference found: pyx12 unpacks an RD8 value as exactly two dates and raises ValueError
    on ``20261205-20270305-20270306`` (so the reference engine breaks validate's never-raises rule);
    the compiled engine reports it as what it is, IK403 8 (invalid date) on DTP03."""
    sample = ROOT / "sample_edi" / "responses" / "278resp-A1-certified.x12"
    data = sample.read_bytes().replace(b"RD8*20261205-20270305", b"RD8*20261205-20270305-20270306")
    with pytest.raises(ValueError, match="too many values to unpack"):
        validate(data, Options(engine="pyx12"))
    report = validate(data, Options(engine="compiled"))
    findings = [f for i in report.interchanges for g in i.groups for s in g.sets for f in s.findings]
    assert [(f.segment, f.code, f.element, f.element_position) for f in findings] == [
        ("DTP", "8", "DTP03", (3, None, None))
    ]


def test_a_closed_loop_instance_lacking_a_required_part_is_reported_as_pyx12_does() -> None:
    """A loop instance closed without a required part other than its first segment (a set whose SE is
    cut, closed by the next ST) gets IK304 3 from the loop-instance check, the same report as pyx12's."""
    data = (ROOT / "sample_edi" / "responses" / "271-batch-100.x12").read_bytes()
    lines = data.split(b"~")
    cut = next(i for i, s in enumerate(lines) if s.lstrip().startswith(b"SE*"))
    mutated = b"~".join(lines[:cut] + lines[cut + 1 :])
    _assert_same(mutated)
    findings = [f for s in validate_detailed(mutated).sets for f in s.report.findings]
    assert any(f.code == "3" and f.segment == "SE" for f in findings)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"HL*4*3*23*0~", b"HL*4*3*23~"),  # plain, HL04 missing
        (b"HL*4*3*23*0~", b"HL*4~"),  # plain, HL02-HL04 missing
        (b"HL*2*1*21*1~", b"HL*2*1^1*21*1~"),  # a repetition: not a plain segment
        (b"HL*2*1*21*1~", b"HL*2*1:1*21*1~"),  # a composite: not a plain segment
    ],
)
def test_hl_elements_are_read_alike_from_plain_and_other_segments(old: bytes, new: bytes) -> None:
    """HL01-HL04 read straight from a plain segment's elements (missing ones empty) give the same HL
    findings as ``Segment.get`` does for composites and repetitions, and as pyx12's walker."""
    data = (ROOT / "sample_edi" / "responses" / "271-dependent-active.x12").read_bytes()
    assert old in data
    _assert_same(data.replace(old, new))
