"""Real-time eligibility through the HTTP API: the gateway's own overhead apart from the payer's latency.

Three processes on loopback: the simulator's CAQH CORE server (mutual TLS, answering every 270 after a
fixed latency, 200 ms by default), ``x12gw serve`` (SQLite store, one ``transport = "core"`` partner),
and this one, where N concurrent clients (16) POST unique eligibility requests to
``/api/v1/eligibility`` with an API key until 1,000 are answered. Each call's round trip is timed at
the client; the gateway's overhead is the round trip minus the payer's configured latency (so the
simulator's own work to build each 271 counts against us: an upper bound), and also minus the payer's
time as the simulator measured it. Prints p50/p95/p99 of each.

    python bench/bench_api.py [--requests 1000] [--clients 16] [--latency 0.2] [--envelope mime] [--postgres]
                              [--workers 1] [--lock-stats]

``--lock-stats [FILE]`` has ``serve`` measure its write transactions (``gateway.store.lockstats``: the
writer lock's held time, wall and CPU, statements and rows per transaction) and adds their totals per
call to the figures; it costs a little CPU per transaction, so compare runs made the same way.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.runtime.config import load_config
from gateway.runtime.runner import open_context
from gateway.store import lockstats
from gateway.web import apiauth
from tests.store_fixtures import postgres_base_url, postgres_schema
from tests.web_support import free_socket

ROOT = Path(__file__).resolve().parent.parent
X12GW = Path(sys.executable).with_name("x12gw")
# this checkout first on the path: the installed ``x12gw`` script would import the editable install's
ENV = {**os.environ, "X12GW_MEMBER_HASH_KEY": "bench-api-key-0123456789abcdef", "PYTHONPATH": str(ROOT)}


def _simulator(pki_dir: str, latency: float, out: Any, stop: Any) -> None:
    """The CORE server in its own process (so its work does not share our interpreter)."""
    from payersim.certs import make_pki  # noqa: PLC0415 - in the child process
    from payersim.core_server import CoreFaults, CoreServer  # noqa: PLC0415
    from payersim.scenario import Scenario  # noqa: PLC0415

    server = CoreServer(
        Scenario(), pki=make_pki(Path(pki_dir)), auth="mtls", faults=CoreFaults(latency_seconds=latency)
    ).start()
    out.put(server.url)
    stop.wait()
    server.stop()
    out.put(list(server.handled_seconds))  # the payer's own time per answer


def config_text(base: Path, url: str, envelope: str, database_url: str | None = None) -> str:
    pki = base / "pki"
    database = f"database_url = {json.dumps(database_url)}" if database_url else ""
    return f"""
[gateway]
usage = "T"
log_level = "WARNING"
{database}
[identity]
isa_id = "X12GATEWAY"
trace_assigner = "9X12GATEWY"
[[partners]]
name = "core-payer"
transport = "core"
isa_id = "SIMPAYER"
payers = ["ACME01"]
[partners.core]
url = "{url}"
envelope = "{envelope}"
sender_id = "X12GATEWAY"
receiver_id = "SIMPAYER"
auth = "mtls"
client_cert = "{pki / "x12gw-client.pem"}"
client_key = "{pki / "x12gw-client.key"}"
ca_file = "{pki / "x12gw-sim-ca.pem"}"
timeout_seconds = 30
"""


def request_body(n: int) -> bytes:
    doc = json.loads((ROOT / "sample_edi" / "requests" / "270-subscriber.json").read_text())
    doc.pop("type")
    doc["trace_number"] = f"BA-{n:06d}"
    doc["subscriber"]["member_id"] = f"ZZM8{n:08d}"
    return json.dumps(doc).encode()


def clients(port: int, key: str, requests: int, concurrency: int) -> tuple[list[float], list[int]]:
    """Round trips (seconds) and statuses of ``requests`` calls made by ``concurrency`` threads."""
    times: list[float] = []
    statuses: list[int] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                break
            body = request_body(n)
            started = time.perf_counter()
            conn.request("POST", "/api/v1/eligibility", body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            elapsed = time.perf_counter() - started
            with lock:
                times.append(elapsed)
                statuses.append(resp.status)
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return times, statuses


def _stat(pid: int | str) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process and its live children (``serve --workers N``) have used
    so far, from /proc (NaN where there is none)."""
    if _stat(pid) is None:
        return float("nan")
    stats = {p.name: f for p in Path("/proc").iterdir() if p.name.isdigit() and (f := _stat(p.name))}
    tree, grew = {str(pid)}, True
    while grew:  # the process and its descendants
        more = {p for p, f in stats.items() if f[1] in tree} - tree
        tree, grew = tree | more, bool(more)
    ticks = sum(int(stats[p][11]) + int(stats[p][12]) for p in tree if p in stats)
    return ticks / os.sysconf("SC_CLK_TCK")


def percentiles(values: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98], "max": max(values)}


def _wait_healthy(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("x12gw serve exited")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("x12gw serve did not start")


def lock_figures(path: Path, offset: int, requests: int) -> dict[str, float]:
    """The measured calls' write transactions (the lines past ``offset``), per call."""
    totals = lockstats.read(str(path), offset)
    return {
        "write_transactions_per_call": totals.transactions / requests,
        "statements_per_call": totals.statements / requests,
        "rows_stepped_per_call": totals.rows / requests,
        "lock_held_ms_per_call": totals.held_ms / requests,
        "lock_held_cpu_ms_per_call": totals.cpu_ms / requests,
        "lock_held_ms_per_transaction": totals.held_ms / max(1, totals.transactions),
        "lock_held_ms_max": totals.max_held_ms,
    }


def run(
    requests: int,
    concurrency: int,
    latency: float,
    envelope: str,
    *,
    postgres: bool,
    workers: int,
    lock_stats: str | None = None,
) -> dict[str, Any]:
    database = postgres_schema(postgres_base_url()) if postgres else nullcontext(None)
    with tempfile.TemporaryDirectory() as tmp, database as database_url:
        base = Path(tmp)
        spawn = mp.get_context("spawn")
        urls, stop = spawn.Queue(), spawn.Event()
        sim = spawn.Process(target=_simulator, args=(str(base / "pki"), latency, urls, stop))
        sim.start()
        sim_pid = sim.pid if sim.pid is not None else -1  # a started process has one
        stats_file = Path(lock_stats) if lock_stats else base / "lock-stats.txt"
        env = {**ENV, lockstats.ENV: str(stats_file)} if lock_stats is not None else ENV
        try:
            cfg = base / "gateway.toml"
            cfg.write_text(config_text(base, urls.get(timeout=60), envelope, database_url))
            os.environ["X12GW_MEMBER_HASH_KEY"] = ENV["X12GW_MEMBER_HASH_KEY"]
            ctx = open_context(load_config(cfg))
            _, key = apiauth.add_client(ctx.store, "bench", ("eligibility:write",))
            ctx.store.close()
            sock = free_socket()
            port = sock.getsockname()[1]
            sock.close()
            serve = subprocess.Popen(
                [
                    str(X12GW),
                    "serve",
                    "--config",
                    str(cfg),
                    "--listen",
                    f"127.0.0.1:{port}",
                    "--workers",
                    str(workers),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                _wait_healthy(port, serve)
                assert key is not None  # noqa: S101 - a key client always gets a key
                clients(port, key, min(32, requests), concurrency)  # warm-up: connections, caches
                offset = stats_file.stat().st_size if stats_file.exists() else 0
                cpu, sim_cpu, own_cpu = _cpu_seconds(serve.pid), _cpu_seconds(sim_pid), time.process_time()
                started = time.perf_counter()
                times, statuses = clients(port, key, requests, concurrency)
                wall = time.perf_counter() - started
                cpu = _cpu_seconds(serve.pid) - cpu
                sim_cpu, own_cpu = _cpu_seconds(sim_pid) - sim_cpu, time.process_time() - own_cpu
                locks = lock_figures(stats_file, offset, requests) if lock_stats is not None else None
            finally:
                serve.terminate()
                serve.wait(timeout=30)
        finally:
            stop.set()
            handled: list[float] = urls.get(timeout=60)
            sim.join(timeout=30)
    payer = sorted(handled[-requests:])  # the measured calls (the warm-up came first)
    ok = sum(1 for s in statuses if s == 200)
    return {
        "requests": requests,
        "clients": concurrency,
        "payer_latency_ms": latency * 1000,
        "database": "postgresql" if postgres else "sqlite",
        "serve_workers": workers,
        "answered_200": ok,
        "other_statuses": sorted({s for s in statuses if s != 200}),
        "requests_per_second": requests / wall,
        # the serve processes' CPU (user + system) per call: steadier than latency on a busy machine
        "serve_cpu_ms_per_request": cpu * 1000 / requests,
        # the rest of the machine's work per call: the payer simulator and these client threads share
        # the same cores, so together they bound how many calls per second one machine can carry
        "simulator_cpu_ms_per_request": sim_cpu * 1000 / requests,
        "clients_cpu_ms_per_request": own_cpu * 1000 / requests,
        "round_trip_ms": {k: v * 1000 for k, v in percentiles(times).items()},
        "overhead_ms": {k: (v - latency) * 1000 for k, v in percentiles(times).items()},
        "payer_measured_ms": {k: v * 1000 for k, v in percentiles(payer).items()},
        # round trips and payer times paired in sorted order (the simulator cannot tell which is which)
        "overhead_vs_measured_payer_ms": {
            k: v * 1000
            for k, v in percentiles([r - p for r, p in zip(sorted(times), payer, strict=False)]).items()
        },
        **({"write_transactions": locks} if locks is not None else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.2, help="the payer's latency (seconds)")
    parser.add_argument("--envelope", choices=("mime", "soap"), default="mime")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="store in PostgreSQL ($X12GW_TEST_POSTGRES_URL, a fresh schema)",
    )
    parser.add_argument("--workers", type=int, default=1, help="x12gw serve --workers")
    parser.add_argument(
        "--lock-stats",
        nargs="?",
        const="",
        metavar="FILE",
        help="measure serve's write transactions (writer lock held time, statements, rows) per call;"
        " FILE keeps serve's lines (with X12GW_STORE_LOCK_TRACE=1, each transaction's statements too)",
    )
    args = parser.parse_args()
    result = run(
        args.requests,
        args.clients,
        args.latency,
        args.envelope,
        postgres=args.postgres,
        workers=args.workers,
        lock_stats=args.lock_stats,
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
