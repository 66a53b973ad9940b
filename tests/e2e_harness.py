"""A gateway wired to a clearinghouse simulator over real SFTP, for end-to-end tests."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko

from gateway.runtime.config import GatewayConfig, parse_config
from gateway.runtime.context import Context
from gateway.runtime.runner import Gateway, open_context
from gateway.store import RequestRow
from payersim.scenario import Scenario
from payersim.simulator import ClearinghouseSimulator
from transactions.envelope_reader import read_interchanges

ROOT = Path(__file__).resolve().parent.parent
# how much longer than its nominal bound a harness wait may last (waits end as soon as they hold)
PATIENCE = float(os.environ.get("X12GW_TEST_PATIENCE", "3"))
REQUESTS = ROOT / "sample_edi" / "requests"

SCENARIO = """
[defaults]
eligibility = "active"
review = "approve"
delay_seconds = 0.0
approve_after_seconds = 1.0
[[rules]]
member_id = "ZZMHOLDRESP1"
delay_seconds = 3600.0
[[rules]]
procedure = "72148"
review = "pend_then_approve"
[[rules]]
procedure = "70450"
review = "deny"
[[rules]]
member_id = "ZZM100000002"
kind = "270"
eligibility = "inactive"
[[rules]]
member_id = "ZZMREJECT999"
ack = "reject"
[[rules]]
member_id = "ZZMREJECTTA1"
ack = "ta1_reject"
"""


def config_text(
    *,
    port: int,
    host_key_line: str,
    key_file: Path,
    remote_root: str,
    database_url: str = "",
    username: str = "x12gw",
    retry_attempts: int = 2,
    pause_after_failures: int = 100,
) -> str:
    db = f'database_url = "{database_url}"\n' if database_url else ""
    return f"""
[gateway]
usage = "T"
{db}
[identity]
isa_qualifier = "ZZ"
isa_id = "X12GATEWAY"
gs_id = "X12GATEWAY"
trace_assigner = "9X12GATEWY"

[inbox]
stable_seconds = 0

[[partners]]
name = "sim"
host = "127.0.0.1"
port = {port}
username = "{username}"
key_file = "{key_file}"
host_keys = [{json.dumps(host_key_line)}]
upload_dir = "{remote_root}/inbound"
download_dir = "{remote_root}/outbound"
poll_seconds = 1
timeout_seconds = 5
retry_attempts = {retry_attempts}
pause_after_failures = {pause_after_failures}
pause_minutes = 0.02
isa_id = "CLEARINGHOUSE"
gs_id = "CLEARINGHOUSE"
payers = ["ACME01"]
"""


def scenario() -> Scenario:
    return Scenario.from_toml(SCENARIO, "test scenario")


@dataclass
class Harness:
    base: Path
    ctx: Context
    gateway: Gateway
    clearinghouse: Path  # the simulator's folder on disk (inbound/, outbound/)

    @property
    def config(self) -> GatewayConfig:
        return self.ctx.config

    def drop(self, name: str, data: bytes) -> None:
        (self.config.folders.inbox / name).write_bytes(data)

    def drop_sample(self, stem: str, *, name: str | None = None, **changes: object) -> None:
        doc = json.loads((REQUESTS / f"{stem}.json").read_text())
        for path, value in changes.items():
            target = doc
            keys = path.split("__")
            for k in keys[:-1]:
                target = target[k]
            target[keys[-1]] = value
        self.drop(name or f"{stem}.json", json.dumps(doc).encode())

    def run_until(self, predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
        """Cycle until ``predicate`` holds; the wait is a bound, not a figure, so it is stretched.

        Under a loaded machine (parallel suites) a cycle can take seconds; every caller waits for
        something that must happen, so a longer bound only slows a run that fails anyway.
        """
        deadline = time.monotonic() + timeout * PATIENCE
        while time.monotonic() < deadline:
            self.gateway.cycle()
            if predicate():
                return True
            time.sleep(0.2)
        return predicate()

    def requests(self) -> dict[str, RequestRow]:
        """client reference -> request row."""
        with self.ctx.store.read() as tx:
            return {str(r.payload.get("client_reference")): r for r in tx.requests.query(limit=10_000)}

    def settled(self, *refs: str) -> bool:
        rows = self.requests()
        return all(
            ref in rows and rows[ref].state not in ("new", "queued", "sent", "acknowledged", "pended")
            for ref in refs
        )

    def result(self, tracking: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads((self.config.folders.outbox / f"{tracking}.json").read_text())
        return doc

    def clearinghouse_traces(self) -> list[str]:
        """TRN02 of every transaction set the clearinghouse received (processed input files)."""
        traces: list[str] = []
        for path in sorted((self.clearinghouse / "inbound" / "processed").glob("*")):
            for ic in read_interchanges(path.read_bytes()):
                for t in ic.transaction_sets():
                    traces += [s.get(2) for s in t.segments if s.tag == "TRN" and s.get(1) == "1"][:1]
        return traces


def make_harness(
    base: Path,
    *,
    port: int,
    host_key_line: str,
    key_file: Path,
    remote_root: str,
    clearinghouse: Path,
    **config_kw: Any,
) -> Harness:
    text = config_text(
        port=port, host_key_line=host_key_line, key_file=key_file, remote_root=remote_root, **config_kw
    )
    import tomllib  # noqa: PLC0415

    config = parse_config(tomllib.loads(text), base)
    ctx = open_context(config)
    return Harness(base, ctx, Gateway(ctx), clearinghouse)


def start_simulator(
    root: Path, host_key: paramiko.PKey, client_public_line: str, port: int = 0
) -> ClearinghouseSimulator:
    for sub in ("inbound", "outbound"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return ClearinghouseSimulator(
        root, scenario(), host_key=host_key, authorized_keys=(client_public_line,), port=port
    ).start()
