"""Claims before billing: 837P and JSON claims are read, every line is matched to its authorization,
every mismatch kind is named with its fix, and units are recorded only with --commit."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import claims_cmd
from gateway.errors import StoreError
from gateway.lifecycle import RequestState
from gateway.runtime.config import parse_config
from gateway.store import Store, hash_member_id
from policy.claims import (
    KINDS,
    Authorization,
    AuthorizedService,
    Candidates,
    LineResult,
    PrecertLookup,
    authorization_from_record,
    check_claims,
    check_line,
)
from policy.precert import Decision, PrecertDecision, Service, decide, parse_rules
from tests.lifecycle_support import walk_request
from transactions.claims837 import Claim, ClaimLine, parse_claims_document, read_837p
from transactions.envelope_writer import GroupHeader, InterchangeHeader, TransactionBody, build_interchange
from transactions.errors import RequestError
from transactions.models import DateRange, Procedure
from transactions.segment import Delimiters, Segment, seg
from transactions.validation import Options, validate_detailed

pytest_plugins = ["tests.store_fixtures"]

ROOT = Path(__file__).resolve().parent.parent
CLAIMS = ROOT / "sample_edi" / "claims"
RULES = ROOT / "config" / "precert-rules.toml"
KEY = b"claims-test-member-key"
AS_OF = date(2026, 12, 20)

# ------------------------------------------------------------------------------------ 837P builder


def _nm1(entity: str, name: str, npi: str, first: str | None = None) -> Segment:
    kind = "1" if first else "2"
    return seg("NM1", entity, kind, name, first, None, None, None, "XX", npi)


def _claim_segments(c: Mapping[str, Any], hl: int) -> list[Segment]:
    out = [
        seg("HL", str(hl), "1", "22", "0"),
        seg("SBR", "P", "18", None, None, None, None, None, None, "CI"),
        seg("NM1", "IL", "1", "CANARYTEST", "ALPHA", None, None, None, "MI", c["member_id"]),
        seg("N3", "1 TEST LANE"),
        seg("N4", "SPRINGFIELD", "IL", "62701"),
        seg("DMG", "D8", "19700101", "F"),
        seg("NM1", "PR", "2", "ACME HEALTH PLAN", None, None, None, None, "PI", c.get("payer_id", "ACME01")),
    ]
    lines = c["lines"]
    total = sum(Decimal(str(line.get("charge", 100))) for line in lines)
    out.append(
        seg("CLM", c["claim_id"], str(total), None, None, (c.get("pos", "22"), "B", "1"), "Y", "A", "Y", "Y")
    )
    if c.get("ref"):
        out.append(seg("REF", "G1", c["ref"]))
    out.append(seg("HI", ("ABK", c.get("dx", "M5416"))))
    if c.get("rendering_npi"):
        out.append(_nm1("82", "RADIOLOGIST", c["rendering_npi"], "RAY"))
    for n, line in enumerate(lines, 1):
        start, end = line["start"], line.get("end")
        when = ("RD8", f"{start:%Y%m%d}-{end:%Y%m%d}") if end else ("D8", f"{start:%Y%m%d}")
        out += [
            seg("LX", str(n)),
            seg(
                "SV1",
                ("HC", line["code"], *line.get("modifiers", ())),
                str(line.get("charge", 100)),
                "UN",
                str(line.get("units", 1)),
                None,
                None,
                "1",
            ),
            seg("DTP", "472", *when),
        ]
        if line.get("ref"):
            out.append(seg("REF", "G1", line["ref"]))
        if line.get("npi"):
            out.append(_nm1("82", "RADIOLOGIST", line["npi"], "RAY"))
    return out


def build_837p(
    claims: Sequence[Mapping[str, Any]],
    *,
    billing_npi: str = "1234567893",
    billing_name: str = "RIVERSIDE IMAGING CENTER",
) -> bytes:
    """A valid 837P (005010X222A1) interchange: one subscriber HL and one CLM per claim given.

    Each claim: ``claim_id``, ``member_id``, ``payer_id``, ``pos``, ``ref`` (REF*G1), ``rendering_npi``,
    ``dx`` and ``lines`` of ``code``, ``modifiers``, ``units``, ``start``/``end`` dates, ``ref``, ``npi``.
    """
    body = [
        seg("BHT", "0019", "00", "BATCH0001", "20261220", "1200", "CH"),
        seg("NM1", "41", "2", billing_name, None, None, None, None, "46", "RIVERSIDE01"),
        seg("PER", "IC", "BILLING DESK", "TE", "5555550100"),
        seg("NM1", "40", "2", "ACME HEALTH PLAN", None, None, None, None, "46", "ACME01"),
        seg("HL", "1", None, "20", "1"),
        _nm1("85", billing_name, billing_npi),
        seg("N3", "100 MAIN ST"),
        seg("N4", "SPRINGFIELD", "IL", "62701"),
        seg("REF", "EI", "123456789"),
    ]
    for index, claim in enumerate(claims):
        body += _claim_segments(claim, index + 2)
    when = datetime(2026, 12, 20, 12, 0, tzinfo=UTC)
    header = InterchangeHeader("ZZ", "RIVERSIDE01", "ZZ", "ACME01", 1, when, usage="T")
    group = GroupHeader("HC", "RIVERSIDE01", "ACME01", 1, "005010X222A1", when)
    sets = [TransactionBody("837", 1, "005010X222A1", tuple(body))]
    return build_interchange(header, [(group, sets)], Delimiters(), newline="\n")


MRI_CLAIM: dict[str, Any] = {
    "claim_id": "PCN-1001",
    "member_id": "ZZM100000001",
    "payer_id": "ACME01",
    "pos": "22",
    "ref": "ACMEAUTH0001",
    "lines": [{"code": "72148", "units": 1, "start": date(2026, 12, 5), "charge": 1200}],
}


def claims_of(data: bytes) -> list[Claim]:
    validation = validate_detailed(data, Options(keep_placed=True))
    assert validation.report.all_accepted, validation.report
    return [c for s in validation.sets for c in read_837p(s.placed)]


# ------------------------------------------------------------------------------------------ reading


def test_built_837p_validates_and_reads_back() -> None:
    """The test builder's 837P passes pyx12's 837P map and reads back into the values it was built from."""
    data = build_837p([{**MRI_CLAIM, "rendering_npi": "1609876549"}])
    (claim,) = claims_of(data)
    assert (claim.claim_id, claim.member_id, claim.payer_id) == ("PCN-1001", "ZZM100000001", "ACME01")
    assert (claim.place_of_service, claim.prior_authorization, claim.billing_npi) == (
        "22",
        "ACMEAUTH0001",
        "1234567893",
    )
    (line,) = claim.lines
    assert (line.number, line.procedure.code, line.units, line.service_date) == (
        1,
        "72148",
        Decimal(1),
        DateRange(date(2026, 12, 5)),
    )
    assert claim.provider_npis(line) == ("1609876549", "1234567893")


def test_line_level_values_override_the_claims() -> None:
    """REF*G1, rendering NPI (2420A), modifiers and date ranges at 2400 are read per line."""
    data = build_837p(
        [
            {
                **MRI_CLAIM,
                "lines": [
                    {
                        "code": "E0601",
                        "modifiers": ["RR", "KX"],
                        "units": 2,
                        "start": date(2026, 12, 1),
                        "end": date(2026, 12, 31),
                        "ref": "LINEAUTH",
                        "npi": "1447621099",
                    },
                ],
            }
        ]
    )
    (claim,) = claims_of(data)
    (line,) = claim.lines
    assert line.procedure.modifiers == ("RR", "KX")
    assert line.service_date == DateRange(date(2026, 12, 1), date(2026, 12, 31))
    assert claim.line_reference(line) == "LINEAUTH"
    assert claim.provider_npis(line)[0] == "1447621099"


def test_public_837p_samples_read() -> None:
    """Every accepted public 837P sample reads into claims with lines, codes and service dates."""
    seen = 0
    for path in sorted((ROOT / "tests" / "public_x12" / "837p").glob("kputnam*.edi")):
        validation = validate_detailed(path.read_bytes(), Options(keep_placed=True))
        for s in validation.sets:
            for claim in read_837p(s.placed):
                assert claim.lines
                assert all(line.procedure.code for line in claim.lines)
                seen += 1
    assert seen >= 5


def test_sample_837p_and_json_claims_agree() -> None:
    """sample_edi/claims: the JSON claim says the same as the 837P it documents."""
    from_x12 = claims_of((CLAIMS / "837p-outpatient-mri.x12").read_bytes())
    from_json = parse_claims_document((CLAIMS / "claim-outpatient-mri.json").read_bytes())
    assert from_x12 == from_json


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"claim_id": "X", "member_id": "M", "lines": [], "color": "red"}, "color"),
        ({"claim_id": "X", "member_id": "M", "lines": []}, "lines"),
        ({"claim_id": "X", "lines": [{"number": 1}]}, "member_id"),
        (
            {"claim_id": "X", "member_id": "M", "lines": [{"number": 1, "procedure": {"code": "72148"}}]},
            "lines[0].service_date",
        ),
        (
            {
                "claim_id": "X",
                "member_id": "M",
                "lines": [
                    {
                        "number": 1,
                        "procedure": {"code": "72148"},
                        "units": 0,
                        "service_date": {"start": "2026-12-05"},
                    }
                ],
            },
            "units",
        ),
    ],
)
def test_bad_json_claims_name_the_field(doc: dict[str, Any], field: str) -> None:
    """A JSON claim that cannot be used is refused with the path of the field to fix."""
    with pytest.raises(RequestError) as info:
        parse_claims_document(json.dumps({"claims": [doc]}))
    assert field in str(info.value)


def test_line_without_service_date_is_named_not_quoted() -> None:
    """An 837P line without DTP*472 is an error naming the CLM and LX (the claim id is no member data)."""
    data = build_837p([MRI_CLAIM]).replace(b"DTP*472*D8*20261205~\n", b"")
    validation = validate_detailed(data, Options(keep_placed=True))
    with pytest.raises(RequestError, match="CLM PCN-1001 LX 1"):
        read_837p(validation.sets[0].placed)


# ----------------------------------------------------------------------------------------- matching


def auth(**changes: Any) -> Authorization:
    """An approved MRI authorization: 72148 x1, 2026-12-05..2027-03-05, ACMEAUTH0001, NPI 1234567893."""
    service = AuthorizedService(
        index=0,
        procedure_code=changes.pop("code", "72148"),
        modifiers=tuple(changes.pop("modifiers", ())),
        quantity=changes.pop("quantity", Decimal(1)),
        status=changes.pop("line_status", "approved"),
        certification_number="ACMEAUTH0001",
        start=date(2026, 12, 5),
        end=date(2027, 3, 5),
    )
    base = Authorization(
        id=7,
        tracking_number="GW-T-0000000001",
        status="approved",
        certification_number="ACMEAUTH0001",
        start=date(2026, 12, 5),
        end=date(2027, 3, 5),
        provider_npi="1234567893",
        services=(service,),
        member_id="ZZM100000001",
    )
    return replace(base, **changes)


def claim(*, ref: str | None = "ACMEAUTH0001", **line_changes: Any) -> Claim:
    line = ClaimLine(
        number=1,
        procedure=Procedure(line_changes.pop("code", "72148"), tuple(line_changes.pop("modifiers", ()))),
        service_date=line_changes.pop("service_date", DateRange(date(2026, 12, 5))),
        units=line_changes.pop("units", Decimal(1)),
    )
    return Claim(
        claim_id="PCN-1001",
        member_id=line_changes.pop("member_id", "ZZM100000001"),
        lines=(replace(line, **line_changes),),
        payer_id="ACME01",
        billing_npi="1234567893",
        place_of_service="22",
        prior_authorization=ref,
    )


def run_line(
    c: Claim,
    auths: Sequence[Authorization],
    used: Mapping[tuple[int, int], Decimal] | None = None,
    precert: PrecertLookup | None = None,
) -> LineResult:
    by_number: dict[str, list[Authorization]] = {}
    for a in auths:
        for n in a.numbers():
            by_number.setdefault(n, []).append(a)
    candidates = Candidates(by_number, {"ZZM100000001": [a for a in auths if a.member_id == "ZZM100000001"]})
    return check_line(c, c.lines[0], candidates, used or {}, as_of=AS_OF, precert=precert)


MISMATCH_CASES: list[tuple[str, Claim, list[Authorization], Mapping[tuple[int, int], Decimal], str, str]] = [
    ("member", claim(member_id="ZZM999"), [auth()], {}, "member", "issued for another member"),
    (
        "pended",
        claim(),
        [auth(status="pended")],
        {},
        "not_approved",
        "is pended: wait for the payer's decision",
    ),
    (
        "denied",
        claim(),
        [auth(status="denied")],
        {},
        "not_approved",
        "is denied: appeal with clinical records",
    ),
    ("cancelled", claim(), [auth(status="cancelled")], {}, "not_approved", "request a new authorization"),
    (
        "line denied in a partial approval",
        claim(),
        [auth(status="partially_approved", line_status="denied")],
        {},
        "not_approved",
        "did not approve this service (denied)",
    ),
    (
        "different number",
        claim(ref="ACMEAUTH9999"),
        [auth()],
        {},
        "certification_number",
        "ACMEAUTH9999 on the claim differs from the authorization's ACMEAUTH0001: correct REF*G1",
    ),
    ("missing number", claim(ref=None), [auth()], {}, "certification_number", "add REF*G1 ACMEAUTH0001"),
    (
        "other procedure",
        claim(code="72149"),
        [auth()],
        {},
        "procedure_code",
        "procedure 72149 is not among the services authorization ACMEAUTH0001 approved (72148)",
    ),
    (
        "modifier missing",
        claim(),
        [auth(code="72148", modifiers=["RT"])],
        {},
        "modifiers",
        "modifier RT that authorization ACMEAUTH0001 approved for 72148 is missing",
    ),
    (
        "before start",
        claim(service_date=DateRange(date(2026, 12, 1))),
        [auth()],
        {},
        "before_start",
        "service date 2026-12-01 is before the certification start date 2026-12-05",
    ),
    (
        "after end",
        claim(service_date=DateRange(date(2027, 3, 6))),
        [auth()],
        {},
        "after_end",
        "service date 2027-03-06 is after the certification end date 2027-03-05: request an extension",
    ),
    (
        "range runs past the end",
        claim(service_date=DateRange(date(2027, 3, 1), date(2027, 3, 9))),
        [auth()],
        {},
        "after_end",
        "service date 2027-03-09 is after",
    ),
    (
        "too many units",
        claim(units=Decimal(2)),
        [auth()],
        {},
        "units",
        "2 unit(s) billed exceed the 1 approved by authorization ACMEAUTH0001: bill at most 1",
    ),
    (
        "units already billed",
        claim(),
        [auth(quantity=Decimal(3))],
        {(7, 0): Decimal("2.5")},
        "units",
        "1 unit(s) billed plus 2.5 already billed exceed the 3 approved by authorization ACMEAUTH0001: "
        "bill at most 0.5",
    ),
    (
        "provider",
        claim(),
        [auth(provider_npi="1447621099")],
        {},
        "provider",
        "names servicing provider NPI 1447621099, the claim has 1234567893",
    ),
]


@pytest.mark.parametrize(
    ("claim_", "auths", "used", "kind", "text"),
    [case[1:] for case in MISMATCH_CASES],
    ids=[case[0] for case in MISMATCH_CASES],
)
def test_each_mismatch_kind_is_named_with_its_fix(
    claim_: Claim, auths: list[Authorization], used: Mapping[tuple[int, int], Decimal], kind: str, text: str
) -> None:
    """Each check fails on its own with one mismatch of its kind whose message says how to fix it."""
    result = run_line(claim_, auths, used)
    assert result.outcome == "fail"
    assert [m.kind for m in result.mismatches] == [kind]
    assert text in result.mismatches[0].message
    assert result.consumption is None


def test_every_mismatch_kind_is_covered() -> None:
    """The table above plus the no-authorization tests below exercise every documented kind."""
    covered = {case[4] for case in MISMATCH_CASES} | {"no_authorization", "unknown_reference"}
    assert covered == set(KINDS)


def test_matching_line_is_ok_and_proposes_its_units() -> None:
    """A line that satisfies every check passes and would use its units on the authorization's service."""
    result = run_line(claim(), [auth()])
    assert (result.outcome, result.mismatches, result.certification_number) == ("ok", (), "ACMEAUTH0001")
    assert result.consumption is not None
    assert (result.consumption.authorization_id, result.consumption.service_index) == (7, 0)


def test_found_by_member_when_the_claim_has_no_number() -> None:
    """Without REF*G1 the member's authorization for the procedure is found (and the number is asked for)."""
    result = run_line(claim(ref=None), [auth()])
    assert result.authorization == "GW-T-0000000001"
    assert [m.kind for m in result.mismatches] == ["certification_number"]


def test_best_candidate_wins() -> None:
    """Of two authorizations for the member, the one without mismatches is chosen."""
    expired = auth(id=3, certification_number="OLD1", end=date(2026, 1, 31), start=date(2025, 11, 1))
    expired = replace(
        expired,
        services=(
            replace(
                expired.services[0],
                certification_number="OLD1",
                start=date(2025, 11, 1),
                end=date(2026, 1, 31),
            ),
        ),
    )
    result = run_line(claim(ref=None), [expired, auth()])
    assert result.authorization == "GW-T-0000000001"


def _precert(decision: Decision, retro: date | None = None) -> PrecertLookup:
    made = PrecertDecision(decision, "rule", f"rule says {decision}", "ACME01", retro_deadline=retro)
    return lambda _claim, _line: made


@pytest.mark.parametrize(
    ("ref", "precert", "outcome", "kind", "text"),
    [
        ("NOSUCH", None, "fail", "unknown_reference", "no authorization with number NOSUCH is on file"),
        (
            None,
            _precert("required", date(2026, 12, 31)),
            "fail",
            "no_authorization",
            "request a retro-authorization by 2026-12-31",
        ),
        (
            None,
            _precert("required", date(2026, 12, 10)),
            "fail",
            "no_authorization",
            "the retro-authorization window closed on 2026-12-10",
        ),
        (None, _precert("required"), "fail", "no_authorization", "request an authorization before billing"),
        (None, _precert("not_required"), "ok", None, "no authorization needed: rule says not_required"),
        (None, _precert("unknown"), "warn", None, "no rule says whether it needs one"),
        (None, None, "warn", None, "check the payer's list"),
    ],
)
def test_lines_without_an_authorization(
    ref: str | None, precert: PrecertLookup | None, outcome: str, kind: str | None, text: str
) -> None:
    """No authorization: an unknown number fails; otherwise the rules decide between fail, ok and warn."""
    result = run_line(claim(ref=ref), [], precert=precert)
    assert result.outcome == outcome
    assert [m.kind for m in result.mismatches] == ([kind] if kind else [])
    said = result.mismatches[0].message if result.mismatches else result.note
    assert said is not None
    assert text in said


def test_real_rules_judge_lines_without_authorization() -> None:
    """Sample rules: an office visit needs no authorization; an MRI needs one (ACME: 14-day retro window)."""
    rules = parse_rules(RULES.read_text())

    def lookup(c: Claim, line: ClaimLine) -> PrecertDecision:
        return decide(
            rules,
            c.payer_id,
            Service(
                code=line.procedure.code,
                place_of_service=c.place_of_service,
                service_date=line.service_date.start,
            ),
        )

    assert run_line(claim(ref=None, code="99213"), [], precert=lookup).outcome == "ok"
    mri = run_line(claim(ref=None, service_date=DateRange(date(2026, 12, 15))), [], precert=lookup)
    assert "request a retro-authorization by 2026-12-29" in mri.mismatches[0].message


def test_units_add_up_across_lines_of_one_run() -> None:
    """Two lines for one authorization: the second is checked against what the first used."""
    a = auth(quantity=Decimal(3))
    first = ClaimLine(1, Procedure("72148"), DateRange(date(2026, 12, 5)), units=Decimal(2))
    second = replace(first, number=2, service_date=DateRange(date(2026, 12, 6)))
    c = replace(claim(), lines=(first, second))
    results = check_claims([c], Candidates({"ACMEAUTH0001": [a]}, {}), {}, as_of=AS_OF)
    assert [r.outcome for r in results] == ["ok", "fail"]
    assert "plus 2 already billed exceed the 3" in results[1].mismatches[0].message


def test_authorization_from_a_mapped_record() -> None:
    """A stored record (x12gw map --json form) gives the certified period, quantity, NPI and member."""
    doc = json.loads(
        (ROOT / "sample_edi" / "responses" / "278resp-A6-modified-lines-differ.x12.expected.json").read_text()
    )
    record = doc["authorizations"][0]
    a = authorization_from_record(5, "GW-X", record, {"servicing_provider": {"npi": "1609876549"}})
    assert (a.status, a.certification_number, a.start, a.end) == (
        "modified",
        "ACMEAUTH0003",
        date(2026, 12, 1),
        date(2027, 2, 28),
    )
    assert [(s.procedure_code, s.modifiers, s.quantity, s.status) for s in a.services] == [
        ("E0601", ("RR",), Decimal(3), "approved"),
        ("A7030", ("NU",), Decimal(2), "denied"),
    ]
    assert a.provider_npi == "1609876549"  # the response names none; the request's servicing provider
    assert a.member_id == "ZZM100000003"
    assert "ZZM100000003" not in repr(a)


# --------------------------------------------------------------------------------------------- CLI


@pytest.fixture
def gateway_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A configuration file with the sample rules and a store holding the sample MRI approval."""
    monkeypatch.setenv("X12GW_MEMBER_HASH_KEY", KEY.decode())
    config_file = tmp_path / "gateway.toml"
    config_file.write_text(
        f"""
[identity]
isa_id = "X12GATEWAY"
trace_assigner = "9X12GATEWY"
[precert]
rules_file = "{RULES}"
[[partners]]
name = "acme"
host = "127.0.0.1"
username = "gw"
key_file = "keys/none"
host_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEJDjQV2EwpqNs3K+OY7FVWuI6hEk6QKQDvVogXt/S71"]
upload_dir = "/in"
download_dir = "/out"
isa_id = "ACMEID"
payers = ["ACME01"]
"""
    )
    import tomllib  # noqa: PLC0415

    config = parse_config(tomllib.loads(config_file.read_text()), tmp_path)
    config.folders.ensure()
    record = json.loads(
        (ROOT / "sample_edi" / "responses" / "278resp-A1-certified.x12.expected.json").read_text()
    )
    store = Store.open(config.database_url())
    with store.begin() as tx:
        tx.requests.insert(
            tracking_number="GW-T-0000000001",
            kind="278",
            payer_id="ACME01",
            partner="acme",
            member_id_hash=hash_member_id("ZZM100000001", KEY),
            payload=json.loads((ROOT / "sample_edi" / "requests" / "278-outpatient-mri.json").read_text()),
        )
        walk_request(tx, "GW-T-0000000001", RequestState.ANSWERED)
        a = record["authorizations"][0]
        tx.results.upsert_authorization(
            tracking_number="GW-T-0000000001",
            status=a["status"],
            record=a,
            certification_number=a["certification_number"],
            effective_from=date.fromisoformat(a["effective_from"]),
            effective_to=date.fromisoformat(a["effective_to"]),
        )
    store.close()
    return config_file


def cli(config_file: Path, path: Path, *extra: str) -> int:
    parser = argparse.ArgumentParser()
    claims_cmd.register(parser.add_subparsers())
    args = parser.parse_args(
        ["claims", "check", str(path), "--config", str(config_file), "--as-of", "2026-12-20", *extra]
    )
    code: int = args.func(args)
    return code


def test_cli_passes_the_sample_claim(gateway_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The sample 837P matches the sample approval: exit 0, one OK line naming the certification."""
    assert cli(gateway_dir, CLAIMS / "837p-outpatient-mri.x12") == 0
    out = capsys.readouterr().out
    assert "claim PCN-1001 line 1 72148 2026-12-05: OK (authorization ACMEAUTH0001)" in out
    assert "ZZM100000001" not in out
    assert "CANARYTEST" not in out


def test_cli_reports_failures_as_json_and_exit_1(
    gateway_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A claim after the certification end fails with exit 1 and the fix in the JSON output."""
    bad = tmp_path / "late.x12"
    bad.write_bytes(build_837p([{**MRI_CLAIM, "lines": [{"code": "72148", "start": date(2027, 3, 6)}]}]))
    assert cli(gateway_dir, bad, "--json") == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False
    (line,) = doc["lines"]
    assert line["outcome"] == "fail"
    assert line["mismatches"][0]["kind"] == "after_end"


def test_commit_records_units_once_and_next_claims_see_them(
    gateway_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--commit records the units; re-checking that claim still passes, a second claim for the same
    authorization fails on units, and committing again adds nothing."""
    sample = CLAIMS / "837p-outpatient-mri.x12"
    assert cli(gateway_dir, sample) == 0
    assert cli(gateway_dir, sample, "--commit") == 0
    assert "units recorded for 1 line(s)" in capsys.readouterr().out
    assert cli(gateway_dir, sample, "--commit") == 0
    assert "units recorded for 0 line(s)" in capsys.readouterr().out
    second = tmp_path / "second.json"
    second.write_text(
        json.dumps(
            {
                "claim_id": "PCN-2002",
                "member_id": "ZZM100000001",
                "payer_id": "ACME01",
                "billing_npi": "1234567893",
                "prior_authorization": "ACMEAUTH0001",
                "lines": [
                    {
                        "number": 1,
                        "procedure": {"code": "72148"},
                        "units": 1,
                        "service_date": {"start": "2026-12-05"},
                    }
                ],
            }
        )
    )
    assert cli(gateway_dir, second) == 1
    assert "plus 1 already billed exceed the 1" in capsys.readouterr().out


def test_rejected_837p_is_exit_1_and_not_x12_is_exit_2(
    gateway_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An 837P that fails the implementation guide is reported (exit 1); unreadable input is exit 2."""
    broken = tmp_path / "broken.x12"
    broken.write_bytes(build_837p([MRI_CLAIM]).replace(b"SBR*P*18", b"SBR*Q*18"))
    assert cli(gateway_dir, broken) == 1
    assert "SBR" in capsys.readouterr().err
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    assert cli(gateway_dir, junk) == 2


# ------------------------------------------------------------------------------------------- store


def _seed_authorization(st: Store, tracking: str, member: str, cert: str | None, end: date | None) -> int:
    with st.begin() as tx:
        tx.requests.insert(
            tracking_number=tracking,
            kind="278",
            payer_id="ACME01",
            partner="acme",
            member_id_hash=hash_member_id(member, KEY),
            payload={"client_reference": tracking},
        )
        row = tx.results.upsert_authorization(
            tracking_number=tracking,
            status="approved",
            record={"status": "approved"},
            certification_number=cert,
            effective_to=end,
        )
    return row.id


def test_store_claim_queries_on_each_backend(store: Store) -> None:
    """Member and number lookups join the request; units are summed, excluded per claim, recorded once."""
    first = _seed_authorization(store, "GW-1", "M1", "CERT1", date(2026, 12, 10))
    second = _seed_authorization(store, "GW-2", "M1", "CERT2", date(2027, 1, 10))
    _seed_authorization(store, "GW-3", "M2", "CERT1", None)
    claim_a, claim_b = "a" * 64, "b" * 64
    with store.begin() as tx:
        assert tx.claims.record_units(
            authorization_id=first,
            service_index=0,
            claim_hash=claim_a,
            line_number=1,
            units=Decimal("1.5"),
            procedure_code="72148",
        )
        assert not tx.claims.record_units(
            authorization_id=first, service_index=0, claim_hash=claim_a, line_number=1, units=Decimal("1.5")
        )
        assert tx.claims.record_units(
            authorization_id=first, service_index=0, claim_hash=claim_b, line_number=1, units=Decimal(2)
        )
        assert tx.claims.record_units(
            authorization_id=second, service_index=-1, claim_hash=claim_b, line_number=2, units=Decimal(1)
        )
    with store.read() as tx:
        mine = tx.claims.authorizations_for_member(hash_member_id("M1", KEY))
        assert [(a.tracking_number, r.tracking_number) for a, r in mine] == [
            ("GW-2", "GW-2"),
            ("GW-1", "GW-1"),
        ]
        assert sorted(a.tracking_number for a, _ in tx.claims.authorizations_by_number("CERT1")) == [
            "GW-1",
            "GW-3",
        ]
        assert tx.claims.units_used([first, second]) == {(first, 0): Decimal("3.5"), (second, -1): Decimal(1)}
        assert tx.claims.units_used([first, second], exclude_claims=[claim_b]) == {(first, 0): Decimal("1.5")}
        assert tx.claims.units_used([]) == {}
        expiring = tx.claims.authorizations_expiring(start=date(2026, 12, 1), end=date(2026, 12, 31))
        assert [a.tracking_number for a in expiring] == ["GW-1"]
        assert tx.audit.latest_states("authorization.units")[first].new_state == "billed"


@pytest.mark.parametrize(
    ("claim_hash", "units", "problem"),
    [
        ("PCN-1001", Decimal(1), "HMAC digest"),
        ("c" * 64, Decimal(0), "positive"),
        ("c" * 64, Decimal("0.0001"), "three decimals"),
    ],
    ids=["raw claim number", "zero units", "too precise"],
)
def test_record_units_refuses_bad_values(store: Store, claim_hash: str, units: Decimal, problem: str) -> None:
    """A raw claim number (PHI), zero or over-precise units are refused before anything is written."""
    auth_id = _seed_authorization(store, "GW-1", "M1", "CERT1", None)
    with pytest.raises(StoreError, match=problem), store.begin() as tx:
        tx.claims.record_units(
            authorization_id=auth_id, service_index=0, claim_hash=claim_hash, line_number=1, units=units
        )


def test_latest_eligibility_for_member_by_payer(store: Store) -> None:
    """The member's newest 271 outcome is found through the member hash, optionally for one payer."""
    for tracking, payer in (("GW-E1", "ACME01"), ("GW-E2", "BLUE01")):
        with store.begin() as tx:
            tx.requests.insert(
                tracking_number=tracking,
                kind="270",
                payer_id=payer,
                partner="acme",
                member_id_hash=hash_member_id("M1", KEY),
                payload={},
            )
            tx.results.upsert_eligibility(tracking_number=tracking, status="active", record={"payer": payer})
    with store.read() as tx:
        acme = tx.results.latest_eligibility_for_member(hash_member_id("M1", KEY), payer_id="acme01")
        assert acme is not None
        assert acme.tracking_number == "GW-E1"
        assert tx.results.latest_eligibility_for_member(hash_member_id("M1", KEY)) is not None
        assert tx.results.latest_eligibility_for_member(hash_member_id("M9", KEY)) is None
