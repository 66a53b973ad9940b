"""Two verdicts kept apart: a readable response is mapped whatever its 999 says, and the record carries
that verdict; decision levels, per-person benefits and addressing (issue 13)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.cli.map_cmd import load_rules, map_file
from mappings.mapper import map_validation
from mappings.records import AuthorizationRecord, EligibilityResult
from tests.x12text import ROOT, fix_se
from transactions.acks import AckEnvelope, build_999
from transactions.validation import Options, validate_detailed

RESPONSES = ROOT / "sample_edi" / "responses"
A1 = "278resp-A1-certified.x12"


def text(name: str) -> str:
    return (RESPONSES / name).read_text()


def mapped(t: str) -> list[tuple[str, object]]:
    _, sets = map_file(fix_se(t).encode(), load_rules(None))
    return [(m.validation, r) for m in sets for r in m.records]


def test_278_with_an_ig_error_still_yields_its_authorization() -> None:
    """UM02 with a bad code: the set is 999-rejected, the approval is mapped with validation rejected."""
    t = text(A1).replace("UM*HS*I*73", "UM*HS*Q*73")
    ((verdict, record),) = mapped(t)
    assert verdict == "rejected"
    assert isinstance(record, AuthorizationRecord)
    assert (record.status, record.certification_number) == ("approved", "ACMEAUTH0001")


def test_our_999_still_says_what_is_wrong() -> None:
    """The 999 for that response rejects the set and names UM02 with IK403 7."""
    t = fix_se(text(A1).replace("UM*HS*I*73", "UM*HS*Q*73"))
    (ic,) = validate_detailed(t.encode()).report.interchanges
    data = build_999(ic, AckEnvelope("ZZ", "X12GATEWAY", 1, 1, datetime(2026, 1, 1, tzinfo=UTC)), 1)
    assert data is not None
    for expected in (b"IK3*UM*", b"IK4*2*1322*7", b"IK5*R*5"):
        assert expected in data


def test_medicaid_placeholder_birth_date_maps_as_accepted() -> None:
    """DMG*D8*10010101 (a real calendar date) does not stand in the way of the approval."""
    ((verdict, record),) = mapped(text(A1).replace("DMG*D8*19700101", "DMG*D8*10010101"))
    assert verdict == "accepted"
    assert isinstance(record, AuthorizationRecord)
    assert record.certification_number == "ACMEAUTH0001"


def test_map_cli_json_exits_0_and_names_the_failed_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`x12gw map --json` on a response with an IG error: exit 0, the record and the set say rejected."""
    path = tmp_path / "resp.x12"
    path.write_text(fix_se(text(A1).replace("UM*HS*I*73", "UM*HS*Q*73")))
    assert main(["map", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (auth,) = doc["authorizations"]
    assert auth["validation"] == "rejected"
    assert any(f["element"] == "UM02" for f in auth["findings"])
    (s,) = doc["transaction_sets"]
    assert (s["ack_code"], s["validation"], s["records"]) == ("R", "rejected", 1)


def test_service_lines_say_where_their_decision_comes_from() -> None:
    """A 2000F with its own HCR is `service`; without one it inherits the event's and is `event`."""
    t = text(A1)
    ((_, own),) = mapped(t)
    assert isinstance(own, AuthorizationRecord)
    assert [s.decision_level for s in own.services] == ["service"]
    line_hcr = "TRN*2*AU-0001-1*9999999999~\nHCR*A1*ACMEAUTH0001~\n"
    ((_, inherited),) = mapped(t.replace(line_hcr, "TRN*2*AU-0001-1*9999999999~\n"))
    assert isinstance(inherited, AuthorizationRecord)
    assert [(s.decision_level, s.action_code) for s in inherited.services] == [("event", "A1")]


def test_subscriber_benefits_are_kept_beside_the_dependents() -> None:
    """With a 2000D present, the subscriber's 2110C EBs are mapped as the subscriber's benefits."""
    t = text("271-dependent-active.x12").replace(
        "DMG*D8*19680505*M~\n",
        "DMG*D8*19680505*M~\nEB*1*IND*30**CANARY GOLD PPO~\nEB*C*IND*30***23*1500*****Y~\n",
    )
    ((_, result),) = mapped(t)
    assert isinstance(result, EligibilityResult)
    assert [b.code for b in result.subscriber_benefits] == ["1", "C"]
    assert len(result.benefits) == t.count("\nEB*") - 2


def test_no_phantom_result_for_a_subscriber_loop_without_a_name() -> None:
    """A 2000C without 2100C maps to no eligibility result (coverage `unknown` would be invented)."""
    t = text("271-subscriber-active.x12")
    start = t.index("NM1*IL*")
    end = t.index("SE*")
    ((verdict, record),) = mapped(t[:start] + t[end:]) or [("none", None)]
    assert (verdict, record) == ("none", None)


@pytest.mark.parametrize(
    ("opts", "reason"),
    [
        (Options(keep_placed=True, our_ids=frozenset({"SOMEONEELSE"})), "ISA08"),
        (Options(keep_placed=True, our_gs_ids=frozenset({"SOMEONEELSE"})), "GS03"),
    ],
)
def test_interchange_addressed_to_someone_else_is_not_applied(opts: Options, reason: str) -> None:
    """ISA08 (TA1 R 009) or GS03 (group R, AK905 1) not ours: a reason is given and nothing is mapped."""
    validation = validate_detailed(text(A1).encode(), opts)
    (ic,) = validation.report.interchanges
    assert ic.misaddressed is not None
    assert reason in ic.misaddressed
    if reason == "ISA08":
        assert ic.ta1 is not None
        assert (ic.ta1.ack_code, ic.ta1.note_code) == ("R", "009")
    else:
        assert (ic.groups[0].ack_code, ic.groups[0].group_codes) == ("R", ("1",))
    assert map_validation(validation) == []
