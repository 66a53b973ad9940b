"""``x12gw demo``: the whole gateway end to end on this machine, on embedded defaults.

In a temporary workspace it starts the clearinghouse simulator (fresh host key, demo scenario), writes
a configuration that pins that host key, drops the sample requests into the inbox, runs the gateway
until every request has its answer (a pended MRI gets approved a little later), and prints a table of
eligibility results and authorization records. Nothing outside the workspace is touched.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from gateway.lifecycle import RequestState
from gateway.runtime.config import demo_config_text, load_config
from gateway.runtime.context import Context
from gateway.runtime.runner import Gateway, open_context
from gateway.transport.keys import ensure_key, public_line
from payersim.scenario import Scenario
from payersim.simulator import ClearinghouseSimulator

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_edi"
WAITING = frozenset(
    {RequestState.NEW, RequestState.QUEUED, RequestState.SENT, RequestState.ACKNOWLEDGED, RequestState.PENDED}
)


@dataclass
class Workspace:
    base: Path
    config_path: Path
    simulator: ClearinghouseSimulator


def prepare(base: Path, scenario_path: Path) -> Workspace:
    """Keys, simulator and configuration inside ``base`` (the simulator is started)."""
    clearing = base / "clearinghouse"
    for folder in (clearing / "inbound", clearing / "outbound"):
        folder.mkdir(parents=True, exist_ok=True)
    client_key = base / "keys" / "gateway_ed25519"
    ensure_key(client_key)
    host_key = ensure_key(base / "keys" / "sim_host_ed25519")
    sim = ClearinghouseSimulator(
        clearing, Scenario.load(scenario_path), host_key=host_key, authorized_keys=(public_line(client_key),)
    )
    sim.start()
    config_path = base / "gateway.toml"
    config_path.write_text(demo_config_text(base, sim.port, sim.host_key_line, client_key), encoding="utf-8")
    return Workspace(base, config_path, sim)


def drop_requests(inbox: Path, sources: list[Path]) -> None:
    inbox.mkdir(parents=True, exist_ok=True)
    for src in sources:
        shutil.copyfile(src, inbox / src.name)


def outstanding(ctx: Context) -> int:
    with ctx.store.read() as tx:
        return sum(len(tx.requests.query(state=s, limit=10_000)) for s in WAITING)


def run_until_answered(
    gateway: Gateway, timeout: float, *, expected: int, progress: Callable[[str], None]
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gateway.cycle()
        with gateway.ctx.store.read() as tx:
            total = len(tx.requests.query(limit=10_000))
        left = outstanding(gateway.ctx)
        progress(f"requests {total}/{expected}, waiting for {left} answer(s)")
        if total >= expected and left == 0:
            return True
        time.sleep(0.5)
    return False


def table(ctx: Context) -> list[tuple[str, ...]]:
    """One row per request: tracking number, kind, client reference, state/status, cert, dates."""
    rows: list[tuple[str, ...]] = []
    with ctx.store.read() as tx:
        for req in sorted(tx.requests.query(limit=10_000), key=lambda r: r.id):
            ref = str(req.payload.get("client_reference") or "")
            if req.kind == "270":
                elig = tx.results.get_eligibility(req.tracking_number)
                status = elig.status if elig else req.state
                dates = f"{elig.effective_from or ''}..{elig.effective_to or ''}" if elig else ""
                rows.append((req.tracking_number, "270", ref, status, "", dates))
            else:
                auth = tx.results.get_authorization(req.tracking_number)
                status = auth.status if auth else req.state
                cert = (auth.certification_number or "") if auth else ""
                dates = f"{auth.effective_from or ''}..{auth.effective_to or ''}" if auth else ""
                history = (
                    " > ".join(e.new_status for e in tx.results.authorization_history(auth.id))
                    if auth
                    else ""
                )
                rows.append((req.tracking_number, "278", ref, history or status, cert, dates))
    return rows


def print_table(rows: list[tuple[str, ...]], out: TextIO) -> None:
    head = ("tracking number", "kind", "reference", "status", "certification", "dates")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, tuple("-" * w for w in widths), *rows]:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n")


def _say(out: TextIO, message: str) -> None:
    out.write(f"  {message}\n")


def run_demo(*, keep: Path | None = None, timeout: float = 60.0, out: TextIO = sys.stdout) -> int:
    base = keep or Path(tempfile.mkdtemp(prefix="x12gw-demo-"))
    base.mkdir(parents=True, exist_ok=True)
    sources = sorted((SAMPLES / "requests").glob("*.json"))
    ws = prepare(base, SAMPLES / "scenarios" / "demo.toml")
    ctx = open_context(load_config(ws.config_path), allow_upgrade=True)  # the demo owns its workspace
    try:
        out.write(
            f"workspace: {base}\nclearinghouse simulator on 127.0.0.1:{ws.simulator.port} (host key pinned)\n"
        )
        drop_requests(ctx.config.folders.inbox, sources)
        out.write(f"dropped {len(sources)} request files into {ctx.config.folders.inbox}\n")
        done = run_until_answered(
            Gateway(ctx), timeout, expected=len(sources), progress=lambda msg: _say(out, msg)
        )
        out.write("\n")
        print_table(table(ctx), out)
        out.write(f"\nresult files: {ctx.config.folders.outbox}\n")
        if not done:
            out.write("demo: not every request was answered in time\n")
        return 0 if done else 1
    finally:
        ctx.store.close()
        ws.simulator.stop()
        if keep is None:
            shutil.rmtree(base, ignore_errors=True)
