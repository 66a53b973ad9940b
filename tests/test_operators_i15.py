"""Issue 15's operator fixes on a real end-to-end run (the shared world of ``tests/test_operators.py``,
built once more for this module): filter values checked, ``reprocess file:N``, local times with the
year, identifiers never cut in tables, client references found everywhere a reference is taken."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from gateway.cli import auth_cmd, log_cmd, ops_cmd
from gateway.operators.formatting import terminal_width
from gateway.operators.session import open_session
from gateway.operators.status import gather
from gateway.web.browse import BrowseQuery, log_page
from tests.e2e_harness import ROOT
from tests.test_operators import GARBAGE, World, _cli, _json
from tests.test_operators import world as world  # noqa: PLC0414 - the shared run, as this module's fixture


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
