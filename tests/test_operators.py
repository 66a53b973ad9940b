"""The operators' commands (log, auth, acks, stats, reprocess, resend, audit) against a store filled by
one real end-to-end run: billing files in the inbox, the gateway, SFTP, the clearinghouse simulator and
back. Every assertion is on the commands' ``--json`` output (or their exit codes).

The module shares one run (built once, ~5 s). Read-only tests come first; the tests that change the
store (reprocess, resend, tail -f) run last, in file order.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import auth_cmd, log_cmd, ops_cmd
from gateway.operators.masking import mask_date, mask_elements, mask_id, mask_name
from gateway.operators.session import os_user
from gateway.operators.timespec import parse_duration, parse_time
from gateway.runtime.filemask import mask_file_name
from gateway.stages import batching, exchange, intake
from gateway.transport.keys import ensure_key, public_line
from gateway.transport.sftp import SftpClient
from payersim.scenario import Scenario
from payersim.simulator import ClearinghouseSimulator
from tests.e2e_harness import REQUESTS, SCENARIO, Harness, config_text, make_harness
from transactions.errors import X12GatewayError

ROOT = Path(__file__).resolve().parent.parent
# The shared scenario, plus a DME rental that stays pended (the MRI is pended, then approved).
PEND_RULE = '\n[[rules]]\nprocedure = "E0601"\nreview = "pend"\n'
GARBAGE = "garbage-000000099.x12"
SETTLED = frozenset({"answered", "rejected", "invalid", "overdue"})


@dataclass
class World:
    h: Harness
    sim: ClearinghouseSimulator
    config: Path
    tracking: dict[str, str]  # client reference -> tracking number

    def file_id(self, name: str) -> int:
        with self.h.ctx.store.read() as tx:
            return next(f.id for f in tx.files.query(limit=1000) if f.name == name)


def _cli(world: World, *argv: str, config: bool = True) -> tuple[int, str]:
    """Run one operator command in-process, as ``gateway.cli.main`` would (gateway errors exit 2)."""
    parser = argparse.ArgumentParser(prog="x12gw")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (log_cmd, auth_cmd, ops_cmd):
        module.register(sub)
    args = parser.parse_args([*argv, *(["--config", str(world.config)] if config else [])])
    out = io.StringIO()
    with redirect_stdout(out):
        try:
            code = int(args.func(args))
        except X12GatewayError:
            code = 2
    return code, out.getvalue()


def _json(world: World, *argv: str) -> tuple[int, Any]:
    code, text = _cli(world, *argv, "--json")
    return code, json.loads(text)


def _state(world: World, ref: str) -> str:
    return str(world.h.requests()[ref].state)


def _mri_sample(day: str) -> dict[str, Any]:
    """The MRI request with its dates moved to ``day`` (so its approval ends ~100 days from now)."""
    doc: dict[str, Any] = json.loads((REQUESTS / "278-outpatient-mri.json").read_text())
    doc["event_dates"] = {"start": day, "end": day}
    doc["lines"][0]["service_date"] = {"start": day}
    return doc


def _settled(h: Harness) -> bool:
    rows = h.requests()
    done = all(
        ref in rows and rows[ref].state in SETTLED
        for ref in ("EL-0001", "EL-0002", "AU-0001", "AU-0006", "REJ-999")
    )
    with h.ctx.store.read() as tx:
        garbage = [f for f in tx.files.query(direction="in", partner="sim", limit=1000) if f.name == GARBAGE]
    return done and "AU-0003" in rows and rows["AU-0003"].state == "pended" and bool(garbage)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One end-to-end run; then one more request is sent but its 999 is left waiting on the server."""
    base = tmp_path_factory.mktemp("operators")
    client_key = base / "keys" / "client"
    ensure_key(client_key)
    host_key = ensure_key(base / "keys" / "host")
    root = base / "clearinghouse"
    for folder in ("inbound", "outbound"):
        (root / folder).mkdir(parents=True)
    scenario = Scenario.from_toml(SCENARIO + PEND_RULE, "operators scenario")
    sim = ClearinghouseSimulator(
        root, scenario, host_key=host_key, authorized_keys=(public_line(client_key),)
    )
    sim.start()
    settings: dict[str, Any] = {
        "port": sim.port,
        "host_key_line": sim.host_key_line,
        "key_file": client_key,
        "remote_root": "",
    }
    h = make_harness(base / "gw", clearinghouse=root, **settings)
    config = base / "gw" / "gateway.toml"  # the same configuration, as a file for the commands
    config.write_text(config_text(**settings), encoding="utf-8")
    try:
        soon = (h.ctx.clock() + timedelta(days=10)).date().isoformat()
        h.drop_sample("270-subscriber")
        h.drop_sample("270-dependent")
        h.drop("278-outpatient-mri.json", json.dumps(_mri_sample(soon)).encode())
        h.drop_sample("278-retroactive")  # denied
        h.drop_sample("278-dme-rental")  # stays pended
        h.drop_sample(
            "270-subscriber",
            name="reject-999.json",
            trace_number="REJ-999",
            subscriber__member_id="ZZMREJECT999",
        )
        h.drop("broken.json", b'{"type": "270", "trace_number": ')
        (root / "outbound" / f".{GARBAGE}").write_bytes(b"this is not an X12 interchange\n")
        (root / "outbound" / f".{GARBAGE}").rename(root / "outbound" / GARBAGE)  # the partner sends junk
        assert h.run_until(lambda: _settled(h), timeout=40), {k: v.state for k, v in h.requests().items()}
        # one more request goes out, but the gateway does not download yet: its 999 is overdue
        h.drop_sample(
            "270-subscriber", name="late.json", trace_number="EL-LATE", subscriber__member_id="ZZM100000077"
        )
        intake.intake(h.ctx)
        batching.batch_all(h.ctx)
        partner = h.config.partners[0]
        with SftpClient(partner.sftp_endpoint()) as client:
            exchange.upload_all(h.ctx, partner, client)
        assert h.requests()["EL-LATE"].state == "sent"
        tracking = {ref: row.tracking_number for ref, row in h.requests().items()}
        yield World(h, sim, config, tracking)
    finally:
        h.ctx.store.close()
        sim.stop()


# ------------------------------------------------------------------------------ building blocks


def test_durations_times_and_masks() -> None:
    """Durations add up their parts, times resolve against the given now, masks keep shape and year."""
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    assert parse_duration("14d") == timedelta(days=14)
    assert parse_duration("1d12h") == timedelta(hours=36)
    assert parse_duration("30m") == timedelta(minutes=30)
    with pytest.raises(ValueError, match="duration"):
        parse_duration("soon")
    assert parse_time("2h").resolve(now) == now - timedelta(hours=2)
    assert parse_time("today").resolve(now) == datetime(2026, 3, 10, tzinfo=UTC)
    assert parse_time("2026-01-31").resolve(now) == datetime(2026, 1, 31, tzinfo=UTC)
    assert parse_time("2026-01-31T08:00+01:00").resolve(now) == datetime(2026, 1, 31, 7, tzinfo=UTC)
    assert (mask_name("CANARYTEST"), mask_id("ZZM100000001"), mask_date("1970-01-01")) == (
        "C********T",
        "ZZM*******01",
        "1970-**-**",
    )
    assert mask_date("19700101") == "1970-**-**"
    assert mask_elements("NM1", ("2000B", "2100B"), ("1P", "2", "RIVERSIDE")) == ("1P", "2", "RIVERSIDE")
    assert mask_elements("NM1", ("2120C",), ("IL", "1", "DOE", "JANE")) == ("IL", "1", "D*E", "J**E")


# ------------------------------------------------------------------------------------- log list


def test_log_list_shows_files_and_sets_newest_first(world: World) -> None:
    """log list: every file and transaction set, newest first, with controls, traces, acks and states."""
    code, doc = _json(world, "log", "list", "--limit", "1000")
    assert code == 0
    assert not doc["more"]
    rows = doc["rows"]
    ids = [r["file_id"] for r in rows]
    assert ids == sorted(ids, reverse=True)
    mri = world.tracking["AU-0001"]
    sent = [r for r in rows if r["direction"] == "out" and r["tracking_number"] == mri]
    assert len(sent) == 1
    assert sent[0]["type"] == "278"
    assert sent[0]["ack_status"] == "A"
    assert sent[0]["state"] == "sent"
    assert sent[0]["trace_numbers"] == [mri]
    assert sent[0]["set_control"].isdigit()
    assert isinstance(sent[0]["interchange_control"], int)
    assert isinstance(sent[0]["group_control"], int)
    answers = [r for r in rows if r["direction"] == "in" and r["tracking_number"] == mri]
    assert [r["type"] for r in answers] == ["278", "278"], "pended, then approved"
    rejected = next(r for r in rows if r["tracking_number"] == world.tracking["REJ-999"])
    assert rejected["ack_status"] == "R"
    assert rejected["request_state"] == "rejected"
    assert {r["type"] for r in rows} >= {"270", "271", "278", "999", "inbox", "file"}


def test_log_list_filters_and_limit(world: World) -> None:
    """log list --type/--direction/--status/--partner/--limit narrow the rows; nothing matching exits 1."""
    _, doc = _json(world, "log", "list", "--type", "278", "--direction", "out")
    assert {r["tracking_number"] for r in doc["rows"]} == {
        world.tracking[r] for r in ("AU-0001", "AU-0006", "AU-0003")
    }
    _, masked = _json(world, "log", "list", "--status", "quarantined")
    assert "broken.json" not in json.dumps(masked)  # file names are PHI: masked unless revealed
    _, doc = _json(world, "log", "list", "--status", "quarantined", "--reveal")
    assert sorted((r["file"], r["type"]) for r in doc["rows"]) == [
        ("broken.json", "inbox"),
        (GARBAGE, "file"),
    ]
    _, doc = _json(world, "log", "list", "--type", "999", "--direction", "in", "--ack", "A")
    assert doc["rows"]
    assert all(r["type"] == "999" and r["partner"] == "sim" for r in doc["rows"])
    code, doc = _json(world, "log", "list", "--limit", "2")
    assert code == 0
    assert len(doc["rows"]) == 2
    assert doc["more"] is True
    code, doc = _json(world, "log", "list", "--partner", "nobody")
    assert code == 1
    assert doc["rows"] == []


# ------------------------------------------------------------------------------------- log show


def test_log_show_traces_a_pended_authorization_to_its_approval(world: World) -> None:
    """log show TRACKING: the request's history, the 999, both answers, segments with IG names, PHI masked."""
    mri = world.tracking["AU-0001"]
    code, view = _json(world, "log", "show", mri)
    assert code == 0
    assert view["subject"] == "request"
    assert view["request"]["client_reference"] == "AU-0001"
    assert view["request"]["source_file"]["name"] == mask_file_name("278-outpatient-mri.json")
    states = [h["to"] for h in view["history"]]
    assert states[:4] == ["new", "batching", "queued", "sent"]
    assert states[-2:] == ["pended", "answered"]
    assert [e["to"] for e in view["result"]["events"]] == ["pended", "approved"]
    sets = view["transactions"]
    assert [(s["set_id"], s["direction"]) for s in sets if s["set_id"] != "999"] == [
        ("278", "out"),
        ("278", "in"),
        ("278", "in"),
    ]
    ours = sets[0]
    ack = next(r for r in ours["related"] if r["relation"] == "acknowledgment")
    assert ack["kind"] == "999"
    assert ack["ack_status"] == "A"
    assert ack["set_row_id"] is not None
    assert any(s["set_row_id"] == ack["set_row_id"] and s["set_id"] == "999" for s in sets)
    assert len([r for r in ours["related"] if r["relation"] == "response"]) == 2
    assert [h["to"] for h in ours["history"]] == ["queued", "sent", "A"]
    name = next(s for s in ours["segments"] if s["id"] == "NM1" and s["loop"] == "2010C")
    assert name["loops"][-2:] == ["2000C", "2010C"]
    assert name["name"] == "Subscriber Name"
    elements = {e["id"]: e for e in name["elements"]}
    assert elements["NM103"]["value"] == mask_name("CANARYTEST") == "C********T"
    assert "Last" in elements["NM103"]["name"]
    assert elements["NM109"]["value"] == mask_id("ZZM100000001") == "ZZM*******01"
    dmg = next(s for s in ours["segments"] if s["id"] == "DMG")
    assert {e["id"]: e["value"] for e in dmg["elements"]}["DMG02"] == mask_date("19700101") == "1970-**-**"
    assert view["patient"]["subscriber"]["birth_date"] == "1970-**-**"
    text = json.dumps(view)
    assert "CANARYTEST" not in text
    assert "ZZM100000001" not in text
    assert "19700101" not in text


def test_log_show_reveal_is_audited(world: World) -> None:
    """--reveal shows the PHI and leaves an audit entry (OS user, time, what); audit list shows it."""
    mri = world.tracking["AU-0001"]
    code, view = _json(world, "log", "show", mri, "--reveal", "--no-segments")
    assert code == 0
    assert view["patient"]["subscriber"]["last_name"] == "CANARYTEST"
    assert all(s["segments"] is None for s in view["transactions"])
    code, doc = _json(world, "audit", "list")
    assert code == 0
    entry = doc["entries"][0]
    assert (entry["action"], entry["subject"], entry["os_user"]) == ("log show", mri, os_user())
    assert mri in entry["detail"]["trackings"]
    assert entry["at"]


def test_log_show_resolves_every_kind_of_reference(world: World) -> None:
    """Certification, payer trace, file:, set: and bare numbers resolve; ambiguity exits 2, no match 1."""
    mri = world.tracking["AU-0001"]
    _, auth = _json(world, "auth", "show", mri)
    cert = auth["authorization"]["certification_number"]
    assert _json(world, "log", "show", cert)[1]["request"]["tracking_number"] == mri
    payer_trace = auth["authorization"]["payer_trace_number"]
    assert _json(world, "log", "show", f"trace:{payer_trace}")[1]["request"]["tracking_number"] == mri
    inbox_id = world.file_id("278-outpatient-mri.json")
    code, view = _json(world, "log", "show", f"file:{inbox_id}")
    assert code == 0
    assert view["subject"] == "file"
    assert view["requests"][0]["tracking_number"] == mri
    _, view = _json(world, "log", "show", f"file:{world.file_id(GARBAGE)}")
    assert view["file"]["state"] == "quarantined"
    assert view["quarantine"]
    assert view["transactions"] == []
    _, listing = _json(world, "log", "list", "--type", "278", "--direction", "out")
    set_row = next(r["set_row_id"] for r in listing["rows"] if r["tracking_number"] == mri)
    code, view = _json(world, "log", "show", f"set:{set_row}", "--brief")
    assert code == 0
    assert view["subject"] == "set"
    assert {"relation": "request", "tracking_number": mri} in view["transactions"][0]["related"]
    code, doc = _json(world, "log", "show", "1")
    assert code == 2
    assert len(doc["ambiguous"]) > 1
    assert {"file:1"} <= {c["ref"] for c in doc["ambiguous"]}
    code, doc = _json(world, "log", "show", "NO-SUCH-REFERENCE")
    assert code == 1
    assert doc == {"matches": []}


def test_log_show_our_own_999_file(world: World) -> None:
    """Our outgoing 999s have no envelope rows; log show reads them from the payload, with the IG names."""
    _, listing = _json(world, "log", "list", "--type", "999", "--direction", "out")
    file_id = listing["rows"][0]["file_id"]
    code, view = _json(world, "log", "show", f"file:{file_id}")
    assert code == 0
    assert view["acknowledges_file"] is not None
    block = view["transactions"][0]
    assert block["set_id"] == "999"
    assert block["group"]["functional_id"] == "FA"
    ak1 = next(s for s in block["segments"] if s["id"] == "AK1")
    assert ak1["elements"][0]["name"] == "Functional Identifier Code"


def test_tables_carry_no_colour_off_a_terminal(world: World) -> None:
    """Human output carries no colour codes off a terminal (widths: identifiers are never cut, see
    tests/test_operators_i15.py, so a row of them may be wider than 80 columns)."""
    commands = [
        ("log", "list", "--limit", "500"),
        ("log", "search", "--payer", "ACME01"),
        ("auth", "list"),
        ("acks", "overdue", "--older-than", "0m"),
        ("stats",),
        ("audit", "list"),
        ("log", "tail", "-n", "30"),
    ]
    for command in commands:
        code, text = _cli(world, *command)
        assert code in (0, 1), command
        assert "\033[" not in text


# ---------------------------------------------------------------------------------- search, tail


def test_log_search_by_member_trace_cert_payer(world: World) -> None:
    """log search finds requests by member id (hashed), trace, certification number and payer."""
    code, doc = _json(world, "log", "search", "--member-id", "zzm100000001")
    assert code == 0
    assert {r["client_reference"] for r in doc["requests"]} == {"EL-0001", "AU-0001"}
    assert {r["member_id"] for r in doc["requests"]} == {"ZZM*******01"}
    _, doc = _json(world, "log", "search", "--trace", world.tracking["AU-0006"])
    assert [r["status"] for r in doc["requests"]] == ["denied"]
    _, auth = _json(world, "auth", "show", world.tracking["AU-0001"])
    _, doc = _json(world, "log", "search", "--cert", auth["authorization"]["certification_number"])
    assert [r["client_reference"] for r in doc["requests"]] == ["AU-0001"]
    _, doc = _json(world, "log", "search", "--payer", "acme01", "--kind", "278", "--since", "1d")
    assert {r["client_reference"] for r in doc["requests"]} == {"AU-0001", "AU-0003", "AU-0006"}
    assert _json(world, "log", "search", "--member-id", "ZZM000000000")[0] == 1
    assert _cli(world, "log", "search")[0] == 2


def test_log_tail_prints_the_latest_events(world: World) -> None:
    """log tail -n N --json: the newest N events as JSON lines, oldest of them first."""
    code, text = _cli(world, "log", "tail", "-n", "3", "--json")
    events = [json.loads(line) for line in text.splitlines()]
    assert code == 0
    assert len(events) == 3
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    with world.h.ctx.store.read() as tx:
        assert events[-1]["id"] == tx.audit.list_changes(limit=1)[0].id
    code, text = _cli(world, "log", "tail", "-n", "50", "--entity", "request", "--json")
    assert all(json.loads(line)["entity_type"] == "request" for line in text.splitlines())


def test_log_export_streams_csv_and_json(world: World, tmp_path: Path) -> None:
    """log export writes every log row, oldest first, as CSV (file 0600) or a JSON array."""
    _, listing = _json(world, "log", "list", "--limit", "10000")
    out = tmp_path / "log.csv"
    code, _ = _cli(world, "log", "export", "--format", "csv", "-o", str(out))
    assert code == 0
    assert (out.stat().st_mode & 0o777) == 0o600
    import csv  # noqa: PLC0415

    rows = list(csv.DictReader(out.open(newline="")))
    assert len(rows) == len(listing["rows"])
    assert [int(r["file_id"]) for r in rows] == sorted(int(r["file_id"]) for r in rows)
    assert any(r["trace_numbers"] == world.tracking["AU-0001"] and r["ack_status"] == "A" for r in rows)
    code, text = _cli(world, "log", "export", "--format", "json", "--type", "271")
    exported = json.loads(text)
    answers = [r for r in listing["rows"] if r["type"] == "271"]
    assert code == 0
    assert {r["type"] for r in exported} == {"271"}
    assert len(exported) == len(answers) > 0


# ----------------------------------------------------------------------------- authorizations


def test_auth_list_filters(world: World) -> None:
    """auth list by status, payer, expiry window and time pended."""
    t = world.tracking
    _, doc = _json(world, "auth", "list", "--status", "pended")
    assert [a["tracking_number"] for a in doc["authorizations"]] == [t["AU-0003"]]
    assert doc["authorizations"][0]["patient"] == "C********T, D***A"
    _, doc = _json(world, "auth", "list", "--payer", "ACME01")
    assert {a["tracking_number"] for a in doc["authorizations"]} == {t["AU-0001"], t["AU-0003"], t["AU-0006"]}
    _, doc = _json(world, "auth", "list", "--expiring-within", "120d")
    assert [a["tracking_number"] for a in doc["authorizations"]] == [t["AU-0001"]]
    assert _json(world, "auth", "list", "--expiring-within", "30d")[0] == 1
    _, doc = _json(world, "auth", "list", "--pending-longer-than", "0m")
    assert [a["tracking_number"] for a in doc["authorizations"]] == [t["AU-0003"]]
    assert _json(world, "auth", "list", "--pending-longer-than", "100w")[0] == 1


def test_auth_show_history_lines_and_dates(world: World) -> None:
    """auth show TRACKING|CERT: status history, service lines and dates; unknown exits 1."""
    code, doc = _json(world, "auth", "show", world.tracking["AU-0001"])
    assert code == 0
    auth = doc["authorization"]
    assert auth["status"] == "approved"
    assert auth["certification_number"].startswith("SIM")
    assert [(e["from"], e["to"]) for e in doc["events"]] == [(None, "pended"), ("pended", "approved")]
    assert [(s["procedure_code"], s["status"]) for s in doc["services"]] == [("72148", "approved")]
    assert auth["effective_from"] < auth["effective_to"]
    assert doc["request"]["member_id"] == "ZZM*******01"
    assert _json(world, "auth", "show", auth["certification_number"])[1]["authorization"] == auth
    assert _json(world, "auth", "show", "NOPE")[0] == 1
    assert "CANARYTEST" not in json.dumps(doc)


# ------------------------------------------------------------------------------- acks and stats


def test_acks_overdue(world: World) -> None:
    """acks overdue: nothing past the configured hour (exit 0, a monitoring check that is green); with
    --older-than 0m the unacknowledged file (exit 1)."""
    code, doc = _json(world, "acks", "overdue")
    assert code == 0
    assert doc["overdue"] == []
    assert doc["older_than_minutes"] == 60
    code, doc = _json(world, "acks", "overdue", "--older-than", "0m")
    assert code == 1
    assert [r["tracking_numbers"] for r in doc["overdue"]] == [[world.tracking["EL-LATE"]]]


def test_stats(world: World) -> None:
    """stats: counts by type and status, acceptance rate and turnaround per payer."""
    code, doc = _json(world, "stats", "--since", "7d")
    assert code == 0
    assert doc["requests"]["278"] == {"answered": 2, "pended": 1}
    assert doc["authorizations"] == {"approved": 1, "denied": 1, "pended": 1}
    acks = doc["acknowledgments"]
    assert acks["rejected"] == 1
    assert 0 < acks["acceptance_rate"] < 1
    assert doc["transaction_sets"]["271 in"] == {"received": 2}, "EL-0001, EL-0002 (EL-LATE's waits)"
    turnaround = {(t["payer_id"], t["kind"]): t for t in doc["turnaround"]}
    assert turnaround[("ACME01", "278")]["count"] == 2, "the MRI and the denial; the pended DME is waiting"
    assert turnaround[("ACME01", "278")]["median_seconds"] <= turnaround[("ACME01", "278")]["p95_seconds"]


def test_usage_and_configuration_errors_exit_2(world: World, tmp_path: Path) -> None:
    """Bad durations are usage errors (2); a missing configuration file is a configuration error (2)."""
    with pytest.raises(SystemExit) as exc:
        _cli(world, "auth", "list", "--expiring-within", "soon")
    assert exc.value.code == 2
    code, _ = _cli(world, "log", "list", "--config", str(tmp_path / "none.toml"), config=False)
    assert code == 2


# ------------------------------------------------------------------------ changing the store


def test_reprocess_inbox_file_runs_once(world: World) -> None:
    """A fixed quarantined inbox file is reprocessed once: a second run is refused, one request results."""
    file_id = world.file_id("broken.json")
    fixed = json.loads((REQUESTS / "270-subscriber.json").read_text()) | {"trace_number": "EL-0099"}
    quarantined = world.h.config.folders.quarantine / f"{file_id}.json"
    assert quarantined.exists()
    quarantined.write_text(json.dumps(fixed))
    code, doc = _json(world, "reprocess", str(file_id))
    assert code == 0
    assert doc["done"]
    assert doc["state"] == "claimed"
    code, doc = _json(world, "reprocess", str(file_id))
    assert code == 1
    assert not doc["done"]
    assert world.h.run_until(lambda: "EL-0099" in world.h.requests() and _state(world, "EL-0099") in SETTLED)
    assert [r for r in world.h.requests() if r == "EL-0099"] == ["EL-0099"]
    tracking = world.h.requests()["EL-0099"].tracking_number
    assert world.h.clearinghouse_traces().count(tracking) == 1
    assert _json(world, "log", "show", f"file:{file_id}")[1]["file"]["state"] == "accepted"
    assert (world.h.config.folders.archive / f"{file_id}.json").exists(), "archived, not kept as changed"
    assert _json(world, "reprocess", str(file_id))[0] == 1, "an accepted file is not reprocessed"


def test_reprocess_inbound_file_runs_once(world: World) -> None:
    """A quarantined received file goes back to 'downloaded' once and is validated (and quarantined) again."""
    file_id = world.file_id(GARBAGE)
    assert _json(world, "reprocess", str(file_id))[1]["state"] == "downloaded"
    assert _json(world, "reprocess", str(file_id))[0] == 1
    world.h.gateway.cycle()
    _, view = _json(world, "log", "show", f"file:{file_id}")
    assert view["file"]["state"] == "quarantined"
    assert len(view["quarantine"]) == 2
    assert [h["to"] for h in view["history"]][-3:] == ["downloaded", "processing", "quarantined"]


def test_resend_runs_once(world: World) -> None:
    """resend puts a rejected request back to 'new' once; the clearinghouse gets it exactly one more time."""
    tracking = world.tracking["REJ-999"]
    code, doc = _json(world, "resend", tracking)
    assert code == 0
    assert doc["previous_state"] == "rejected"
    assert _state(world, "REJ-999") == "new"
    assert _json(world, "resend", tracking)[0] == 1
    assert world.h.run_until(lambda: _state(world, "REJ-999") == "rejected")
    assert world.h.clearinghouse_traces().count(tracking) == 2
    _, view = _json(world, "log", "show", tracking)
    assert len([s for s in view["transactions"] if s["direction"] == "out"]) == 2
    assert _json(world, "resend", world.tracking["AU-0001"])[0] == 1, "answered requests are not resent"
    assert _json(world, "resend", "GW-NO-SUCH")[0] == 1


_CLI = (
    "import argparse, sys\n"
    "from gateway.cli import log_cmd, auth_cmd, ops_cmd\n"
    "p = argparse.ArgumentParser()\n"
    "s = p.add_subparsers()\n"
    "[m.register(s) for m in (log_cmd, auth_cmd, ops_cmd)]\n"
    "a = p.parse_args(sys.argv[1:])\n"
    "sys.exit(a.func(a))\n"
)


def _read_line(proc: subprocess.Popen[str], limit: float = 20.0) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], limit)
    assert ready, "log tail -f printed nothing"
    return proc.stdout.readline()


def test_log_tail_follow_until_sigint(world: World) -> None:
    """log tail -f prints new events as they happen and exits 0 on SIGINT."""
    command = [sys.executable, "-c", _CLI, "log", "tail", "-f", "-n", "1", "--interval", "0.1", "--json"]
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [*command, "--config", str(world.config)], stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env
    )
    try:
        first = json.loads(_read_line(proc))
        tracking = world.tracking["REJ-999"]
        assert _json(world, "resend", tracking)[0] == 0
        seen: list[dict[str, Any]] = []
        while not any(e["subject"] == tracking and e["to"] == "new" for e in seen):
            seen.append(json.loads(_read_line(proc)))
        assert all(e["id"] > first["id"] for e in seen)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
