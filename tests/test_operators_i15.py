"""Issue 15's operator fixes on a real end-to-end run (the shared world of ``tests/test_operators.py``,
built once more for this module): filter values checked, ``reprocess file:N``, local times with the
year, identifiers never cut in tables, client references found everywhere a reference is taken."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from gateway.cli import auth_cmd, log_cmd, ops_cmd, status_cmd
from gateway.operators.formatting import terminal_width
from gateway.operators.session import open_session
from gateway.operators.status import gather
from gateway.runtime.config import load_config
from gateway.runtime.runner import mark_overdue
from gateway.runtime.storeopen import open_store
from gateway.stages import batching, exchange, intake
from gateway.store import schema as s
from gateway.transport.sftp import SftpClient
from gateway.web import users
from gateway.web.browse import BrowseQuery, log_page
from mappings.decode import decision_summary, describe, describe_all
from tests.e2e_harness import ROOT
from tests.test_operators import GARBAGE, World, _cli, _json
from tests.test_operators import world as world  # noqa: PLC0414 - the shared run, as this module's fixture
from tests.web_support import PASSWORD, http_call, serve


def _usage_error(*argv: str) -> str:
    """stderr of a command line argparse refuses (exit 2)."""
    parser = argparse.ArgumentParser(prog="x12gw")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (log_cmd, auth_cmd, ops_cmd):
        module.register(sub)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as stop:
        parser.parse_args(list(argv))
    assert stop.value.code == 2
    return err.getvalue()


@pytest.fixture
def zone() -> Iterator[None]:
    """The process's local zone is UTC-5 (POSIX TZ string, no tz database needed), restored after."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "XST+5"
    time.tzset()
    yield
    if old is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = old
    time.tzset()


def test_bad_filter_values_are_usage_errors_listing_the_valid_ones() -> None:
    """--status bogus (log list, auth list) and --state bogus (log search) exit 2 naming the valid values."""
    err = _usage_error("log", "list", "--status", "bogus")
    assert "'bogus' is not one of" in err
    assert "quarantined" in err
    assert "pended" in err
    assert "received" in err
    err = _usage_error("log", "search", "--state", "bogus")
    assert "answered" in err
    assert "quarantined" not in err
    assert "R, M" in _usage_error("log", "list", "--ack", "Z")
    err = _usage_error("auth", "list", "--status", "bogus")
    assert "partially_approved" in err
    assert "FILE_ID" in _usage_error("reprocess", "set:3") or "not a file id" in _usage_error(
        "reprocess", "set:3"
    )


def test_reprocess_takes_the_file_prefix_log_show_prints(world: World) -> None:
    """reprocess file:N does what reprocess N does (the prefix log show prints for files)."""
    file_id = world.file_id(GARBAGE)
    code, doc = _json(world, "reprocess", f"file:{file_id}")
    assert (code, doc["done"], doc["state"]) == (0, True, "downloaded")
    assert _json(world, "reprocess", f"FILE:{file_id}")[0] == 1, "the second time is refused"


def test_piped_tables_never_cut_identifiers(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Piped output (80 columns, or COLUMNS) shows every tracking number, certification number and file
    name in full; COLUMNS sets the width of piped output."""
    monkeypatch.delenv("COLUMNS", raising=False)
    assert terminal_width(io.StringIO()) == 80
    monkeypatch.setenv("COLUMNS", "250")
    assert terminal_width(io.StringIO()) == 250
    monkeypatch.delenv("COLUMNS")
    _, rows = _json(world, "log", "list", "--limit", "500", "--reveal")
    _, text = _cli(world, "log", "list", "--limit", "500", "--reveal")
    for row in rows["rows"]:
        shown = row["tracking_number"] or (row["trace_numbers"] or [None])[0] or row["file"]
        assert shown in text, shown
    _, auths = _json(world, "auth", "list")
    _, text = _cli(world, "auth", "list")
    certs = [a["certification_number"] for a in auths["authorizations"] if a["certification_number"]]
    assert certs
    assert all(c in text for c in certs)
    assert "~" not in text
    _, text = _cli(world, "acks", "overdue", "--older-than", "0m")
    assert world.tracking["EL-LATE"] in text


def test_times_are_local_with_the_year_unless_utc(world: World, zone: None) -> None:
    """Human output shows times in the local zone with the year (header names the zone); --utc shows UTC."""
    del zone
    _, doc = _json(world, "log", "list", "--limit", "1")
    created = datetime.fromisoformat(doc["rows"][0]["created_at"]).astimezone(UTC)
    _, text = _cli(world, "log", "list", "--limit", "1")
    header, _rule, row = text.splitlines()[:3]
    assert "when (XST)" in header
    assert (created - timedelta(hours=5)).strftime("%Y-%m-%d %H:%M") in row
    _, text = _cli(world, "log", "list", "--limit", "1", "--utc")
    header, _rule, row = text.splitlines()[:3]
    assert "when (UTC)" in header
    assert created.strftime("%Y-%m-%d %H:%M") in row
    _, text = _cli(world, "log", "show", world.tracking["AU-0001"])
    assert " XST" in text
    assert " UTC" not in text


def test_client_reference_found_by_log_show_search_and_auth_show(world: World) -> None:
    """The billing system's own reference (AU-0001) finds its request in log show (bare and ref:),
    log search --ref and auth show; the reference is matched by keyed hash (the payload is sealed)."""
    mri = world.tracking["AU-0001"]
    for ref in ("AU-0001", "ref:AU-0001"):
        code, doc = _json(world, "log", "show", ref)
        assert code == 0, ref
        assert doc["request"]["tracking_number"] == mri
    code, doc = _json(world, "log", "search", "--ref", "AU-0001")
    assert code == 0
    assert [r["tracking_number"] for r in doc["requests"]] == [mri]
    assert _json(world, "log", "search", "--ref", "AU-9999")[0] == 1
    code, doc = _json(world, "auth", "show", "AU-0001")
    assert code == 0
    assert doc["authorization"]["tracking_number"] == mri
    assert _json(world, "auth", "show", "EL-0001")[0] == 1, "an eligibility reference has no authorization"


def test_code_tables_decode_and_never_guess() -> None:
    """The core's code tables: a listed code reads ``code (meaning)``, an unlisted one stays itself."""
    assert describe("ta1_note", "024") == "024 (invalid interchange content)"
    assert describe("segment_error", "8") == "8 (segment has data element errors)"
    assert describe("element_error", "7") == "7 (invalid code value)"
    assert describe("set_error", "5") == "5 (one or more segments in error)"
    assert describe("ack", "P") == "P (partially accepted, at least one set rejected)"
    assert describe("action", "A3") == "A3 (not certified)"
    assert describe("reject_reason", "72") == "72 (invalid/missing subscriber/insured id)"
    assert describe("follow_up", "C") == "C (correct and resubmit)"
    assert describe("eligibility", "1") == "1 (active coverage)"
    assert describe_all("service_type", ["30", "62", "ZZ"]) == (
        "30 (health benefit plan coverage), 62 (MRI/CAT scan), ZZ"
    )
    assert describe("decision_reason", "QQ") == "QQ"
    assert describe("action", None) is None
    summary = decision_summary({"action_code": "A4", "reason_code": "0U", "rejections": []})
    assert summary == "A4 (pended); reason 0U (additional patient information required)"


def test_log_show_and_auth_show_decode_codes(world: World) -> None:
    """log show prints 999 verdicts and errors as code (meaning), 271 benefits with EB01 and service
    types decoded; auth show decodes HCR01 and UM03; the console's chain view shows the same texts."""
    _, text = _cli(world, "log", "show", world.tracking["REJ-999"], "--no-segments")
    assert "999 set R (rejected)" in text
    assert "NM1 at position 9 element NM109: 7 (invalid code value)" in text
    assert "8 (segment has data element errors)" in text
    assert "IK5 R (rejected): NM1 8 (segment has data element errors)" in text, "the request's reason"
    _, doc = _json(world, "log", "show", world.tracking["REJ-999"])
    ack = next(r for b in doc["transactions"] for r in b["related"] if r["relation"] == "acknowledgment")
    assert ack["ack_text"] == "R (rejected)"
    assert {e["text"] for e in ack["errors"]} == {
        "8 (segment has data element errors)",
        "7 (invalid code value)",
    }
    _, text = _cli(world, "log", "show", world.tracking["EL-0001"], "--no-segments")
    assert "1 (active coverage): 30 (health benefit plan coverage)" in text
    assert "B (co-payment): 98 (professional (physician) visit - office)" in text
    _, text = _cli(world, "auth", "show", world.tracking["AU-0006"])
    assert "A3 (not certified)" in text
    assert "73 (diagnostic medical)" in text
    _, text = _cli(world, "auth", "show", world.tracking["AU-0003"])
    assert "A4 (pended)" in text


def test_result_files_say_why_for_denials_and_pends(world: World) -> None:
    """The outbox's top-level reason is filled for a denial and a pend (decoded action and reason), and
    stays empty for an approval."""
    denied = world.h.result(world.tracking["AU-0006"])
    assert denied["status"] == "denied"
    assert denied["reason"].startswith("A3 (not certified)")
    pended = world.h.result(world.tracking["AU-0003"])
    assert pended["reason"].startswith("A4 (pended)")
    assert world.h.result(world.tracking["AU-0001"])["reason"] is None


def _patient(payload: dict[str, Any]) -> tuple[str, str]:
    person = payload.get("dependent") or payload["subscriber"]
    return str(person.get("last_name")), str(person.get("birth_date"))


def test_patient_search_by_last_name_and_birth_date(world: World) -> None:
    """log search --last-name --birth-date finds the requests about that patient (the dependent when
    there is one), case and spacing of the name ignored, through a keyed hash: the store keeps no
    plain name for it. The console's patient search (a POST with its CSRF token) finds the same."""
    rows = world.h.requests()
    expected = {ref for ref, row in rows.items() if _patient(row.payload) == ("CANARYTEST", "2012-03-14")}
    assert len(expected) >= 2
    code, doc = _json(world, "log", "search", "--last-name", " canaryTest ", "--birth-date", "2012-03-14")
    assert code == 0
    assert {r["client_reference"] for r in doc["requests"]} == expected
    assert "CANARYTEST" not in json.dumps(doc), "the results stay masked"
    assert _json(world, "log", "search", "--last-name", "CANARYTEST", "--birth-date", "1999-01-01")[0] == 1
    assert _cli(world, "log", "search", "--last-name", "CANARYTEST")[0] == 2, "both or neither"
    with world.h.ctx.store.read() as tx:
        hashes = {str(v) for (v,) in tx.conn.execute(select(s.requests.c.patient_hash))}
    assert all(len(h) == 64 and "CANARY" not in h.upper() for h in hashes)
    store = open_store(load_config(world.config), role="operator")
    users.add_user(store, "pat", "viewer", PASSWORD)
    store.close()
    with serve(world.config) as srv:
        page = http_call(srv, "/console/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.body)
        assert token is not None
        cookie = page.cookies()[0].split(";")[0].split("=", 1)
        login = http_call(
            srv,
            "/console/login",
            method="POST",
            form={"csrf": token.group(1), "name": "pat", "password": PASSWORD},
            cookies={cookie[0]: cookie[1]},
        )
        session = next(c for c in login.cookies() if c.startswith("x12gw_session="))
        jar = {"x12gw_session": session.split(";")[0].split("=", 1)[1]}
        listing = http_call(srv, "/console/transactions", cookies=jar)
        csrf = re.search(r'name="csrf" value="([^"]+)"', listing.body)
        assert csrf is not None
        form = {"csrf": csrf.group(1), "last_name": "canarytest", "birth_date": "2012-03-14"}
        found = http_call(srv, "/console/patients", method="POST", form=form, cookies=jar)
        assert found.status == 200
        assert {rows[ref].tracking_number for ref in expected} <= set(
            re.findall(r"GW-[A-Z0-9]+-\d+", found.body)
        )
        assert "CANARYTEST" not in found.body, "names stay masked in the console too"
        refused = http_call(srv, "/console/patients", method="POST", form={**form, "csrf": "x"}, cookies=jar)
        assert refused.status == 403


def test_stats_report_the_999_latency(world: World) -> None:
    """stats gives the 999 latency (upload to first 999: files measured, median <= p95), also in text."""
    latency = _json(world, "stats")[1]["ack_latency"]
    assert latency["files"] >= 1
    assert 0 <= latency["median_seconds"] <= latency["p95_seconds"]
    assert "999 latency" in _cli(world, "stats")[1]


def test_status_masks_file_names_and_shows_local_times(world: World, zone: None) -> None:
    """x12gw status names a partner's last file by its mask (file names can be PHI) and prints times
    in the local zone with the year."""
    del zone
    with open_session(str(world.config), json=True) as session, session.store.read() as tx:
        _verdict, doc = gather(tx, session.config, session.clock())
        names = {f.name for f in tx.files.query(limit=1000)}
    shown = doc["partners"][0]["last_exchange"]["file"]
    assert shown.startswith("f-")
    assert shown not in names
    lines = status_cmd.render(doc)
    assert " XST)" in lines[0]


# ------------------------------------------------------ these run last: they move the shared run on


def _unmatched_sets(world: World) -> list[int]:
    with world.h.ctx.store.read() as tx:
        return [
            r["set_row_id"]
            for r in tx.envelopes.rows_of_files([f.id for f in tx.files.query(direction="in", limit=1000)])
            if r.get("set_state") == "unmatched"
        ]


def test_a_response_matching_no_request_is_unmatched_listed_and_counted(world: World) -> None:
    """A 278 answer whose traces match none of our requests: its set is 'unmatched' (a lifecycle move),
    found by log list --status unmatched and the console's state filter, counted by stats and status."""
    text = (ROOT / "sample_edi" / "responses" / "278resp-A1-certified.x12").read_text()
    (world.h.clearinghouse / "outbound" / "stranger.x12").write_text(text)
    assert world.h.run_until(lambda: bool(_unmatched_sets(world)), timeout=30)
    code, doc = _json(world, "log", "list", "--status", "unmatched")
    assert code == 0
    assert [(r["type"], r["direction"], r["state"]) for r in doc["rows"]] == [("278", "in", "unmatched")]
    assert doc["rows"][0]["tracking_number"] is None
    received = _json(world, "log", "list", "--status", "received", "--type", "278", "--direction", "in")[1]
    assert received["rows"]
    assert all(r["tracking_number"] for r in received["rows"]), "the stranger is not shown as received"
    assert _json(world, "stats")[1]["unmatched_responses"] == 1
    with open_session(str(world.config), json=True) as session, session.store.read() as tx:
        verdict, status = gather(tx, session.config, session.clock())
        query, problems = BrowseQuery.parse({"state": "unmatched"})
        rows, _more = log_page(session, tx, query)
        assert BrowseQuery.parse({"state": "bogus"})[1], "the console says a bad state is bad"
    assert status["unmatched_responses"] == 1
    assert verdict >= 1
    assert any("matching no request" in p["message"] for p in status["problems"])
    assert not problems
    assert [r["state"] for r in rows] == ["unmatched"]


def _send_only(world: World, stem: str, name: str, **changes: object) -> str:
    """A request dropped, batched and uploaded, without downloading anything: its tracking number."""
    h = world.h
    h.drop_sample(stem, name=name, **changes)
    intake.intake(h.ctx)
    batching.batch_all(h.ctx)
    with SftpClient(h.config.partners[0].sftp_endpoint()) as client:
        exchange.upload_all(h.ctx, h.config.partners[0], client)
    ref = str(changes["trace_number"])
    assert h.requests()[ref].state == "sent"
    return h.requests()[ref].tracking_number


def test_unanswered_278_is_pending_and_a_late_999_rejection_reaches_the_outbox(world: World) -> None:
    """A 278 sent with no answer yet is listed by auth list --pending-longer-than; a request that went
    overdue and then gets its 999 rejection is 'rejected' and its result file shows the rejection."""
    silent = _send_only(
        world,
        "278-outpatient-mri",
        "silent.json",
        trace_number="AU-SILENT",
        subscriber__member_id="ZZM100000088",
    )
    late = _send_only(
        world,
        "270-subscriber",
        "late-reject.json",
        trace_number="REJ-LATE",
        subscriber__member_id="ZZMREJECT999",
    )
    code, doc = _json(world, "auth", "list", "--pending-longer-than", "0m")
    assert code == 0
    pending = {a["tracking_number"]: a["status"] for a in doc["authorizations"]}
    assert pending[silent] == "no answer (sent)"
    assert pending[world.tracking["AU-0003"]] == "pended"
    assert silent not in {
        a["tracking_number"]
        for a in _json(world, "auth", "list", "--pending-longer-than", "1d")[1]["authorizations"]
    }
    h = world.h
    real_clock = h.ctx.clock
    h.ctx.clock = lambda: real_clock() + timedelta(days=2)  # the deadline passes
    try:
        assert mark_overdue(h.ctx) >= 1
    finally:
        h.ctx.clock = real_clock
    assert h.requests()["REJ-LATE"].state == "overdue"
    assert h.result(late)["state"] == "overdue"
    assert h.run_until(lambda: h.requests()["REJ-LATE"].state == "rejected", timeout=30)
    result = h.result(late)
    assert result["state"] == "rejected"
    assert result["reason"].startswith("rejected by 999, IK5 R (rejected)")
