"""Inbox intake without a clearinghouse: formats (JSON, CSV, X12), partial files, routing, complete-file
detection, duplicates, and crash recovery of a half-claimed file."""

from __future__ import annotations

import csv
import json
import os
import tomllib
import tracemalloc
import unicodedata
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.lifecycle import FileEvent, FileState, RequestEvent
from gateway.runtime.config import parse_config
from gateway.runtime.context import Context
from gateway.runtime.runner import open_context
from gateway.stages import batching, intake
from gateway.stages.outbox import write_results
from tests.e2e_harness import REQUESTS, config_text
from tests.sftp_support import new_host_key_line, write_private_key
from tests.x12text import built


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    key = write_private_key(tmp_path / "client")
    text = config_text(port=2222, host_key_line=new_host_key_line(), key_file=key, remote_root="")
    context = open_context(parse_config(tomllib.loads(text), tmp_path / "gw"))
    yield context
    context.store.close()


def _drop(ctx: Context, name: str, data: bytes) -> Path:
    path = ctx.config.folders.inbox / name
    path.write_bytes(data)
    old = path.stat().st_mtime - 10
    os.utime(path, (old, old))
    return path


def _states(ctx: Context) -> dict[str, str]:
    with ctx.store.read() as tx:
        return {f.name: f.state for f in tx.files.query(direction="in")}


def _requests(ctx: Context) -> list[str]:
    with ctx.store.read() as tx:
        return sorted(str(r.payload["client_reference"]) for r in tx.requests.query())


CSV = (
    "payer_id,payer_name,provider_name,provider_npi,member_id,last_name,first_name,birth_date,gender,service_types,reference\n"
    "ACME01,ACME HEALTH PLAN,RIVERSIDE IMAGING,1234567893,ZZM1,CANARYTEST,ONE,1970-01-01,F,30 62,CSV-1\n"
    "ACME01,ACME HEALTH PLAN,RIVERSIDE IMAGING,1234567890,ZZM2,CANARYTEST,TWO,1970-01-01,F,30,CSV-2\n"
    "OTHERPAYER,OTHER PLAN,RIVERSIDE IMAGING,1234567893,ZZM3,CANARYTEST,THREE,,,30,CSV-3\n"
)


def test_csv_batch_sends_good_rows_and_quarantines_the_reasons(ctx: Context) -> None:
    """A CSV with a bad NPI row and an unrouted payer: the good row is queued, the others explained."""
    _drop(ctx, "batch.csv", CSV.encode())
    assert intake.intake(ctx) == 1
    assert _requests(ctx) == ["CSV-1"]
    assert _states(ctx) == {"batch.csv": "partially_accepted"}
    (reason_file,) = ctx.config.folders.quarantine.glob("*.reason.json")
    reason = json.loads(reason_file.read_text())
    fields = sorted(r["field"] for r in reason["requests"])
    assert fields == ["payer.id", "row 3.provider.npi"]
    assert "CANARYTEST" not in reason_file.read_text(), "reasons never quote the data"
    archived = {p.name: p.read_bytes() for p in ctx.config.folders.archive.iterdir()}
    assert archived == {"1.csv": CSV.encode()}, "the file itself is archived, unchanged"
    assert (ctx.config.folders.quarantine / "1.csv").read_bytes() == CSV.encode(), "and a copy kept"
    assert list(ctx.config.folders.inbox.iterdir()) == []


def test_ready_made_x12_is_reenveloped(ctx: Context) -> None:
    """A ready-made 270 interchange becomes a request sent under our own envelope and tracking number."""
    _drop(ctx, "ready.x12", built("270-dependent").encode())
    intake.intake(ctx)
    assert _requests(ctx) == ["EL-0002"]
    assert batching.batch_all(ctx) == 1
    with ctx.store.read() as tx:
        (out,) = tx.files.query(direction="out")
        (req,) = tx.requests.query()
    data = ctx.payloads.get(out.sha256).decode()
    assert f"TRN*1*{req.tracking_number}*9X12GATEWY" in data
    assert "NM1*03*1*CANARYTEST*CHARLIE" in data


def test_incomplete_and_marker_files_wait(ctx: Context) -> None:
    """Dot-files, *.part and files still changing are left alone."""
    sample = (REQUESTS / "270-subscriber.json").read_bytes()
    _drop(ctx, ".hidden.json", sample)
    _drop(ctx, "upload.json.part", sample)
    (ctx.config.folders.inbox / "fresh.json").write_bytes(sample)  # mtime now: not stable yet
    ctx.config = ctx.config.__class__(
        **{**vars(ctx.config), "inbox": ctx.config.inbox.__class__(stable_seconds=5)}
    )
    assert intake.intake(ctx) == 0
    assert _states(ctx) == {}


def test_unreadable_file_is_quarantined_with_reason(ctx: Context) -> None:
    """Garbage is quarantined with a reason.json; nothing is queued."""
    _drop(ctx, "garbage.json", b"\x00\x01 not json")
    intake.intake(ctx)
    assert _states(ctx) == {"garbage.json": "quarantined"}
    assert (ctx.config.folders.quarantine / "1.json").exists()
    reason = json.loads((ctx.config.folders.quarantine / "1.json.reason.json").read_text())
    assert "not valid JSON" in reason["reason"]
    assert _requests(ctx) == []


def test_half_claimed_file_is_finished_after_a_crash(ctx: Context) -> None:
    """A file recorded as 'claiming' but never moved (crash) is claimed and processed on recovery."""
    path = _drop(ctx, "270-subscriber.json", (REQUESTS / "270-subscriber.json").read_bytes())
    from gateway.runtime.fsutil import sha256_file  # noqa: PLC0415

    sha, size = sha256_file(path)
    with ctx.store.begin() as tx:
        tx.files.record(
            direction="in",
            partner="inbox",
            name=path.name,
            sha256=sha,
            size=size,
            payload_path=None,
            state=FileState.CLAIMING,
        )
    intake.recover(ctx)
    assert _states(ctx) == {"270-subscriber.json": "accepted"}
    assert _requests(ctx) == ["EL-0001"]
    assert not path.exists()
    assert intake.intake(ctx) == 0, "the file is not taken a second time"


@pytest.mark.parametrize(
    ("sample", "path"),
    [("270-subscriber.json", "subscriber.last_name"), ("278-outpatient-mri.json", "requester.contact_name")],
)
def test_unstorable_text_is_named_by_its_json_path(sample: str, path: str) -> None:
    """A control character anywhere in a request (checked on the model, before its one JSON form is
    made) is reported under the field's JSON path; the request itself is not taken."""
    doc = json.loads((REQUESTS / sample).read_text())
    target = doc
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = "BAD\x07VALUE"
    parsed = intake.parse_inbox_bytes(json.dumps(doc).encode(), "r.json")
    assert parsed.requests == []
    assert parsed.errors == [{"index": 0, "field": path, "reason": intake.UNSTORABLE}]


@given(st.text(alphabet=st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF), max_size=20))
def test_the_unstorable_check_is_exactly_unicode_control_and_surrogate(text: str) -> None:
    """The one-regex check refuses exactly the texts holding a character of Unicode category Cc or Cs,
    as the per-character category lookup it replaced did."""
    expected = any(unicodedata.category(c) in ("Cc", "Cs") for c in text)
    assert (intake._unstorable(text) is not None) == expected


def test_a_bad_text_in_a_list_is_named_by_its_index() -> None:
    """Paths through lists name the index (``lines.0.trace_number``), as the JSON form would."""
    doc = json.loads((REQUESTS / "278-outpatient-mri.json").read_text())
    doc["lines"][0]["trace_number"] = "AU\x1b1"
    parsed = intake.parse_inbox_bytes(json.dumps(doc).encode(), "r.json")
    assert parsed.errors == [{"index": 0, "field": "lines.0.trace_number", "reason": intake.UNSTORABLE}]


def test_a_rival_claim_that_vanished_does_not_make_the_file_a_duplicate(ctx: Context) -> None:
    """Two nodes claim one inbox file at once: the loser's row (claiming, then vanished) has the same
    SHA-256 but is no original, so the winner's file is accepted, not a "duplicate" of nothing."""
    from gateway.runtime.fsutil import sha256_file  # noqa: PLC0415

    path = _drop(ctx, "270-subscriber.json", (REQUESTS / "270-subscriber.json").read_bytes())
    sha, size = sha256_file(path)
    for state in (FileState.CLAIMING, FileState.VANISHED):
        with ctx.store.begin() as tx:
            rival = tx.files.record(
                direction="in",
                partner="inbox",
                name=f"rival-{state}.json",
                sha256=sha,
                size=size,
                payload_path=None,
                state=FileState.CLAIMING,
            )
            if state is FileState.VANISHED:
                tx.files.transition(rival.id, FileEvent.VANISH, expect=FileState.CLAIMING)
    assert intake.intake(ctx) == 1
    assert _states(ctx)["270-subscriber.json"] == "accepted"
    assert _requests(ctx) == ["EL-0001"]


def test_request_text_with_an_x12_delimiter_is_refused_with_a_reason() -> None:
    """A member id holding `^` (a delimiter the batch writer refuses) is a request error, not a crash."""
    doc = json.loads((REQUESTS / "270-subscriber.json").read_text())
    doc["subscriber"]["member_id"] = "ZZM1^2"
    parsed = intake.parse_inbox_bytes(json.dumps(doc).encode(), "r.json")
    assert parsed.requests == []
    assert parsed.errors == [{"index": 0, "field": "subscriber.member_id", "reason": intake.UNSENDABLE}]


def test_a_value_holding_an_x12_delimiter_is_rejected_at_intake(ctx: Context) -> None:
    """A member id with ':' (our component separator) is rejected with the field named, not the value,
    so the partner's batch is never blocked by a request that cannot be written."""
    doc = json.loads((REQUESTS / "270-subscriber.json").read_text())
    doc["subscriber"]["member_id"] = "ZZM1:23"
    _drop(ctx, "delim.json", json.dumps(doc).encode())
    assert intake.intake(ctx) == 1
    assert _states(ctx) == {"delim.json": "quarantined"}
    (reason_file,) = ctx.config.folders.quarantine.glob("*.reason.json")
    reason = json.loads(reason_file.read_text())
    assert reason["requests"][0]["field"] == "subscriber.member_id"
    assert "ZZM1:23" not in reason_file.read_text()
    assert batching.batch_all(ctx) == 0


def test_csv_summary_cells_cannot_become_spreadsheet_formulas(ctx: Context) -> None:
    """A partner's reason and a reference starting with = or - reach the CSV summary with a leading
    apostrophe (inert in a spreadsheet); other cells are unchanged."""
    rows = CSV.splitlines()[:2]
    _drop(ctx, "formulas.csv", f"{rows[0]}\n{rows[1].replace('CSV-1', '-2-3')}\n".encode())
    intake.intake(ctx)
    batching.batch_all(ctx)
    with ctx.store.begin() as tx:
        (req,) = tx.requests.query()
        tx.requests.transition(req.tracking_number, RequestEvent.REJECT, reason='=HYPERLINK("x","y")')
    write_results(ctx, [req.tracking_number], summary_name="summary-test.csv")
    text = (ctx.config.folders.outbox / "summary-test.csv").read_text()
    (row,) = csv.DictReader(text.splitlines())
    assert (row["client_reference"], row["reason"]) == ("'-2-3", '\'=HYPERLINK("x","y")')
    assert (row["tracking_number"], row["state"]) == (req.tracking_number, "rejected")


def test_an_oversized_file_is_refused_by_its_size_before_it_is_read(ctx: Context) -> None:
    """A file above ``max_file_bytes`` is quarantined with the reason, without being read into memory
    or copied into the payloads (peak Python allocation stays far below the file's size)."""
    ctx.config = replace(ctx.config, inbox=replace(ctx.config.inbox, max_file_bytes=1000))
    big = _drop(ctx, "big.json", b"[")
    os.truncate(big, 40_000_000)  # sparse: large without filling the disk
    os.utime(big, (big.stat().st_mtime - 10,) * 2)
    _drop(ctx, "next.csv", CSV.encode())
    tracemalloc.start()
    try:
        assert intake.intake(ctx) == 2
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10_000_000, peak
    states = _states(ctx)
    assert states["big.json"] == "quarantined"
    with ctx.store.read() as tx:
        (row,) = [f for f in tx.files.query(direction="in") if f.name == "big.json"]
    assert row.reason == "larger than the 1000-byte limit"
    assert not [p for p in ctx.config.folders.payloads.rglob("*") if p.is_file() and p.stat().st_size > 1000]
    assert not big.exists()


def test_long_and_non_utf8_names_are_taken_and_the_next_file_too(ctx: Context) -> None:
    """A 250-byte name and a name that is not UTF-8 are taken like any file (internal names come from
    the id; the store keeps the name, undecodable bytes spelled ``\\xff``), and so is the next file."""
    doc = json.loads((REQUESTS / "270-subscriber.json").read_text())
    long_name = "L" * 245 + ".json"
    _drop(ctx, long_name, json.dumps(doc | {"trace_number": "LONG-1"}).encode())
    not_utf8 = os.fsdecode(b"d-\xff\xfe.json")  # os spells the bytes as lone surrogates
    _drop(ctx, not_utf8, json.dumps(doc | {"trace_number": "RAW-1"}).encode())
    _drop(ctx, "zz-next.csv", CSV.encode())
    assert intake.intake(ctx) == 3
    assert _states(ctx) == {
        long_name: "accepted",
        "d-\\xff\\xfe.json": "accepted",
        "zz-next.csv": "partially_accepted",
    }
    assert _requests(ctx) == ["CSV-1", "LONG-1", "RAW-1"]
    assert list(ctx.config.folders.inbox.iterdir()) == []
    names = [p.name for p in ctx.config.folders.archive.iterdir()]
    assert all(len(n) <= 16 for n in names), names
    intake.recover(ctx)  # nothing left half-done
    assert list(ctx.config.folders.work.iterdir()) == []


def test_an_unexpected_error_quarantines_that_file_and_the_next_file_is_taken(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any exception while taking one inbox file (here a parser bug stood in by a fault injection)
    quarantines that file with the error's type as the reason; the loop goes on with the next file."""
    real = intake.parse_inbox_bytes

    def buggy(data: bytes, name: str, max_requests: int | None = None) -> intake.Parsed:
        if name == "a-poison.json":
            raise RuntimeError("a bug nobody has found yet")
        return real(data, name, max_requests)

    monkeypatch.setattr(intake, "parse_inbox_bytes", buggy)
    _drop(ctx, "a-poison.json", b"[]")
    _drop(ctx, "b-next.csv", CSV.encode())
    assert intake.intake(ctx) == 2, "both taken: the poisoned one into quarantine"
    assert _states(ctx) == {"a-poison.json": "quarantined", "b-next.csv": "partially_accepted"}
    with ctx.store.read() as tx:
        (row,) = [f for f in tx.files.query(direction="in") if f.name == "a-poison.json"]
    assert row.reason == "the file could not be taken (RuntimeError)"
    assert (ctx.config.folders.quarantine / f"{row.id}.json").read_bytes() == b"[]"
    assert json.loads((ctx.config.folders.quarantine / f"{row.id}.json.reason.json").read_text())["reason"]
    assert list(ctx.config.folders.work.iterdir()) == []
    assert intake.intake(ctx) == 0, "not retried every cycle"
