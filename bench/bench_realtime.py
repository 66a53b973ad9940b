"""Real time through CAQH CORE: N eligibility requests (default 300) sent with ``send_realtime`` by C
concurrent callers (default 16) to the simulator's CORE server (HTTPS, mutual TLS, MIME) answering
after a fixed latency (default 200 ms). Prints p50/p95/p99 of the round trip (call to stored answer
and result file), of the payer's own time, and of the gateway's overhead (round trip minus the payer's
time: building, TLS, HTTP, validating, mapping, storing, writing the result).

    python bench/bench_realtime.py [--requests 300] [--clients 16] [--latency 0.2] [--envelope mime]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.realtime.dispatch import send_realtime
from gateway.runtime.config import load_config
from gateway.runtime.runner import open_context
from gateway.stages import intake
from payersim.certs import make_pki
from payersim.core_server import CoreFaults, CoreServer
from payersim.scenario import Scenario
from tests.core_support import core_config_lines, mtls_core
from tests.exactly_once import drop, eligibility


def _config(base: Path, server: CoreServer, envelope: str) -> Path:
    pki = make_pki(base / "pki")
    lines = core_config_lines(mtls_core(server.url, pki, envelope=envelope, timeout_seconds=20))
    path = base / "gateway.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) > 1 else values[0] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--envelope", choices=("mime", "soap"), default="mime")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    os.environ.setdefault("X12GW_MEMBER_HASH_KEY", "bench-realtime-member-hash-key")
    with tempfile.TemporaryDirectory(prefix="x12gw-bench-rt-") as tmp:
        base = Path(tmp)
        pki = make_pki(base / "pki")
        server = CoreServer(Scenario(), pki=pki, auth="mtls", faults=CoreFaults(latency_seconds=args.latency))
        with server:
            ctx = open_context(load_config(_config(base, server, args.envelope)))
            docs = [eligibility(f"BENCH-{n:06d}", f"ZZM5{n:08d}") for n in range(args.requests)]
            drop(ctx.config.folders.inbox, "bench.json", json.dumps(docs).encode())
            intake.intake(ctx)
            with ctx.store.read() as tx:
                ids = [r.id for r in tx.requests.query(limit=args.requests)]
            round_trips: list[float] = []
            misses = 0
            lock = threading.Lock()

            def caller() -> None:
                nonlocal misses
                while True:
                    with lock:
                        if not ids:
                            return
                        rid = ids.pop()
                    started = time.perf_counter()
                    ok = send_realtime(ctx, rid, budget_seconds=20.0)
                    elapsed = time.perf_counter() - started
                    with lock:
                        round_trips.append(elapsed)
                        misses += not ok

            began = time.perf_counter()
            threads = [threading.Thread(target=caller) for _ in range(args.clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            total = time.perf_counter() - began
            payer = server.handled_seconds
            overhead = sorted(r - p for r, p in zip(sorted(round_trips), sorted(payer), strict=False))
            ctx.store.close()
    print(
        f"real time ({args.envelope}, mTLS): {args.requests} requests, {args.clients} clients, payer latency "
        f"{args.latency * 1000:.0f} ms: {total:.1f} s, {args.requests / total:.1f} requests/s, "
        f"{misses} past the 20 s budget"
    )
    for name, values in (("round trip", round_trips), ("payer", payer), ("gateway overhead", overhead)):
        p50, p95, p99 = (_pct(values, q) for q in (50, 95, 99))
        print(f"  {name:17s} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  p99 {p99:7.1f} ms")


if __name__ == "__main__":
    main()
