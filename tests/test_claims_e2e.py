"""End to end: a 278 goes through the clearinghouse simulator over SFTP and comes back approved; an
837P built from the same values passes ``x12gw claims check``, one that differs fails with its fixes,
and ``--commit`` makes the used units count for the next claim."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import claims_cmd
from gateway.transport.keys import ensure_key, public_line
from payersim.simulator import ClearinghouseSimulator
from tests.e2e_harness import Harness, config_text, make_harness, start_simulator
from tests.test_claims import build_837p

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "config" / "precert-rules.toml"


@dataclass
class World:
    harness: Harness
    config_file: Path


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """Gateway + simulator over paramiko SFTP, and the same configuration written to a file for the CLI."""
    ensure_key(tmp_path / "keys" / "client")
    host_key = ensure_key(tmp_path / "keys" / "host")
    sim: ClearinghouseSimulator = start_simulator(
        tmp_path / "clearinghouse", host_key, public_line(tmp_path / "keys" / "client")
    )
    settings: dict[str, Any] = {
        "port": sim.port,
        "host_key_line": sim.host_key_line,
        "key_file": tmp_path / "keys" / "client",
        "remote_root": "",
    }
    h = make_harness(tmp_path / "gw", clearinghouse=sim.root, **settings)
    config_file = tmp_path / "gw" / "gateway.toml"
    config_file.write_text(config_text(**settings) + f'\n[precert]\nrules_file = "{RULES}"\n')
    yield World(h, config_file)
    h.ctx.store.close()
    sim.stop()


def check(w: World, path: Path, *extra: str) -> int:
    """``x12gw claims check PATH --config <the gateway's file> --json`` through the CLI module."""
    parser = argparse.ArgumentParser()
    claims_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["claims", "check", str(path), "--config", str(w.config_file), "--json", *extra])
    code: int = args.func(args)
    return code


def test_approved_278_then_matching_and_non_matching_837p(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """278 approval via the simulator; the 837P with its values passes, a later, larger one fails."""
    h = world.harness
    h.drop_sample("278-outpatient-mri")
    assert h.run_until(lambda: h.settled("AU-0001"), timeout=30)
    row = h.requests()["AU-0001"]
    result = h.result(row.tracking_number)
    assert result["status"] == "approved"
    record = result["authorization"]
    cert = record["certification_number"]
    start = date.fromisoformat(record["effective_from"])
    end = date.fromisoformat(record["effective_to"])
    service = record["services"][0]
    request = json.loads((ROOT / "sample_edi" / "requests" / "278-outpatient-mri.json").read_text())

    claim = {
        "claim_id": "PCN-E2E-1",
        "member_id": request["subscriber"]["member_id"],
        "payer_id": request["payer"]["id"],
        "pos": request["facility_code"],
        "ref": cert,
        "lines": [{"code": service["procedure_code"], "units": 1, "start": start, "charge": 1200}],
    }
    matching = tmp_path / "matching.x12"
    matching.write_bytes(build_837p([claim], billing_npi=request["servicing_provider"]["npi"]))
    assert check(world, matching) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True
    assert [(ln["outcome"], ln["certification_number"]) for ln in doc["lines"]] == [("ok", cert)]

    late = {
        **claim,
        "claim_id": "PCN-E2E-2",
        "lines": [{**claim["lines"][0], "start": end + timedelta(days=1), "units": 2}],
    }
    non_matching = tmp_path / "non-matching.x12"
    non_matching.write_bytes(build_837p([late], billing_npi=request["servicing_provider"]["npi"]))
    assert check(world, non_matching) == 1
    doc = json.loads(capsys.readouterr().out)
    (line,) = doc["lines"]
    assert {m["kind"] for m in line["mismatches"]} == {"after_end", "units"}
    after_end = next(m["message"] for m in line["mismatches"] if m["kind"] == "after_end")
    day_after = end + timedelta(days=1)
    assert (
        after_end
        == f"service date {day_after} is after the certification end date {end}: request an extension"
    )

    assert check(world, matching, "--commit") == 0
    assert json.loads(capsys.readouterr().out)["committed"] == 1
    assert check(world, matching) == 0, "re-checking a committed claim does not count it twice"
    capsys.readouterr()
    again = tmp_path / "second-visit.x12"
    again.write_bytes(
        build_837p([{**claim, "claim_id": "PCN-E2E-3"}], billing_npi=request["servicing_provider"]["npi"])
    )
    assert check(world, again) == 1
    (line,) = json.loads(capsys.readouterr().out)["lines"]
    assert [m["kind"] for m in line["mismatches"]] == ["units"]
