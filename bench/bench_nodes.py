"""Requests per second end to end with 1, 2 and 3 gateway nodes sharing one PostgreSQL database.

Each run: a fresh schema, the clearinghouse simulator on loopback, N inbox files of eligibility
requests dropped at once, N `x12gw run` processes started together; the clock stops when every request
is answered. Prints requests/s per node count. Needs the PostgreSQL server (X12GW_TEST_POSTGRES_URL).

    python bench/bench_nodes.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.lifecycle import RequestState
from gateway.store import Store
from gateway.transport.keys import ensure_key, public_line
from tests.e2e_harness import config_text, start_simulator
from tests.exactly_once import drop, eligibility
from tests.store_fixtures import postgres_base_url, postgres_schema

X12GW = Path(sys.executable).with_name("x12gw")
logging.getLogger("paramiko.transport").setLevel(logging.CRITICAL)  # peers hanging up are not news here
ENV = {**os.environ, "X12GW_MEMBER_HASH_KEY": "bench-nodes-key-0123456789abcdef"}


def one_run(nodes: int, requests: int, per_file: int = 50) -> float:
    with tempfile.TemporaryDirectory() as tmp, postgres_schema(postgres_base_url()) as url:
        base = Path(tmp)
        ensure_key(base / "keys" / "client")
        sim = start_simulator(
            base / "ch", ensure_key(base / "keys" / "host"), public_line(base / "keys" / "client")
        )
        gw = base / "gw"
        gw.mkdir()
        cfg = gw / "gateway.toml"
        text = config_text(
            port=sim.port,
            host_key_line=sim.host_key_line,
            key_file=base / "keys" / "client",
            remote_root="",
            database_url=url,
        )
        cfg.write_text(text)
        rng = random.Random(1)
        for n in range(requests // per_file):
            docs = [eligibility(f"BN-{n:03d}-{i:03d}", f"ZZM7{n:03d}{i:05d}") for i in range(per_file)]
            drop(gw / "inbox", f"b-{n:03d}.json", json.dumps(docs).encode())
        rng.random()
        start = time.perf_counter()
        procs = [
            subprocess.Popen(
                [str(X12GW), "run", "--config", str(cfg), "--interval", "0.2"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=gw,
                env=ENV,
            )
            for _ in range(nodes)
        ]
        store = Store.open(url)
        try:
            while True:
                with store.read() as tx:
                    done = len(tx.requests.query(state=RequestState.ANSWERED, limit=10_000))
                if done >= requests:
                    break
                time.sleep(0.25)
            return time.perf_counter() - start
        finally:
            store.close()
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait(timeout=60)
            sim.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    print(f"{'nodes':>5} {'requests':>8} {'seconds':>8} {'requests/s':>10}")
    base = None
    for nodes in (1, 2, 3):
        seconds = one_run(nodes, args.requests)
        rate = args.requests / seconds
        base = base or rate
        print(f"{nodes:>5} {args.requests:>8} {seconds:>8.1f} {rate:>10.1f}   x{rate / base:.2f} vs 1 node")


if __name__ == "__main__":
    main()
