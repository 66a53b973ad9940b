"""End to end: N eligibility requests (default 10,000) dropped into the inbox at once, through a real
`x12gw run` process, the clearinghouse simulator on loopback SFTP, and back to one result file per
request in the outbox. Prints the total time, requests/s, p50/p95/max latency per request (drop to
result file), the gateway process's peak RSS and the CPU time it used until the last result file (the
figure to compare on a busy machine).

    python bench/bench_e2e.py [--requests 10000] [--per-file 100] [--profile FILE]

``--profile FILE`` runs the gateway under cProfile (``X12GW_PROFILE``) and prints its top functions
(the stats stay in FILE), the share of its time spent validating, and the CPU time the simulator
(in this process) used.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.lifecycle import RequestState
from gateway.transport.keys import ensure_key, public_line
from tests.e2e_harness import config_text, start_simulator
from tests.exactly_once import csv_batch, drop

ROOT = Path(__file__).resolve().parent.parent
X12GW = Path(sys.executable).with_name("x12gw")


def peak_rss_mib(pid: int) -> float:
    """VmHWM of a running process: its peak resident set so far."""
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:  # noqa: PTH123
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a running process has used so far (``/proc/PID/stat``): a figure
    other processes on the machine do not inflate, unlike the wall time."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:  # noqa: PTH123
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def feed(inbox: Path, requests: int, per_file: int) -> None:
    for start in range(0, requests, per_file):
        rows = [(f"E2E-{n:06d}", f"ZZM8{n:08d}") for n in range(start, min(requests, start + per_file))]
        drop(inbox, f"batch-{start // per_file:05d}.csv", csv_batch(rows))


def run(requests: int, per_file: int, base: Path, profile: Path | None = None) -> None:
    logging.getLogger().setLevel(logging.WARNING)  # the simulator narrates every file at INFO
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)  # peers hanging up are not news here
    keys = base / "keys"
    ensure_key(keys / "client")
    sim = start_simulator(base / "clearinghouse", ensure_key(keys / "host"), public_line(keys / "client"))
    gw = base / "gw"
    gw.mkdir()
    config = gw / "gateway.toml"
    config.write_text(
        config_text(
            port=sim.port, host_key_line=sim.host_key_line, key_file=keys / "client", remote_root=""
        ).replace("timeout_seconds = 5", "timeout_seconds = 60")
        + "\n[outbox]\ncsv_summary = false\n[timeouts]\nresponse_overdue_minutes_270 = 600\n"
    )
    outbox = gw / "outbox"
    argv = [str(X12GW)] if X12GW.exists() else [sys.executable, "-m", "gateway.cli"]
    log = (base / "gateway.log").open("wb")
    # this checkout first on the path: the installed ``x12gw`` script would import the editable install's
    env = {**os.environ, "PYTHONPATH": str(ROOT)} | ({"X12GW_PROFILE": str(profile)} if profile else {})
    cpu0 = time.process_time()
    t0 = time.time()
    feed(gw / "inbox", requests, per_file)
    proc = subprocess.Popen(
        [*argv, "run", "--config", str(config), "--interval", "0.1", "--json-logs"],
        stdout=subprocess.DEVNULL,
        stderr=log,
        cwd=gw,
        env=env,
    )
    peak = 0.0
    done = 0
    try:
        while done < requests:
            time.sleep(0.5)
            if proc.poll() is not None:
                raise SystemExit(f"the gateway exited ({proc.returncode}); see {base / 'gateway.log'}")
            peak = max(peak, peak_rss_mib(proc.pid))
            done = sum(1 for p in outbox.iterdir() if p.suffix == ".json") if outbox.exists() else 0
        peak = max(peak, peak_rss_mib(proc.pid))
        gateway_cpu = cpu_seconds(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        sim_cpu = time.process_time() - cpu0
        sim.stop()
        log.close()
    results = [p for p in outbox.iterdir() if p.suffix == ".json"]
    latencies = sorted(p.stat().st_mtime - t0 for p in results)
    answered = sum(1 for p in results if json.loads(p.read_text())["state"] == RequestState.ANSWERED)
    total = latencies[-1]
    q = statistics.quantiles(latencies, n=100)
    print(
        f"e2e  {requests:,} eligibility requests ({per_file}/file), {answered:,} answered: "
        f"total {total:.1f} s, {requests / total:,.0f} requests/s, latency p50 {q[49]:.1f} s, "
        f"p95 {q[94]:.1f} s, max {total:.1f} s; gateway peak RSS {peak:.0f} MiB; "
        f"gateway CPU {gateway_cpu:.1f} s; simulator and bench CPU {sim_cpu:.1f} s"
    )
    if profile:
        report_profile(profile)


def report_profile(path: Path) -> None:
    """The gateway's top functions by own time and the share of its time inside validation."""
    import pstats  # noqa: PLC0415

    stats = pstats.Stats(str(path))
    total = stats.total_tt  # type: ignore[attr-defined]  # set by pstats, not in its stubs
    validating = max(
        (
            ct
            for (file, _, name), (_, _, _, ct, _) in stats.stats.items()  # type: ignore[attr-defined]
            if file.endswith("transactions/validation.py") and name == "validate_set"
        ),
        default=0.0,
    )
    print(
        f"profile  gateway wall time {total:.1f} s (idle waits included), validate_set {validating:.1f} s "
        f"({100 * validating / total:.0f}%)"
    )
    stats.sort_stats("cumulative").print_stats(40)
    stats.sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--per-file", type=int, default=100)
    parser.add_argument("--profile", type=Path, help="cProfile the gateway into this file")
    args = parser.parse_args()
    os.environ.setdefault("X12GW_MEMBER_HASH_KEY", "bench-member-hash-key-0123456789")
    with tempfile.TemporaryDirectory(prefix="x12gw-bench-e2e-") as tmp:
        run(args.requests, args.per_file, Path(tmp), args.profile and args.profile.resolve())


if __name__ == "__main__":
    main()
