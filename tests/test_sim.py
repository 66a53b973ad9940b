"""The clearinghouse simulator over real SFTP: acknowledgments, scenario outcomes, timing order, CLI."""

from __future__ import annotations

import dataclasses
import json
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeGuard

import paramiko
import pytest

from gateway.errors import ConfigError
from gateway.transport.sftp import SftpClient, SftpEndpoint
from payersim.build_responses import (
    EligibilityResponse,
    Response,
    ReviewResponse,
    build_response_interchange,
)
from payersim.scenario import (
    ELIGIBILITY_OUTCOMES,
    REVIEW_OUTCOMES,
    CodeRange,
    Eligibility,
    Review,
    Scenario,
    eligibility_answer,
    review_decision,
)
from payersim.simulator import REMOTE_INBOUND, REMOTE_OUTBOUND, ClearinghouseSimulator
from tests.conftest import ROOT, SAMPLE_EDI
from tests.sftp_support import public_line_of, write_private_key
from transactions.acks import parse_acks
from transactions.envelope_reader import read_interchanges
from transactions.envelope_writer import InterchangeHeader
from transactions.models import EligibilityInquiry, Person, Procedure, ServiceReviewRequest
from transactions.outbound import Request, build_request_interchange
from transactions.requests_json import request_from_obj
from transactions.segment import Segment
from transactions.validation import validate

SENT = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
FIXED_CLOCK = datetime(2026, 11, 25, 9, 5, tzinfo=UTC)
DEADLINE = 10.0  # seconds any expected file may take to appear


# --------------------------------------------------------------------------- helpers


@dataclasses.dataclass(frozen=True)
class Keys:
    host: paramiko.PKey
    client: Path


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    base = tmp_path_factory.mktemp("sim-keys")
    return Keys(paramiko.PKey.from_path(write_private_key(base / "host")), write_private_key(base / "client"))


@contextmanager
def running(
    root: Path, keys: Keys, scenario: Scenario | str = ""
) -> Iterator[tuple[ClearinghouseSimulator, SftpClient]]:
    """A started simulator over ``root`` and a connected SFTP client."""
    sc = scenario if isinstance(scenario, Scenario) else Scenario.from_toml(scenario)
    root.mkdir(exist_ok=True)
    sim = ClearinghouseSimulator(
        root, sc, host_key=keys.host, authorized_keys=[public_line_of(keys.client)], clock=lambda: FIXED_CLOCK
    )
    with sim, SftpClient(sim.endpoint(key_file=keys.client)) as client:
        yield sim, client


def sample(stem: str) -> Request:
    return request_from_obj(json.loads((SAMPLE_EDI / "requests" / f"{stem}.json").read_text()))


def with_member(req: Request, member_id: str, trace: str) -> Request:
    """The same request for another subscriber id and trace number."""
    subscriber: Person = dataclasses.replace(req.subscriber, member_id=member_id)
    return dataclasses.replace(req, subscriber=subscriber, trace_number=trace)


def interchange(requests: Sequence[Request], control: int, *, ack_requested: bool = False) -> bytes:
    header = InterchangeHeader(
        "ZZ", "X12GATEWAY", "ZZ", "CLEARHOUSE", control, SENT, usage="T", ack_requested=ack_requested
    )
    return build_request_interchange(
        requests,
        header,
        application_sender="GWAPP",
        application_receiver="CHAPP",
        group_controls=[control, control + 1],
        set_controls=list(range(1, len(requests) + 1)),
    ).data


def upload(client: SftpClient, tmp_path: Path, name: str, data: bytes) -> None:
    local = tmp_path / f"up-{name}"
    local.write_bytes(data)
    client.upload(local, REMOTE_INBOUND, name)


def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def collect(client: SftpClient, tmp_path: Path, count: int) -> dict[str, bytes]:
    """Wait until ``outbound`` holds ``count`` files; download them all (by name)."""
    names: list[str] = []

    def enough() -> bool:
        names[:] = [e.name for e in client.list(REMOTE_OUTBOUND)]
        return len(names) >= count

    wait_until(enough, f"{count} file(s) in outbound")
    local = tmp_path / "got"
    local.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in sorted(names):
        result = client.download(REMOTE_OUTBOUND, name, local)
        out[name] = result.path.read_bytes()
    return out


def by_kind(files: dict[str, bytes], prefix: str) -> list[bytes]:
    return [data for name, data in sorted(files.items()) if name.startswith(prefix)]


def transaction_sets(data: bytes) -> list[tuple[Segment, ...]]:
    return [t.segments for ic in read_interchanges(data) for t in ic.transaction_sets()]


def first(segments: Sequence[Segment], tag: str, qualifier: str | None = None) -> Segment:
    return next(s for s in segments if s.tag == tag and (qualifier is None or s.get(1) == qualifier))


def responses_by_trace(files: dict[str, bytes]) -> dict[str, list[tuple[Segment, ...]]]:
    """Every 271/278 set by the request trace it answers (BHT03), in ISA13 order."""
    out: dict[str, list[tuple[Segment, ...]]] = {}
    for name, data in sorted(files.items()):
        if name.startswith(("271", "278")):
            for segments in transaction_sets(data):
                out.setdefault(first(segments, "BHT").get(3), []).append(segments)
    return out


def assert_all_clean(files: dict[str, bytes]) -> None:
    for name, data in files.items():
        report = validate(data)
        assert report.all_accepted, f"{name} does not validate clean"


def processed(root: Path, name: str) -> Callable[[], bool]:
    return (root / "inbound" / "processed" / name).exists


# --------------------------------------------------------------------------- eligibility and acks


def test_270_gets_ta1_999_and_271_echoing_the_trace(tmp_path: Path, keys: Keys) -> None:
    """A 270 with ISA14=1 yields a TA1 A, an accepting 999 and a 271 whose TRN*2 and BHT03 echo it."""
    with running(tmp_path / "root", keys) as (_sim, client):
        upload(
            client,
            tmp_path,
            "eligibility.x12",
            interchange([sample("270-subscriber")], 101, ack_requested=True),
        )
        files = collect(client, tmp_path, 3)
    assert_all_clean(files)
    acks = parse_acks(by_kind(files, "TA1")[0])
    assert [(a.interchange_control, a.ack_code, a.note_code) for a in acks.interchanges] == [
        ("000000101", "A", "000")
    ]
    group = parse_acks(by_kind(files, "999")[0]).groups[0]
    assert (group.functional_id, group.group_control, group.ack_code, group.accepted) == ("HS", "101", "A", 1)
    (answer,) = transaction_sets(by_kind(files, "271")[0])
    assert first(answer, "BHT").get(3) == "EL-0001"
    assert first(answer, "TRN", "2").elements[1:] == ("EL-0001", "9999999999")
    assert first(answer, "TRN", "1").get(2).startswith("SIMTRN")
    assert first(answer, "EB").get(1) == "1"
    isa = read_interchanges(by_kind(files, "271")[0])[0].isa
    assert (isa.get(6).strip(), isa.get(8).strip(), isa.get(15)) == ("CLEARHOUSE", "X12GATEWAY", "T")
    assert (tmp_path / "root" / "inbound" / "processed" / "eligibility.x12").exists()


def test_eligibility_outcomes_and_auth_required_by_procedure(tmp_path: Path, keys: Keys) -> None:
    """Rules pick inactive / not found per member; a procedure inquiry learns whether it needs auth."""
    scenario = """
        [[rules]]
        member_id = "ZZMINACTIVE1"
        eligibility = "inactive"
        [[rules]]
        member_id = "ZZMNOTFOUND1"
        eligibility = "not_found"
    """
    base = sample("270-subscriber")
    assert isinstance(base, EligibilityInquiry)
    mri = dataclasses.replace(base, trace_number="EL-MRI", service_types=(), procedure=Procedure("70553"))
    requests = [
        with_member(base, "ZZMINACTIVE1", "EL-INACTIVE"),
        with_member(base, "ZZMNOTFOUND1", "EL-NOTFOUND"),
        mri,
    ]
    with running(tmp_path / "root", keys, scenario) as (_sim, client):
        upload(client, tmp_path, "eligibility.x12", interchange(requests, 102))
        files = collect(client, tmp_path, 2)
    assert_all_clean(files)
    answers = responses_by_trace(files)
    assert first(answers["EL-INACTIVE"][0], "EB").get(1) == "6"
    assert first(answers["EL-NOTFOUND"][0], "AAA").elements == ("N", "", "75", "C")
    auth = [s for s in answers["EL-MRI"][0] if s.tag == "EB" and s.get(11)]
    assert [(s.get(11), s.composite(13)) for s in auth] == [("Y", ("HC", "70553"))]


def test_forced_999_rejection_rejects_only_that_set(tmp_path: Path, keys: Keys) -> None:
    """ack = "reject" turns one set's 999 verdict into IK5 R (IK3 NM1 + IK4 NM109) and sends it no 271."""
    scenario = '[[rules]]\nmember_id = "ZZMREJECT999"\nack = "reject"\n'
    base = sample("270-subscriber")
    requests = [base, with_member(base, "ZZMREJECT999", "EL-REJECT")]
    with running(tmp_path / "root", keys, scenario) as (sim, client):
        upload(client, tmp_path, "two.x12", interchange(requests, 103))
        files = collect(client, tmp_path, 2)
        assert sim.pending_responses == 0
    assert_all_clean(files)
    group = parse_acks(by_kind(files, "999")[0]).groups[0]
    assert (group.ack_code, group.received, group.accepted) == ("P", 2, 1)
    accepted, rejected = group.sets
    assert (accepted.control_number, accepted.ack_code) == ("0001", "A")
    assert (rejected.control_number, rejected.ack_code, rejected.codes) == ("0002", "R", ("5",))
    assert [(e.segment, e.loop, e.code, e.element, e.element_ref) for e in rejected.errors] == [
        ("NM1", "2100", "8", None, None),
        ("NM1", "2100", "7", "NM109", "67"),
    ]
    assert list(responses_by_trace(files)) == ["EL-0001"]


def test_forced_ta1_rejection_sends_only_the_ta1(tmp_path: Path, keys: Keys) -> None:
    """ack = "ta1_reject" on any set rejects the whole interchange: TA1 R, no 999, no responses."""
    scenario = '[[rules]]\nmember_id = "ZZMREJECTTA1"\nack = "ta1_reject"\n'
    base = sample("270-subscriber")
    root = tmp_path / "root"
    with running(root, keys, scenario) as (sim, client):
        upload(
            client, tmp_path, "bad.x12", interchange([base, with_member(base, "ZZMREJECTTA1", "EL-X")], 104)
        )
        wait_until(processed(root, "bad.x12"), "the file to be processed")
        files = collect(client, tmp_path, 1)
        assert sim.pending_responses == 0
    assert list(files) == ["TA1-000000001.x12"]
    assert_all_clean(files)
    (ta1,) = parse_acks(files["TA1-000000001.x12"]).interchanges
    assert (ta1.interchange_control, ta1.ack_code, ta1.note_code) == ("000000104", "R", "024")


def test_broken_and_duplicate_interchanges_get_ta1_r(tmp_path: Path, keys: Keys) -> None:
    """A truncated interchange gets TA1 R 023; a repeated ISA13 gets TA1 R 025; neither gets a 999."""
    data = interchange([sample("270-subscriber")], 105)
    root = tmp_path / "root"
    with running(root, keys) as (_sim, client):
        upload(client, tmp_path, "cut.x12", data[: data.index(b"GE*")])
        wait_until(processed(root, "cut.x12"), "the truncated file to be processed")
        upload(client, tmp_path, "first.x12", data.replace(b"000000105", b"000000106"))
        wait_until(processed(root, "first.x12"), "the first file to be processed")
        upload(client, tmp_path, "again.x12", data.replace(b"000000105", b"000000106"))
        files = collect(client, tmp_path, 4)
    assert_all_clean(files)
    notes = [
        (a.interchange_control, a.note_code)
        for d in by_kind(files, "TA1")
        for a in parse_acks(d).interchanges
    ]
    assert notes == [("000000105", "023"), ("000000106", "025")]
    assert len(by_kind(files, "999")) == 1
    assert len(by_kind(files, "271")) == 1


def test_non_x12_and_acknowledgments_are_set_aside_without_answer(tmp_path: Path, keys: Keys) -> None:
    """A file that is not X12, and a 999 the gateway sends back, are moved to processed, unanswered."""
    root = tmp_path / "root"
    with running(root, keys) as (sim, client):
        upload(client, tmp_path, "eligibility.x12", interchange([sample("270-subscriber")], 107))
        files = collect(client, tmp_path, 2)
        ack = by_kind(files, "999")[0]
        upload(client, tmp_path, "ack.x12", ack)
        upload(client, tmp_path, "notes.txt", b"not an interchange at all")
        wait_until(processed(root, "ack.x12"), "the 999 to be processed")
        wait_until(processed(root, "notes.txt"), "the text file to be processed")
        assert len(client.list(REMOTE_OUTBOUND)) == 2
        assert sim.pending_responses == 0


# --------------------------------------------------------------------------- 278 outcomes


def test_demo_scenario_answers_every_sample_request(tmp_path: Path, keys: Keys) -> None:
    """demo.toml: active/inactive 271s, 278 cancel, pend-then-approve, deny, partial, approve, modify."""
    demo = Scenario.load(ROOT / "sample_edi" / "scenarios" / "demo.toml")
    fast = dataclasses.replace(
        demo, defaults=dataclasses.replace(demo.defaults, delay_seconds=0.0, approve_after_seconds=0.3)
    )
    stems = sorted(p.stem for p in (SAMPLE_EDI / "requests").glob("*.json"))
    with running(tmp_path / "root", keys, fast) as (_sim, client):
        upload(client, tmp_path, "all.x12", interchange([sample(s) for s in stems], 200))
        files = collect(client, tmp_path, 3)  # 999, the first answers, the later approval
    assert_all_clean(files)
    assert parse_acks(by_kind(files, "999")[0]).groups[0].ack_code == "A"
    got = responses_by_trace(files)
    assert len(got) == len(stems)

    def eb(trace: str) -> str:
        return first(got[trace][0], "EB").get(1)

    assert (eb("EL-0001"), eb("EL-0002"), eb("EL-0003")) == ("1", "6", "1")
    auth_codes = [s.composite(13)[1] for s in got["EL-0003"][0] if s.tag == "EB" and s.get(11) == "Y"]
    assert {"72148", "70553"} <= set(auth_codes)

    def hcr(trace: str, n: int = 0) -> Segment:
        return first(got[trace][n], "HCR")

    # AU-0001 (MRI): pended first (BHT06 19, PWK), then approved with a certification number.
    pended, approved = got["AU-0001"]
    assert (first(pended, "BHT").get(6), hcr("AU-0001").get(1), first(pended, "PWK").get(1)) == (
        "19",
        "A4",
        "09",
    )
    assert (first(approved, "BHT").get(6), hcr("AU-0001", 1).get(1)) == ("18", "A1")
    assert hcr("AU-0001", 1).get(2).startswith("SIM")
    assert first(pended, "TRN", "2").elements == first(approved, "TRN", "2").elements
    assert first(pended, "TRN", "1").get(2) != first(approved, "TRN", "1").get(2)
    assert first(pended, "REF", "NT").get(2) == first(approved, "REF", "NT").get(2)
    # AU-0002 (admission): partial, 2 of 4 days on the first line, the second line approved.
    assert hcr("AU-0002").get(1) == "A2"
    lines = [s for s in got["AU-0002"][0] if s.tag in ("HCR", "HSD")]
    assert [(s.tag, s.get(1), s.get(2)) for s in lines][2:] == [
        ("HCR", "A6", hcr("AU-0002").get(2)),
        ("HSD", "DY", "2"),
        ("HCR", "A1", hcr("AU-0002").get(2)),
        ("HSD", "FL", "1"),
    ]
    # AU-0003 (DME) approved; AU-0004 extension modified; AU-0005 cancelled; AU-0006 denied.
    assert hcr("AU-0003").get(1) == "A1"
    assert hcr("AU-0004").get(1) == "A6"
    assert hcr("AU-0005").elements[:2] == ("C", "CERT123456")
    assert hcr("AU-0006").get(1) == "A3"
    certs = [hcr(t, len(got[t]) - 1).get(2) for t in ("AU-0001", "AU-0002", "AU-0003", "AU-0004")]
    assert len(set(certs)) == 4
    assert all(c.startswith("SIM") for c in certs)
    # The approval came in its own, later interchange.
    names = sorted(n for n in files if n.startswith("278"))
    assert transaction_sets(files[names[-1]]) == [approved]


def test_delay_holds_the_answer_back(tmp_path: Path, keys: Keys) -> None:
    """With delay_seconds the 999 comes at once and the 271 only later (scheduled, then written)."""
    root = tmp_path / "root"
    with running(root, keys, "[defaults]\ndelay_seconds = 1.0\n") as (sim, client):
        upload(client, tmp_path, "slow.x12", interchange([sample("270-subscriber")], 108))
        wait_until(processed(root, "slow.x12"), "the file to be processed")
        assert sim.pending_responses == 1
        files = collect(client, tmp_path, 2)
    assert sorted(n[:3] for n in files) == ["271", "999"]


# --------------------------------------------------------------------------- scenario and server


def _is_eligibility(outcome: str) -> TypeGuard[Eligibility]:
    return outcome in ELIGIBILITY_OUTCOMES


def _is_review(outcome: str) -> TypeGuard[Review]:
    return outcome in REVIEW_OUTCOMES


@pytest.mark.parametrize("outcome", [*ELIGIBILITY_OUTCOMES, *REVIEW_OUTCOMES])
def test_every_outcome_builds_ig_clean_responses_for_every_sample(outcome: str) -> None:
    """Each eligibility/review outcome answers each sample request (subscriber, dependent, lines or
    none, admission, procedure inquiry) with a response that validates clean."""
    scenario = Scenario()
    stems = sorted(p.stem for p in (SAMPLE_EDI / "requests").glob("*.json"))
    base = sample("270-subscriber")
    assert isinstance(base, EligibilityInquiry)
    by_procedure = [
        dataclasses.replace(base, service_types=(), procedure=Procedure(code)) for code in ("72148", "99213")
    ]
    responses: list[Response] = []
    for req in [*(sample(s) for s in stems), *by_procedure]:
        if isinstance(req, EligibilityInquiry) and _is_eligibility(outcome):
            answer = eligibility_answer(scenario, req, outcome, FIXED_CLOCK.date())
            responses.append(EligibilityResponse(req, answer, "SIMTRN1"))
        elif isinstance(req, ServiceReviewRequest) and _is_review(outcome):
            decision = review_decision(req, outcome, FIXED_CLOCK.date(), certification="SIM1", reference="R1")
            responses.append(ReviewResponse(req, decision, "SIMTRN1"))
    header = InterchangeHeader("ZZ", "CLEARHOUSE", "ZZ", "X12GATEWAY", 1, FIXED_CLOCK)
    data = build_response_interchange(
        responses,
        header,
        application_sender="CLEARHOUSE",
        application_receiver="X12GATEWAY",
        group_controls=[1],
        set_controls=list(range(1, len(responses) + 1)),
    ).data
    report = validate(data)
    assert report.all_accepted, [
        (s.control_number, [(f.segment, f.element, f.code) for f in s.findings])
        for g in report.interchanges[0].groups
        for s in g.sets
        if s.findings
    ]


def test_first_matching_rule_wins_and_unset_fields_fall_back() -> None:
    """Rules are tried in order; all their match keys must match; unset outcome keys keep the defaults."""
    sc = Scenario.from_toml(
        """
        [defaults]
        delay_seconds = 3
        [[rules]]
        member_id = "M1"
        procedure = "E0100-E8002"
        review = "deny"
        [[rules]]
        member_id = "M1"
        review = "partial"
        delay_seconds = 0
        [[rules]]
        kind = "270"
        eligibility = "inactive"
        """
    )
    assert sc.outcome("278", "M1", ("E0601",)).review == "deny"
    assert sc.outcome("278", "M1", ("E0601",)).delay_seconds == 3.0
    assert sc.outcome("278", "M1", ("97110",)).review == "partial"
    assert sc.outcome("278", "M1", ("97110",)).delay_seconds == 0.0
    assert sc.outcome("270", "M1").review == "partial"
    assert sc.outcome("270", "M2").eligibility == "inactive"
    assert sc.outcome("278", "M2") == sc.defaults
    assert sc.requires_auth("72148")
    assert not sc.requires_auth("72140")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[defaults]\nreview = 'maybe'\n", "review must be one of"),
        ("[[rules]]\nmember = 'X'\n", "unknown key(s) member"),
        ("[[rules]]\nprocedure = 'E8002-E0100'\n", "not a code or a LOW-HIGH range"),
        ("[defaults]\ndelay_seconds = -1\n", "delay_seconds must be"),
        ("extra = 1\n", "unknown key(s) extra"),
        ("[defaults\n", "not valid TOML"),
    ],
)
def test_bad_scenarios_are_refused(text: str, message: str) -> None:
    """Scenario mistakes are ConfigErrors naming the key, not silent defaults."""
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Scenario.from_toml(text)


def test_code_ranges_compare_codes_of_one_length() -> None:
    """HCPCS and CPT ranges hold codes of their own length only, and expand to every code."""
    dme = CodeRange.parse("e0100-e8002", "test")
    assert "E0601" in dme
    assert not any(code in dme for code in ("E9000", "E060", "70553"))
    assert list(CodeRange.parse("70551-70553", "test").codes()) == ["70551", "70552", "70553"]


def test_state_folder_is_hidden_and_counters_persist(tmp_path: Path, keys: Keys) -> None:
    """root/.sim cannot be listed or read over SFTP; control numbers continue after a restart."""
    root = tmp_path / "root"
    with running(root, keys) as (_sim, client):
        upload(client, tmp_path, "one.x12", interchange([sample("270-subscriber")], 109))
        collect(client, tmp_path, 2)
        raw = client.connect()  # the gateway's client refuses dot names itself: ask the server directly
        assert ".sim" not in raw.listdir("/")
        with pytest.raises(PermissionError):
            raw.stat("/.sim/state.json")
        with pytest.raises(PermissionError):
            raw.open("/inbound/../.sim/state.json")
    assert json.loads((root / ".sim" / "state.json").read_text())["counters"]["interchange"] == 2
    with running(root, keys) as (_sim, client):
        upload(client, tmp_path, "two.x12", interchange([sample("270-subscriber")], 110))
        names = sorted(collect(client, tmp_path / "again", 4))
    assert names == ["271-000000002.x12", "271-000000004.x12", "999-000000001.x12", "999-000000003.x12"]


# --------------------------------------------------------------------------- command line

_CLI = (
    "import argparse, sys\n"
    "from gateway.cli import sim_cmd\n"
    "p = argparse.ArgumentParser()\n"
    "sim_cmd.register(p.add_subparsers())\n"
    "a = p.parse_args(sys.argv[1:])\n"
    "sys.exit(a.func(a))\n"
)


def test_cli_prints_port_and_host_key_and_stops_on_sigterm(tmp_path: Path, keys: Keys) -> None:
    """``x12gw sim`` generates a 0600 host key, prints the port and key line, serves, exits 0 on SIGTERM."""
    root = tmp_path / "root"
    command = [
        sys.executable,
        "-c",
        _CLI,
        "sim",
        "--root",
        str(root),
        "--authorized-key",
        f"{keys.client}.pub",
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        port = int(lines[1].removeprefix("port: "))
        host_key_line = lines[2].removeprefix("host-key: ").strip()
        endpoint = SftpEndpoint("127.0.0.1", port, "x12gw", key_file=keys.client, host_keys=(host_key_line,))
        with SftpClient(endpoint) as client:
            upload(client, tmp_path, "cli.x12", interchange([sample("270-subscriber")], 111))
            files = collect(client, tmp_path, 2)
        assert sorted(n[:3] for n in files) == ["271", "999"]
        assert stat.S_IMODE((root / ".sim" / "host_key").stat().st_mode) == 0o600
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=DEADLINE) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()
