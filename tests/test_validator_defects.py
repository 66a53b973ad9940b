"""Defects found by differential testing (issue 13): each test pins the fixed behaviour."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.x12text import ROOT, fix_se
from transactions.findings import Finding, SetReport, ValidationReport
from transactions.validation import Options, validate

RESPONSES = ROOT / "sample_edi" / "responses"
PUBLIC = ROOT / "tests" / "public_x12"
R271 = "271-subscriber-active.x12"
R271D = "271-dependent-active.x12"
R278 = "278resp-A1-certified.x12"


def text(name: str) -> str:
    return (RESPONSES / name).read_text()


def sets(report: ValidationReport) -> list[SetReport]:
    return [s for i in report.interchanges for g in i.groups for s in g.sets]


def errors(report: ValidationReport) -> list[Finding]:
    return [f for s in sets(report) for f in s.findings if f.severity == "error"]


def run(t: str, opts: Options | None = None) -> ValidationReport:
    return validate(fix_se(t).encode(), opts)


def two_sets(t: str) -> str:
    """The 271 with its set repeated (second ST02 0002), GE01 = 2."""
    lines = t.splitlines(keepends=True)
    st = next(i for i, x in enumerate(lines) if x.startswith("ST*"))
    se = next(i for i, x in enumerate(lines) if x.startswith("SE*"))
    second = [
        x.replace("*0001~", "*0002~").replace("ST*271*0001*", "ST*271*0002*") for x in lines[st : se + 1]
    ]
    out = lines[: se + 1] + second + lines[se + 1 :]
    return "".join(out).replace("GE*1*", "GE*2*")


def test_lower_case_segment_id_rejects_only_its_set() -> None:
    """A `Dmg` segment gives its set IK304 1; the interchange is read and the other set accepted."""
    t = two_sets(text(R271))
    first_dmg = t.index("DMG*")
    t = t[:first_dmg] + "Dmg*" + t[first_dmg + 4 :]
    report = run(t)
    (ic,) = report.interchanges
    assert ic.ta1 is None
    first, second = sets(report)
    assert first.ack_code == "R"
    assert [(f.segment, f.code) for f in first.findings if f.severity == "error"] == [("Dmg", "1")]
    assert second.ack_code == "A"
    assert ic.groups[0].ack_code == "P"


@pytest.mark.parametrize(("name", "wrong_gs01", "abbr"), [(R271, "HS", "271"), ("270", "HB", "270")])
def test_map_follows_st01_and_gs01_mismatch_is_one_finding(name: str, wrong_gs01: str, abbr: str) -> None:
    """A set in a group of the wrong GS01 is walked with its own guide; IK502 18 is the only error."""
    t = (PUBLIC / "270" / "LinuxForHealth-x12__subscriber-health-benefit-check.270").read_text()
    source = text(name) if name != "270" else t
    gs01 = "HS" if name == "270" else "HB"
    report = run(source.replace(f"GS*{gs01}*", f"GS*{wrong_gs01}*", 1))
    (s,) = sets(report)
    assert s.map == abbr
    assert s.set_codes == ("18",)
    assert errors(report) == []
    lenient = run(
        source.replace(f"GS*{gs01}*", f"GS*{wrong_gs01}*", 1), Options(leniency=frozenset({"gs01"}))
    )
    (s,) = sets(lenient)
    assert s.ack_code == "E"
    assert [f.code for f in s.findings] == ["18"]


def test_278_group_version_mismatch_uses_st03() -> None:
    """GS08 005010X279 around a 278 whose ST03 says 005010X217: walked as a 278, one IK502 19."""
    t = text(R278).replace("*X*005010X217~", "*X*005010X279A1~", 1)
    (s,) = sets(run(t))
    assert s.map == "278resp"
    assert s.set_codes == ("19",)
    assert errors(run(t)) == []
    (s,) = sets(run(t, Options(leniency=frozenset({"gs08"}))))
    assert s.ack_code == "E"


def test_dates_are_calendar_dates_not_plausible_ones() -> None:
    """DMG*D8*10010101 is a valid date (Medicaid placeholder); 20230230 is not."""
    assert errors(run(text(R278).replace("DMG*D8*19700101", "DMG*D8*10010101"))) == []
    bad = errors(run(text(R278).replace("DMG*D8*19700101", "DMG*D8*20230230")))
    assert [(f.element, f.code) for f in bad] == [("DMG02", "8")]


@pytest.mark.parametrize("kind", ["271", "270"])
def test_2000c_without_2100c_is_rejected(kind: str) -> None:
    """A subscriber HL followed by the dependent HL with no subscriber name loop: IK304 3 on NM1."""
    if kind == "270":
        source = (PUBLIC / "270" / "LinuxForHealth-x12__dependent-health-benefit-check.270").read_text()
        t = source.replace("~", "~\n").replace("NM1*IL*1******MI*11122333301~\n", "")
    else:
        t = text(R271D).replace("NM1*IL*1*CANARYTEST*BRAVO****MI*ZZM100000002~\nDMG*D8*19680505*M~\n", "")
    report = run(t)
    assert ("NM1", "3") in {(f.segment, f.code) for f in errors(report)}


def test_out_of_place_known_segments_get_2_or_7() -> None:
    """A known segment in the wrong loop is IK304 2; one that belongs earlier in its loop is 7."""
    t = text(R271)
    unexpected = errors(
        run(t.replace("DMG*D8*19700101*F~", "DMG*D8*19700101*F~\nBHT*0022*11*X*20261125*0905~"))
    )
    assert [(f.segment, f.code) for f in unexpected] == [("BHT", "2")]
    moved = t.replace("DTP*356*D8*20190301~\n", "").replace("EB*1*", "DTP*356*D8*20190301~\nEB*1*", 1)
    moved = moved.replace("DMG*D8*19700101*F~\n", "").replace("EB*B*", "DMG*D8*19700101*F~\nEB*B*", 1)
    assert ("DMG", "7") in {(f.segment, f.code) for f in errors(run(moved))}
    unknown = errors(run(t.replace("DMG*D8*19700101*F~", "DMG*D8*19700101*F~\nZZZ*1~")))
    assert [(f.segment, f.code) for f in unknown] == [("ZZZ", "1")]


def test_999_guide_example_with_two_ctx_validates() -> None:
    """The X231A1 example (a Segment Context and a Business Unit CTX in one IK3 loop) has no errors."""
    path = PUBLIC / "999" / "kputnam-stupidedi__response-to-functional-group-containing-3-837s.edi"
    report = validate(path.read_bytes())
    assert errors(report) == []
    assert report.all_accepted


def test_dme_certificate_pwk_is_accepted() -> None:
    """PWK*CT*AD (DME certificate of medical necessity) in 837P 2400 is valid."""
    path = PUBLIC / "837p" / "kputnam-stupidedi__wheelchair.edi"
    assert errors(validate(path.read_bytes())) == []


def test_837p_lx01_sequence_is_checked() -> None:
    """LX01 must count 1, 2, 3 within a claim: LX*2 as the first line is an error on LX01."""
    path = PUBLIC / "837p" / "kputnam-stupidedi__wheelchair.edi"
    data = path.read_bytes().replace(b"~LX*1~", b"~LX*2~")
    found = errors(validate(data))
    assert [(f.segment, f.element) for f in found] == [("LX", "LX01")]


def test_isa11_u_under_5010_is_not_called_a_separator_error() -> None:
    """ISA11 = U under 00501 is refused with 024 and a message about ISA11, not 026."""
    t = text(R271).replace("*^*00501*", "*U*00501*", 1)
    (ic,) = validate(t.encode()).interchanges
    assert ic.ta1 is not None
    assert ic.ta1.ack_code == "R"
    assert ic.ta1.note_code == "024"
    assert "ISA11" in ic.ta1.message


def test_isa12_00401_around_5010_content_is_one_quirk() -> None:
    """ISA12 00401: TA1 R 003 by default; a partner with isa12 leniency gets a warning and no TA1 R."""
    t = text(R271).replace("*00501*", "*00401*", 1)
    (ic,) = run(t).interchanges
    assert ic.ta1 is not None
    assert ic.ta1.note_code == "003"
    (ic,) = run(t, Options(leniency=frozenset({"isa12"}))).interchanges
    assert not ic.rejected
    assert any("ISA12" in w for w in ic.warnings)


@pytest.mark.parametrize(
    ("path", "version"),
    [
        ("837p/kputnam-stupidedi__commercial-health-insurance.edi.997", "005010X231"),
        ("837p/LinuxForHealth-x12__demo.example1.837", "005010X222A2"),
    ],
)
def test_errata_version_codes_follow_one_rule(path: str, version: str) -> None:
    """Another errata of a supported guide: a warning by default, IK502 19 when strict."""
    data = (PUBLIC / path).read_bytes()
    (s,) = sets(validate(data))
    assert s.ack_code == "E", s
    assert [f.code for f in s.findings if f.severity == "warning"] == ["19"]
    (s,) = sets(validate(data, Options(leniency=frozenset())))
    assert s.ack_code == "R"
    assert "19" in s.set_codes


def test_ack_out_never_acknowledges_acknowledgments(tmp_path: Path) -> None:
    """`x12gw validate --ack-out` on a received 999 writes no 999 back."""
    from gateway.cli import main  # noqa: PLC0415

    path = PUBLIC / "999" / "kputnam-stupidedi__response-to-functional-group-containing-3-837s.edi"
    main(["validate", str(path), "--ack-out", str(tmp_path / "acks")])
    assert not list((tmp_path / "acks").glob("*.999"))


def test_loop_instance_without_its_required_parts_is_rejected() -> None:
    """A duplicated CLM opens a second 2300 and leaves the first without HI or 2400 (IK304 3)."""
    path = PUBLIC / "837p" / "kputnam-stupidedi__wheelchair.edi"
    data = path.read_bytes()
    clm = data[data.index(b"~CLM*") + 1 : data.index(b"~", data.index(b"~CLM*") + 1) + 1]
    mutated = data.replace(clm, clm + clm, 1).replace(b"SE*43*", b"SE*44*")
    found = {(f.segment, f.code) for f in errors(validate(mutated))}
    assert ("HI", "3") in found
    assert ("LX", "3") in found
