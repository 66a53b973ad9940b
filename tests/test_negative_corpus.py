"""Negative corpus: each crafted defect yields exactly the 999 (IK3/IK4/IK5/AK9) or TA1 codes the guide
prescribes, the 999 we build for it validates against pyx12's own 999 map, and parsing that 999 back
gives the same verdicts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from tests.x12text import built, fix_se, public, sub
from transactions.acks import AckEnvelope, build_999, build_ta1, parse_acks
from transactions.findings import ValidationReport
from transactions.validation import Options, validate

T270 = "270-subscriber"
T270D = "270-dependent"
T278 = "278-outpatient-mri"
R271 = "271/LinuxForHealth-x12__subscriber-health-benefit-check.271"
R278 = "278resp/kputnam-stupidedi__admission-response-to-request-for-review.edi"


def codes(report: ValidationReport) -> set[str]:
    """Every code in a report, as 'IK304:NM1:3', 'IK403:DMG02:8', 'IK502:4', 'AK905:4', 'TA105:001'."""
    out: set[str] = set()
    for ic in report.interchanges:
        if ic.ta1 is not None and ic.ta1.ack_code != "A":
            out.update(f"TA105:{c}" for c in ic.ta1.message and [ic.ta1.note_code])
        for g in ic.groups:
            out.update(f"AK905:{c}" for c in g.group_codes)
            out.add(f"AK901:{g.ack_code}")
            for s in g.sets:
                out.add(f"IK501:{s.ack_code}")
                out.update(f"IK502:{c}" for c in s.set_codes)
                for f in s.findings:
                    if f.severity != "error":
                        continue
                    out.add(f"IK403:{f.element}:{f.code}" if f.is_element else f"IK304:{f.segment}:{f.code}")
    return out


def text_of(base: str) -> str:
    return built(base) if "/" not in base else public(base)


def dup_set(text: str) -> str:
    """Two transaction sets with the same ST02 in one group."""
    st = text.index("\nST*") + 1
    se_end = text.index("\n", text.index("\nSE*") + 1) + 1
    body = text[st:se_end]
    return sub(text[:se_end] + body + text[se_end:], r"^GE\*1\*", "GE*2*")


def dup_group(text: str) -> str:
    gs = text.index("\nGS*") + 1
    ge_end = text.index("\n", text.index("\nGE*") + 1) + 1
    return sub(text[:ge_end] + text[gs:ge_end] + text[ge_end:], r"^IEA\*1\*", "IEA*2*")


def many(segment: str, times: int, after: str) -> Callable[[str], str]:
    return lambda t: fix_se(sub(t, f"^({after}.*\n)", r"\1" + (segment + "\n") * times))


Case = tuple[str, str, Callable[[str], str], set[str], Options | None]
CASES: list[Case] = [
    (
        "missing-2100A-name",
        T270,
        lambda t: fix_se(sub(t, r"^NM1\*PR.*\n", "")),
        {"IK304:NM1:3", "IK502:5"},
        None,
    ),
    ("missing-BHT", T270, lambda t: fix_se(sub(t, r"^BHT.*\n", "")), {"IK304:BHT:3", "IK501:R"}, None),
    (
        "segment-out-of-order",
        T270,
        lambda t: fix_se(sub(t, r"^(NM1\*IL.*\n)(DMG.*\n)", r"\2\1")),
        {"IK501:R"},
        None,
    ),
    ("unknown-segment", T270, lambda t: fix_se(sub(t, r"^(DMG.*\n)", r"\1ZZZ*1~\n")), {"IK304:ZZZ:1"}, None),
    ("too-many-TRN", T270, many("TRN*1*EXTRA*9999999999~", 2, "TRN"), {"IK304:TRN:5"}, None),
    ("wrong-HL-parent", T270, lambda t: sub(t, r"^HL\*3\*2\*22", "HL*3*1*22"), {"IK403:HL02:7"}, None),
    (
        "wrong-HL-level",
        T270,
        lambda t: sub(t, r"^HL\*3\*2\*22", "HL*3*2*99"),
        {"IK304:HL:7", "IK501:R"},  # a known segment with a level code the guide has no loop for
        None,
    ),
    ("bad-code-BHT02", T270, lambda t: sub(t, r"^BHT\*0022\*13", "BHT*0022*99"), {"IK403:BHT02:7"}, None),
    ("bad-code-EQ01", T270, lambda t: sub(t, r"^EQ\*30", "EQ*Q9"), {"IK403:EQ01:7"}, None),
    (
        "element-too-long",
        T270,
        lambda t: sub(t, r"MI\*ZZM100000001", "MI*" + "Z" * 81),
        {"IK403:NM109:5"},
        None,
    ),
    (
        "element-too-short",
        T270,
        lambda t: sub(t, r"^DMG\*D8\*19700101", "DMG*D8*1970"),
        {"IK403:DMG02:8"},
        None,
    ),
    ("bad-date", T270, lambda t: sub(t, r"^DMG\*D8\*19700101", "DMG*D8*19701340"), {"IK403:DMG02:8"}, None),
    (
        "bad-time",
        T270,
        lambda t: sub(t, r"^(BHT\*0022\*13\*[^*]*\*\d{8})\*\d{4}", r"\1*2599"),
        {"IK403:BHT05:9"},
        None,
    ),
    (
        "missing-required-element",
        T270,
        lambda t: sub(t, r"^NM1\*PR\*2\*ACME HEALTH PLAN", "NM1*PR*2*"),
        {"IK403:NM103:1"},
        None,
    ),
    (
        "not-used-element",
        T270D,
        lambda t: sub(t, r"^(NM1\*03\*1\*CANARYTEST\*CHARLIE)", r"\1****MI*X1"),
        {"IK403:NM108:I10", "IK403:NM109:I10"},
        None,
    ),
    (
        "syntax-pair-NM108-without-NM109",
        T270,
        lambda t: sub(t, r"\*MI\*ZZM100000001", "*MI"),
        {"IK501:R"},
        None,
    ),
    ("EQ-without-service-or-procedure", T270, lambda t: sub(t, r"^EQ\*30", "EQ**"), {"IK501:R"}, None),
    (
        "bad-DTP-format",
        T270,
        lambda t: sub(t, r"^DTP\*291\*D8\*20261201", "DTP*291*D8*20261201-20261202"),
        {"IK403:DTP03:8"},
        None,
    ),
    ("SE-count-wrong", T270, lambda t: sub(t, r"^SE\*\d+", "SE*99"), {"IK502:4", "IK501:R"}, None),
    ("ST-SE-control-mismatch", T270, lambda t: sub(t, r"^SE\*(\d+)\*0001", r"SE*\1*0002"), {"IK502:3"}, None),
    ("SE-missing", T270, lambda t: sub(t, r"^SE.*\n", ""), {"IK502:2", "AK901:R"}, None),
    ("duplicate-ST02", T270, dup_set, {"IK502:23", "AK901:P"}, None),
    (
        "GS-GE-control-mismatch",
        T270,
        lambda t: sub(t, r"^GE\*1\*101", "GE*1*102"),
        {"AK905:4", "AK901:R"},
        None,
    ),
    ("GE-count-wrong", T270, lambda t: sub(t, r"^GE\*1\*", "GE*3*"), {"AK905:5"}, None),
    ("GE-missing", T270, lambda t: sub(t, r"^GE.*\n", ""), {"AK905:3"}, None),
    (
        "GS06-not-numeric",
        T270,
        lambda t: sub(sub(t, r"^(GS\*[^\n]*)\*101\*X", r"\1*1A1*X"), r"^GE\*1\*101", "GE*1*1A1"),
        {"AK905:6", "TA105:024"},
        None,
    ),
    ("duplicate-GS06", T270, dup_group, {"AK905:19"}, None),
    (
        "ISA-IEA-control-mismatch",
        T270,
        lambda t: sub(t, r"^IEA\*1\*000000101", "IEA*1*000000102"),
        {"TA105:001"},
        None,
    ),
    ("IEA-group-count-wrong", T270, lambda t: sub(t, r"^IEA\*1\*", "IEA*2*"), {"TA105:021"}, None),
    ("truncated-file", T270, lambda t: t[: t.index("EQ*")], {"TA105:023"}, None),
    ("component-separator-equals-element", T270, lambda t: t[:104] + "*" + t[105:], {"TA105:027"}, None),
    ("terminator-equals-element", T270, lambda t: t[:105] + "*" + t[106:], {"TA105:004"}, None),
    ("unsupported-ISA-version", T270, lambda t: t[:84] + "00401" + t[89:], {"TA105:003"}, None),
    ("bad-ack-requested", T270, lambda t: t[:100] + "2" + t[101:], {"TA105:019"}, None),
    ("bad-usage-indicator", T270, lambda t: t[:102] + "X" + t[103:], {"TA105:020"}, None),
    ("bad-interchange-date", T270, lambda t: t[:70] + "261345" + t[76:], {"TA105:014"}, None),
    (
        "bad-interchange-control-number",
        T270,
        lambda t: sub(t[:90] + "00000010A" + t[99:], r"^IEA\*1\*000000101", "IEA*1*00000010A"),
        {"TA105:018"},
        None,
    ),
    (
        "stray-segment-between-sets",
        T270,
        lambda t: sub(t, r"^(SE.*\n)", r"\1REF*XX*1~\n"),
        {"TA105:024"},
        None,
    ),
    (
        "duplicate-interchange",
        T270,
        lambda t: t,
        {"TA105:025"},
        Options(seen_interchanges=frozenset({"000000101"})),
    ),
    ("unknown-receiver", T270, lambda t: t, {"TA105:009"}, Options(our_ids=frozenset({"SOMEONEELSE"}))),
    (
        "unsupported-implementation-version",
        T270,
        lambda t: t.replace("005010X279A1", "005010X999"),
        {"IK502:1", "AK901:R"},
        None,
    ),
    (
        "pre-errata-version-strict",
        R271,
        lambda t: t.replace("005010X279A1", "005010X279"),
        {"IK502:19"},
        Options(leniency=frozenset()),
    ),
    (
        "278-request-sent-as-response",
        T278,
        lambda t: sub(t, r"^BHT\*0007\*13", "BHT*0007*11"),
        {"IK501:R", "IK502:5"},
        None,
    ),
    ("278-UM-missing", T278, lambda t: fix_se(sub(t, r"^UM.*\n", "")), {"IK304:UM:3"}, None),
    ("278-UM02-bad-code", T278, lambda t: sub(t, r"^UM\*HS\*I", "UM*HS*Q"), {"IK403:UM02:7"}, None),
    (
        "278-too-many-2010EA",
        T278,
        many("NM1*SJ*1*CANARYTEST*DOC****XX*1234567893~", 14, "NM1\\*SJ"),
        {"IK304:NM1:4"},
        None,
    ),
    (
        "278-too-many-SV1-components",
        T278,
        lambda t: sub(t, r"^SV1\*HC:72148", "SV1*HC:72148:AA:BB:CC:DD:EE:FF:GG"),
        {"IK403:SV101:13"},
        None,
    ),
    (
        "271-EB03-too-many-repetitions",
        R271,
        lambda t: sub(t, r"^EB\*1\*\*30", "EB*1**" + "^".join(["30"] * 100)),
        {"IK403:EB03:12"},
        None,
    ),
    (
        "271-EB03-bad-code-in-repetition",
        R271,
        lambda t: sub(t, r"^EB\*1\*\*30", "EB*1**30^Q9"),
        {"IK403:EB03:7"},
        None,
    ),
    ("271-LS-without-LE", R271, lambda t: fix_se(sub(t, r"^LE.*\n", "")), {"IK304:LE:3"}, None),
    ("278-response-bad-HCR01", R278, lambda t: sub(t, r"HCR\*A1", "HCR*Z9"), {"IK501:R"}, None),
]


@pytest.mark.parametrize(("name", "base", "defect", "expected", "opts"), CASES, ids=[c[0] for c in CASES])
def test_defect_yields_guide_codes(
    name: str, base: str, defect: Callable[[str], str], expected: set[str], opts: Options | None
) -> None:
    """The defect produces the expected codes and the resulting 999/TA1 validates and parses back."""
    original = text_of(base)
    assert validate(original.encode("latin-1")).all_accepted, "the base document must be valid"
    report = validate(defect(original).encode("latin-1"), opts)
    assert report.fatal is None
    assert expected <= codes(report), f"{name}: got {sorted(codes(report))}"
    assert not report.all_accepted
    env = AckEnvelope("ZZ", "X12GATEWAY", 900, 900, datetime(2026, 11, 26, 11, 0, tzinfo=UTC))
    for ic in report.interchanges:
        ack = build_ta1(ic, env) if ic.rejected else build_999(ic, env, 1)
        if ack is None:
            continue
        assert validate(ack).all_accepted, "our acknowledgment must itself be valid X12"
        parsed = parse_acks(ack)
        if ic.rejected:
            assert ic.ta1 is not None
            assert [(a.ack_code, a.note_code) for a in parsed.interchanges] == [
                (ic.ta1.ack_code, ic.ta1.note_code)
            ]
        else:
            assert [(g.ack_code, g.codes) for g in parsed.groups] == [
                (g.ack_code, g.group_codes) for g in ic.groups
            ]
            assert [[(s.ack_code, s.codes) for s in g.sets] for g in parsed.groups] == [
                [(s.ack_code, s.set_codes) for s in g.sets] for g in ic.groups
            ]


def test_corpus_size() -> None:
    """The corpus has at least 40 distinct defects."""
    assert len({c[0] for c in CASES}) >= 40
