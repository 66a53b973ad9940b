"""Pre-certification rules per payer: codes, ranges, service types, categories and places of service
decide; 271 evidence wins; the inbox gate answers "not required" locally; deadlines and alerts."""

from __future__ import annotations

import argparse
import copy
import json
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import precert_cmd
from gateway.errors import ConfigError
from gateway.lifecycle import RequestState
from gateway.runtime.config import GatewayConfig, parse_config
from gateway.runtime.context import Context
from gateway.runtime.runner import open_context
from gateway.stages import deadlines, intake
from gateway.store import RequestRow, Store, hash_member_id
from mappings.records import AuthorizationRequirement
from policy.precert import (
    EMPTY_RULES,
    CodeSet,
    Evidence,
    PrecertRuleError,
    Rule,
    Service,
    answer_locally,
    decide,
    decide_request,
    decision_due,
    evidence_from_record,
    is_expedited,
    parse_rules,
)
from tests.lifecycle_support import walk_request
from transactions.models import ServiceReviewRequest
from transactions.requests_json import request_from_obj

ROOT = Path(__file__).resolve().parent.parent
RULES_FILE = ROOT / "config" / "precert-rules.toml"
RULES = parse_rules(RULES_FILE.read_text())
REQUESTS = ROOT / "sample_edi" / "requests"
KEY = "precert-test-member-hash-key"
MEMBER = "ZZM100000001"

# ------------------------------------------------------------------------------------------- codes


@pytest.mark.parametrize(
    ("code", "inside"),
    [
        ("70551", True),
        ("70553", True),
        ("70554", False),
        ("E0601", True),
        ("E8002", True),
        ("E8003", False),
        ("K0001", True),  # K* prefix
        ("0042T", True),
        ("E060", False),  # shorter than the range's codes
        ("e0601", True),  # case does not matter
        ("", False),
    ],
)
def test_code_set_exact_ranges_and_prefixes(code: str, inside: bool) -> None:
    """Ranges hold same-length codes between their ends; prefixes and exact codes match as written."""
    codes = CodeSet(
        frozenset({"27447"}), (("70551", "70553"), ("E0100", "E8002"), ("0001T", "0999T")), ("K",)
    )
    assert (code in codes) is inside


RULE = Rule(
    "r",
    True,
    CodeSet(frozenset({"72148"})),
    frozenset({"62"}),
    frozenset({"HS"}),
    frozenset({"22"}),
)


@pytest.mark.parametrize(
    ("service", "matches"),
    [
        (Service("72148", service_type="62", category="HS", place_of_service="22"), True),
        (Service("72149", service_type="62", category="HS", place_of_service="22"), False),
        (Service("72148", service_type="73", category="HS", place_of_service="22"), False),
        (Service("72148", service_type="62", category="AR", place_of_service="22"), False),
        (Service("72148", service_type="62", category="HS", place_of_service="11"), False),
        (Service(None, service_type="62", category="HS", place_of_service="22"), False),
    ],
)
def test_every_given_criterion_must_match(service: Service, matches: bool) -> None:
    """A rule matches only when its codes, service types, categories and places of service all hold."""
    assert RULE.matches(service) is matches


# ----------------------------------------------------------------------------------- sample rules


@pytest.mark.parametrize(
    ("payer", "service", "decision", "why"),
    [
        ("ACME01", Service("70551"), "required", "advanced imaging"),
        ("ACME01", Service("70553", place_of_service="22"), "required", "advanced imaging"),
        ("ACME01", Service("72141"), "required", "advanced imaging"),
        ("ACME01", Service("72158"), "required", "advanced imaging"),
        ("ACME01", Service("78811"), "required", "PET"),
        ("ACME01", Service("78816"), "required", "PET"),
        ("ACME01", Service("E0100"), "required", "DME"),
        ("ACME01", Service("E8002"), "required", "DME"),
        ("ACME01", Service("K0823"), "required", "DME"),
        ("ACME01", Service("27447"), "required", "listed elective surgeries"),
        ("ACME01", Service(None, category="AR", service_type="48"), "required", "inpatient admission"),
        ("ACME01", Service(None, service_type="18"), "required", "DME by service type"),
        ("ACME01", Service("70553", place_of_service="23"), "not_required", "emergency room"),
        ("ACME01", Service("70553", place_of_service="21"), "not_required", "inpatient stay"),
        ("ACME01", Service("95810", place_of_service="22"), "required", "sleep"),
        ("ACME01", Service("95810", place_of_service="12"), "not_required", "no rule matches"),
        ("ACME01", Service("99213"), "not_required", "no rule matches"),
        ("BLUE01", Service("70553", place_of_service="11"), "not_required", "MRI in the office"),
        ("BLUE01", Service("70553", place_of_service="22"), "required", "advanced imaging"),  # default rules
        ("BLUE01", Service("12345"), "unknown", "no rule matches"),
        ("OTHER", Service("78813"), "required", "default rules"),
        ("OTHER", Service("99214"), "not_required", "office visits"),
        ("OTHER", Service("12345"), "unknown", "default rules"),
    ],
)
def test_sample_rules_answer_the_documented_cases(
    payer: str, service: Service, decision: str, why: str
) -> None:
    """config/precert-rules.toml: imaging, PET, DME/K-codes, surgeries, admissions, places of service."""
    result = decide(RULES, payer, service)
    assert result.decision == decision
    assert why in result.reason


def test_payer_sets_inherit_times_and_retro_window_from_default() -> None:
    """Keys a payer leaves out come from [default]; its own override them; ids ignore case."""
    acme, blue, other = RULES.for_payer("acme01"), RULES.for_payer("BLUE01"), RULES.for_payer("NOPE")
    assert (acme.retro_authorization_days, acme.decision_time_standard) == (14, timedelta(days=7))
    assert (blue.decision_time_standard, blue.decision_time_expedited) == (
        timedelta(days=14),
        timedelta(hours=72),
    )
    assert (blue.otherwise, other.name) == ("unknown", "default")


def test_retro_deadline_follows_the_payers_window() -> None:
    """A required service with a date gets the last day a retro-authorization may be asked for."""
    when = date(2026, 12, 5)
    assert decide(RULES, "ACME01", Service("72148", service_date=when)).retro_deadline == date(2026, 12, 19)
    assert decide(RULES, "BLUE01", Service("72148", service_date=when)).retro_deadline == date(2026, 12, 8)
    assert decide(RULES, "ACME01", Service("99213", service_date=when)).retro_deadline is None


def test_no_rules_means_unknown() -> None:
    """Without a rules file every answer is unknown (so the gate never answers locally)."""
    assert decide(EMPTY_RULES, "ACME01", Service("72148")).decision == "unknown"


# ---------------------------------------------------------------------------------- 271 evidence


def evidence(*reqs: tuple[str, tuple[str, ...], str | None]) -> tuple[Evidence, ...]:
    made = tuple(AuthorizationRequirement(flag, types, code, None) for flag, types, code in reqs)
    return (Evidence("271 for GW-T-1 of 2026-11-20", made),)


@pytest.mark.parametrize(
    ("reqs", "service", "decision", "about"),
    [
        ((("N", (), "72148"),), Service("72148"), "not_required", "procedure 72148"),
        ((("Y", (), "99213"),), Service("99213"), "required", "procedure 99213"),
        ((("N", ("73",), None),), Service("72148", service_type="73"), "not_required", "service type 73"),
        (
            (("Y", ("73",), None), ("N", (), "72148")),
            Service("72148", service_type="73"),
            "not_required",
            "procedure 72148",
        ),
        (
            (("N", ("73",), None), ("Y", ("73",), None)),
            Service("72148", service_type="73"),
            "required",
            "service type 73",
        ),
    ],
)
def test_payer_evidence_wins_over_rules(
    reqs: tuple[tuple[str, tuple[str, ...], str | None], ...], service: Service, decision: str, about: str
) -> None:
    """EB11 Y/N decides and is named; a procedure answer beats a service type one; Y beats N."""
    result = decide(RULES, "ACME01", service, evidence(*reqs))
    assert (result.decision, result.basis) == (decision, "271")
    assert about in result.reason
    assert "271 for GW-T-1 of 2026-11-20" in result.reason


def test_unknown_or_unrelated_evidence_falls_back_to_rules() -> None:
    """EB11 U, or answers about other procedures and service types, leave the rules to decide."""
    ev = evidence(("U", (), "72148"), ("N", ("30",), None), ("N", (), "70553"))
    result = decide(RULES, "ACME01", Service("72148", service_type="73"), ev)
    assert (result.decision, result.basis) == ("required", "rule")


def test_evidence_from_a_stored_eligibility_record() -> None:
    """The stored 271 record's authorization_requirements become evidence (malformed items skipped)."""
    doc = json.loads(
        (
            ROOT / "sample_edi/responses/271-several-service-types-auth-required-imaging.x12.expected.json"
        ).read_text()
    )
    record = doc["eligibility"][0]
    ev = evidence_from_record(
        {
            **record,
            "authorization_requirements": [
                *record["authorization_requirements"],
                {"required": "maybe"},
                "junk",
            ],
        },
        "271 sample",
    )
    assert ev.requirements == evidence_from_record(record, "x").requirements
    assert any(r.required == "Y" for r in ev.requirements)


# --------------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("colour = 1", "colour: unknown key"),
        ("[default]\nretro_authorization_days = -1", "default.retro_authorization_days"),
        ('[default]\ndecision_time_standard = "7 weeks"', "default.decision_time_standard"),
        ('[default]\ndecision_time_expedited = "0h"', "default.decision_time_expedited"),
        ('[default]\notherwise = "maybe"', "default.otherwise"),
        ("[default]\nextends_default = true", "default.extends_default"),
        ("[[default.rules]]\ncodes = ['72148']", "default.rules[0].required"),
        ("[[default.rules]]\nrequired = true", "gives no criterion"),
        ("[[default.rules]]\nrequired = true\ncodes = ['70553-70551']", "low first"),
        ("[[default.rules]]\nrequired = true\ncodes = ['705-70551']", "same length"),
        ("[[default.rules]]\nrequired = true\ncodes = ['@nosuch']", "names no list"),
        ("[[default.rules]]\nrequired = true\ncodes = ['72 148']", "is not a code"),
        ("[[default.rules]]\nrequired = true\nplaces_of_service = ['TOOLONG']", "1-3 character code"),
        ("[[default.rules]]\nrequired = true\nservice_types = 62", "must be a list of strings"),
        (
            "[[default.rules]]\nrequired = true\nservice_types = ['62']\ncolor = 1",
            "rules[0].color: unknown key",
        ),
        ("[payers.X]\nlabel = 'a'\n[payers.x]\nlabel = 'b'", "given twice"),
        ("[code_lists]\nimaging = 'x'", "code_lists.imaging"),
        ("payers = 1", "payers: must be a table"),
        ("[default\n", "not valid TOML"),
    ],
)
def test_rule_file_problems_name_their_key(text: str, problem: str) -> None:
    """Every malformed rules file is refused with the key path of the problem."""
    with pytest.raises(PrecertRuleError) as info:
        parse_rules(text, "rules.toml")
    assert problem in str(info.value)


def test_all_problems_are_reported_at_once() -> None:
    """Two problems in different tables are both listed."""
    with pytest.raises(PrecertRuleError, match="2 problem") as info:
        parse_rules("[default]\notherwise = 'x'\n[payers.A]\nretro_authorization_days = 'y'")
    assert "payers.A.retro_authorization_days" in str(info.value)


def test_extends_default_appends_the_default_rules() -> None:
    """extends_default tries the payer's rules first, then the default's; without it only the payer's."""
    text = """
[[default.rules]]
name = "mri"
required = true
codes = ["72148"]
[payers.A]
extends_default = true
[[payers.A.rules]]
name = "office"
required = false
codes = ["99213"]
[[payers.B.rules]]
name = "office"
required = false
codes = ["99213"]
"""
    rules = parse_rules(text)
    assert [r.name for r in rules.for_payer("A").rules] == ["office", "mri"]
    assert [r.name for r in rules.for_payer("B").rules] == ["office"]


# ----------------------------------------------------------------------------------------- requests


def sample_request(stem: str, **changes: object) -> ServiceReviewRequest:
    doc = json.loads((REQUESTS / f"{stem}.json").read_text())
    doc.update(changes)
    req = request_from_obj(doc)
    assert isinstance(req, ServiceReviewRequest)
    return req


def test_request_needs_none_only_when_no_line_needs_one() -> None:
    """One required line makes the request required; all lines not required make it not required."""
    mri = sample_request("278-outpatient-mri")
    office = sample_request("278-outpatient-mri", lines=[{"procedure": {"code": "99213"}, "quantity": 1}])
    mixed = sample_request(
        "278-outpatient-mri", lines=[{"procedure": {"code": "99213"}}, {"procedure": {"code": "72148"}}]
    )
    assert decide_request(RULES, mri).decision == "required"
    assert decide_request(RULES, office).decision == "not_required"
    decision = decide_request(RULES, mixed)
    assert (decision.decision, decision.reason[:7]) == ("required", "line 2:")
    assert answer_locally(decide_request(RULES, office), office)


def test_admission_without_lines_uses_the_category() -> None:
    """An admission review (AR) is required by category even where its lines would not be."""
    admission = sample_request("278-inpatient-admission")
    assert decide_request(RULES, admission).decision == "required"
    assert "inpatient admission" in decide_request(RULES, admission).reason


def test_follow_ups_always_go_to_the_payer() -> None:
    """An extension for a service that needs none is still sent (UM02 is not I)."""
    extension = sample_request("278-extension", lines=[{"procedure": {"code": "99213"}}])
    decision = decide_request(RULES, extension)
    assert decision.decision == "not_required"
    assert not answer_locally(decision, extension)


def test_expedited_levels_and_due_times() -> None:
    """U and 03 are expedited; the due time adds the payer's standard or expedited decision time."""
    assert [is_expedited(level) for level in ("U", "03", "E", None)] == [True, True, False, False]
    sent = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    acme = RULES.for_payer("ACME01")
    assert decision_due(sent, acme, expedited=False) == sent + timedelta(days=7)
    assert decision_due(sent, acme, expedited=True) == sent + timedelta(hours=72)


# ----------------------------------------------------------------------------------------- config


def minimal_config(tmp_path: Path, **precert: object) -> dict[str, Any]:
    data: dict[str, Any] = {
        "identity": {"isa_id": "X12GATEWAY", "trace_assigner": "9X12GATEWY"},
        "inbox": {"stable_seconds": 0},
        "partners": [
            {
                "name": "acme",
                "host": "127.0.0.1",
                "username": "gw",
                "key_file": "keys/acme",
                "host_keys": [
                    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEJDjQV2EwpqNs3K+OY7FVWuI6hEk6QKQDvVogXt/S71"
                ],
                "upload_dir": "/in",
                "download_dir": "/out",
                "isa_id": "ACMEID",
                "payers": ["ACME01"],
            }
        ],
    }
    if precert:
        data["precert"] = precert
    return data


def test_precert_config_defaults_and_values(tmp_path: Path) -> None:
    """[precert] is optional; its keys resolve paths against the file's folder and keep their values."""
    config = parse_config(minimal_config(tmp_path), tmp_path)
    assert config.precert.rules_file is None
    assert config.precert.answer_not_required is False
    assert config.precert.expedited_levels == ("U", "03")
    assert config.precert.expiring_within_days == 14
    config = parse_config(
        minimal_config(
            tmp_path,
            rules_file="rules.toml",
            answer_not_required=True,
            expedited_levels=["03"],
            expiring_within_days=30,
        ),
        tmp_path,
    )
    assert config.precert.rules_file == tmp_path.resolve() / "rules.toml"
    assert (config.precert.answer_not_required, config.precert.expedited_levels) == (True, ("03",))
    assert config.precert.expiring_within_days == 30


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("answer_not_required", "yes", "precert.answer_not_required: must be true or false"),
        ("expedited_levels", ["X"], "precert.expedited_levels[0]: must be a UM06 level of service"),
        ("expedited_levels", "U", "precert.expedited_levels: must be a list of strings"),
        ("expiring_within_days", -1, "precert.expiring_within_days: must be between 0 and 3650"),
        ("rules_file", 5, "precert.rules_file: must be a string"),
        ("rule_file", "x", "precert.rule_file: unknown key (did you mean rules_file?)"),
    ],
)
def test_precert_config_problems_name_their_key(
    tmp_path: Path, key: str, value: object, expected: str
) -> None:
    """Each invalid [precert] value is reported under its key."""
    with pytest.raises(ConfigError) as info:
        parse_config(minimal_config(tmp_path, **{key: value}), tmp_path)
    assert expected in str(info.value)


def test_preflight_checks_the_rules_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Preflight names a missing or malformed rules file; the sample file passes."""
    monkeypatch.setenv("X12GW_MEMBER_HASH_KEY", KEY)

    def preflight_problems(rules: Path) -> str:
        config = parse_config(minimal_config(tmp_path, rules_file=str(rules)), tmp_path)
        try:
            config.preflight()
        except ConfigError as exc:
            return str(exc)
        return ""

    assert "precert" not in preflight_problems(RULES_FILE)
    assert "precert.rules_file: " in preflight_problems(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[default]\notherwise = 'x'\n")
    assert "default.otherwise" in preflight_problems(bad)


# --------------------------------------------------------------------------------- the inbox gate

MakeCtx = Callable[..., Context]  # keyword arguments: the [precert] settings


@pytest.fixture
def make_ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeCtx]:
    """Build a real context (store, folders, member key) for a [precert] setting; closed afterwards."""
    monkeypatch.setenv("X12GW_MEMBER_HASH_KEY", KEY)
    opened: list[Context] = []

    def make(**precert: object) -> Context:
        base = tmp_path / f"gw{len(opened)}"
        config = parse_config(minimal_config(base, **precert), base)
        ctx = open_context(config)
        opened.append(ctx)
        return ctx

    yield make
    for ctx in opened:
        ctx.store.close()


def run_intake(ctx: Context) -> None:
    """One intake pass (the intake applies the pre-certification gate to every new request)."""
    intake.intake(ctx)


def drop_278(ctx: Context, name: str, **changes: object) -> None:
    doc = json.loads((REQUESTS / "278-outpatient-mri.json").read_text())
    doc.update(changes)
    (ctx.config.folders.inbox / f"{name}.json").write_text(json.dumps(doc))


def states(ctx: Context) -> dict[str, tuple[str, str | None]]:
    """client reference -> (state, reason)."""
    with ctx.store.read() as tx:
        return {str(r.payload["client_reference"]): (r.state, r.reason) for r in tx.requests.query()}


OFFICE = [{"procedure": {"code": "99213"}, "quantity": 1, "service_date": {"start": "2026-12-05"}}]


def test_gate_answers_not_required_requests_and_sends_the_rest(make_ctx: MakeCtx) -> None:
    """With answer_not_required an office-visit 278 is answered locally with the rule as reason (outbox
    record, authorization status not_required); the MRI 278 stays new to be sent."""
    ctx = make_ctx(rules_file=str(RULES_FILE), answer_not_required=True)
    drop_278(ctx, "office", trace_number="AU-OFFICE", lines=OFFICE)
    drop_278(ctx, "mri", trace_number="AU-MRI")
    run_intake(ctx)
    got = states(ctx)
    assert got["AU-MRI"] == ("new", None)
    state, reason = got["AU-OFFICE"]
    assert state == "not_required"
    assert reason is not None
    assert "rules for payer ACME01: no rule matches" in reason
    outbox = list(ctx.config.folders.outbox.glob("*.json"))
    (doc,) = (json.loads(p.read_text()) for p in outbox)
    assert (doc["client_reference"], doc["status"], doc["state"]) == (
        "AU-OFFICE",
        "not_required",
        "not_required",
    )
    assert doc["authorization"]["services"][0]["procedure_code"] == "99213"
    assert "CANARYTEST" not in json.dumps(doc["authorization"])


def test_gate_is_off_by_default_and_for_follow_ups(make_ctx: MakeCtx) -> None:
    """Without answer_not_required nothing is answered locally; with it, extensions are still sent."""
    off = make_ctx(rules_file=str(RULES_FILE))
    drop_278(off, "office", trace_number="AU-OFFICE", lines=OFFICE)
    run_intake(off)
    assert states(off)["AU-OFFICE"][0] == "new"
    on = make_ctx(rules_file=str(RULES_FILE), answer_not_required=True)
    drop_278(
        on,
        "ext",
        trace_number="AU-EXT",
        lines=OFFICE,
        certification_type="4",
        previous_certification="ACMEAUTH0001",
    )
    run_intake(on)
    assert states(on)["AU-EXT"][0] == "new"


def seed_271(ctx: Context, requirements: list[dict[str, Any]], payer: str = "ACME01") -> None:
    with ctx.store.begin() as tx:
        tx.requests.insert(
            tracking_number="GW-271-0001",
            kind="270",
            payer_id=payer,
            partner="acme",
            member_id_hash=hash_member_id(MEMBER, ctx.member_key),
            payload={"client_reference": "EL-1"},
        )
        walk_request(tx, "GW-271-0001", RequestState.ANSWERED)
        tx.results.upsert_eligibility(
            tracking_number="GW-271-0001",
            status="active",
            record={"coverage": "active", "authorization_requirements": requirements},
        )


def test_gate_uses_the_members_271_answer(make_ctx: MakeCtx) -> None:
    """A 271 for the member saying EB11 N for 72148 lets the MRI 278 be answered locally, naming the 271."""
    ctx = make_ctx(rules_file=str(RULES_FILE), answer_not_required=True)
    seed_271(ctx, [{"required": "N", "service_types": [], "procedure_code": "72148", "in_network": "Y"}])
    drop_278(ctx, "mri", trace_number="AU-MRI")
    run_intake(ctx)
    state, reason = states(ctx)["AU-MRI"]
    assert state == "not_required"
    assert reason is not None
    assert "the payer's 271 (271 for GW-271-0001 of" in reason
    assert "EB11 N" in reason


def test_a_271_from_another_payer_is_not_evidence(make_ctx: MakeCtx) -> None:
    """Evidence must come from the payer the 278 goes to."""
    ctx = make_ctx(rules_file=str(RULES_FILE), answer_not_required=True)
    seed_271(ctx, [{"required": "N", "service_types": [], "procedure_code": "72148"}], payer="BLUE01")
    drop_278(ctx, "mri", trace_number="AU-MRI")
    run_intake(ctx)
    assert states(ctx)["AU-MRI"][0] == "new"


# -------------------------------------------------------------------------------------------- CLI


def precert_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    precert_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["precert", "check", *argv])
    code: int = args.func(args)
    return code


def test_cli_prints_decision_and_reason(capsys: pytest.CaptureFixture[str]) -> None:
    """precert check with a rules file prints the answer, the rule and the retro window."""
    assert (
        precert_cli(
            "--rules",
            str(RULES_FILE),
            "--payer",
            "ACME01",
            "--code",
            "70553",
            "--pos",
            "22",
            "--date",
            "2026-12-05",
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("required: rules for payer ACME01: 'advanced imaging (MRI/CT/MRA)' -> required")
    assert "last day to ask for a retro-authorization: 2026-12-19" in out
    assert precert_cli("--rules", str(RULES_FILE), "--payer", "ACME01", "--code", "70553", "--pos", "23") == 0
    assert capsys.readouterr().out.startswith("not required: ")
    assert precert_cli("--rules", str(RULES_FILE), "--payer", "ZZ", "--code", "12345", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["decision"], doc["basis"], doc["rule_set"]) == ("unknown", "otherwise", "default")


def test_cli_member_uses_the_latest_271(
    make_ctx: MakeCtx, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--member finds the member's 271 through the member hash; the member id is not printed."""
    ctx = make_ctx(rules_file=str(RULES_FILE))
    seed_271(ctx, [{"required": "N", "service_types": ["62"], "procedure_code": None}])
    # the CLI's configuration keeps its state elsewhere: it gets the store's payload key by environment
    monkeypatch.setenv("X12GW_PAYLOAD_KEY", (ctx.config.folders.state / "payload.key").read_text().strip())
    config_file = tmp_path / "gw.toml"
    data = minimal_config(tmp_path, rules_file=str(RULES_FILE))
    data["gateway"] = {"database_url": ctx.config.gateway.database_url}
    config_file.write_text(_toml(data))
    assert (
        precert_cli(
            "--config",
            str(config_file),
            "--payer",
            "ACME01",
            "--code",
            "70553",
            "--service-type",
            "62",
            "--member",
            MEMBER,
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("not required: the payer's 271 (271 for GW-271-0001")
    assert MEMBER not in out


def test_cli_needs_something_to_decide_on() -> None:
    """Neither a code, a service type nor a category is a usage error."""
    with pytest.raises(ConfigError, match="give --code"):
        precert_cli("--rules", str(RULES_FILE), "--payer", "ACME01")


def _toml(data: dict[str, Any]) -> str:
    """Just enough TOML writing for the test configuration (tables, arrays of tables, scalars, lists)."""
    lines: list[str] = []
    for key, value in data.items():
        tables = value if isinstance(value, list) else [value]
        for table in tables:
            lines.append(f"[[{key}]]" if isinstance(value, list) else f"[{key}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    text = "\n".join(lines)
    assert tomllib.loads(text) == data
    return text


# -------------------------------------------------------------------------------------- deadlines


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def timed(make_ctx: MakeCtx) -> Iterator[tuple[Context, Clock]]:
    """A context whose store and run loop share a settable clock, with the sample rules."""
    ctx = make_ctx(rules_file=str(RULES_FILE))
    clock = Clock()
    store = Store.open(ctx.config.database_url(), clock=clock)
    ctx.store.close()
    timed_ctx = replace(ctx, store=store, clock=clock)
    yield timed_ctx, clock
    store.close()


def add_278(
    ctx: Context, tracking: str, *, level: str | None = "E", payer: str = "ACME01", state: str = "sent"
) -> None:
    with ctx.store.begin() as tx:
        tx.requests.insert(
            tracking_number=tracking,
            kind="278",
            payer_id=payer,
            partner="acme",
            member_id_hash=hash_member_id(MEMBER, ctx.member_key),
            payload={"client_reference": tracking, "level_of_service": level},
        )
        walk_request(tx, tracking, state)


def answer(ctx: Context, tracking: str, status: str, end: date | None = None) -> None:
    with ctx.store.begin() as tx:
        tx.results.upsert_authorization(
            tracking_number=tracking,
            status=status,
            record={"status": status, "payer_id": "ACME01", "level_of_service": None},
            certification_number="C-" + tracking if status == "approved" else None,
            effective_from=date(2026, 12, 1) if end else None,
            effective_to=end,
        )


def _present(row: RequestRow | None) -> RequestRow:
    """``row``, which the test stored (None fails the test)."""
    assert row is not None
    return row


def test_due_time_from_payer_and_level_of_service(timed: tuple[Context, Clock]) -> None:
    """Standard requests are due after the payer's standard time, urgent/emergency after the expedited."""
    ctx, clock = timed
    add_278(ctx, "STD", level="E")
    add_278(ctx, "URG", level="U")
    add_278(ctx, "BLUE", level=None, payer="BLUE01")
    add_278(ctx, "OTHER", level="03", payer="NOPE")
    with ctx.store.read() as tx:
        due = {
            t: deadlines.authorization_due(None, _present(tx.requests.get_by_tracking(t)), RULES)
            for t in ("STD", "URG", "BLUE", "OTHER")
        }
    assert due == {
        "STD": clock.now + timedelta(days=7),
        "URG": clock.now + timedelta(hours=72),
        "BLUE": clock.now + timedelta(days=14),
        "OTHER": clock.now + timedelta(hours=72),
    }


def test_overdue_lists_undecided_authorizations_past_due(timed: tuple[Context, Clock]) -> None:
    """Past due: unanswered and pended requests are overdue; decided ones and ones not yet due are not."""
    ctx, clock = timed
    for tracking in ("NO-ANSWER", "PENDED", "APPROVED"):
        add_278(ctx, tracking)
    add_278(ctx, "URGENT", level="U")
    answer(ctx, "PENDED", "pended")
    answer(ctx, "APPROVED", "approved", date(2027, 1, 31))
    with ctx.store.read() as tx:
        early = deadlines.overdue_authorizations(tx, clock.now + timedelta(hours=73), RULES)
        late = deadlines.overdue_authorizations(tx, clock.now + timedelta(days=8), RULES)
    assert [(i.tracking_number, i.expedited) for i in early] == [("URGENT", True)]
    assert {i.tracking_number: i.status for i in late} == {
        "URGENT": "sent",
        "NO-ANSWER": "sent",
        "PENDED": "pended",
    }


def test_expiring_within_a_window(timed: tuple[Context, Clock]) -> None:
    """Approved authorizations ending within the window are listed with their expiry; ended ones are not."""
    ctx, clock = timed
    for tracking, end in (
        ("SOON", date(2026, 12, 10)),
        ("LATER", date(2027, 3, 1)),
        ("ENDED", date(2026, 11, 30)),
    ):
        add_278(ctx, tracking, state="answered")
        answer(ctx, tracking, "approved", end)
    with ctx.store.read() as tx:
        soon = deadlines.expiring(tx, clock.now, timedelta(days=14))
    assert [(i.tracking_number, i.at) for i in soon] == [("SOON", datetime(2026, 12, 11, tzinfo=UTC))]
    assert soon[0].certification_number == "C-SOON"


def test_alerts_are_logged_once_per_change(timed: tuple[Context, Clock]) -> None:
    """alert_changes records each new overdue/expiring authorization once, and once more when it clears."""
    ctx, clock = timed
    add_278(ctx, "LATE")
    add_278(ctx, "SOON", state="answered")
    answer(ctx, "SOON", "approved", date(2026, 12, 20))
    clock.now += timedelta(days=8)
    assert deadlines.alert_changes(ctx) == 2
    assert deadlines.alert_changes(ctx) == 0
    answer(ctx, "LATE", "approved", date(2027, 6, 1))
    assert deadlines.alert_changes(ctx) == 1
    with ctx.store.read() as tx:
        request = tx.requests.get_by_tracking("LATE")
        assert request is not None
        history = tx.audit.history(deadlines.OVERDUE_ENTITY, request.id)
    assert [h.new_state for h in history] == ["overdue", "cleared"]
    assert history[0].detail is not None
    assert history[0].detail["tracking_number"] == "LATE"


def test_config_drives_expedited_levels(timed: tuple[Context, Clock]) -> None:
    """[precert] expedited_levels decides which UM06 codes count as expedited."""
    ctx, clock = timed
    add_278(ctx, "URG", level="U")
    with ctx.store.read() as tx:
        only_03 = deadlines.overdue_authorizations(
            tx, clock.now + timedelta(hours=80), RULES, expedited_levels=("03",)
        )
    assert only_03 == []


def test_config_object_is_frozen(tmp_path: Path) -> None:
    """The parsed [precert] settings cannot be changed after loading."""
    config: GatewayConfig = parse_config(minimal_config(tmp_path, answer_not_required=True), tmp_path)
    with pytest.raises(AttributeError):
        config.precert.answer_not_required = False  # type: ignore[misc]  # the refused assignment is what is tested
    assert copy.deepcopy(config.precert) == config.precert
