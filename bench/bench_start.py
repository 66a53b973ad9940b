"""CLI start-up, hyperfine-style: wall time of ``x12gw --version``, ``x12gw --help`` and ``x12gw parse``
beside a bare ``python -c pass`` and pyx12's own ``x12valid --help`` (the reference start-up), in one run;
each command is run ``--runs`` times after one warm-up and the mean, min and ratio to bare Python shown.
``x12gw`` is run as its console script does (``from gateway.cli import main``) with this checkout first
on ``PYTHONPATH``, so a copy of ``bench/`` in an older checkout measures that checkout.

    python bench/bench_start.py [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_edi" / "responses" / "278resp-A1-certified.x12"


ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def timings(cmd: list[str], runs: int) -> list[float]:
    """Wall seconds of ``runs`` runs of ``cmd`` (after one unmeasured warm-up), output discarded."""
    out = []
    for _ in range(runs + 1):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, check=False)
        out.append(time.perf_counter() - start)
    return out[1:]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    x12valid = shutil.which("x12valid", path=str(Path(sys.executable).parent))
    x12gw = [sys.executable, "-c", "import sys; from gateway.cli import main; sys.exit(main())"]
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "x12gw --version": [*x12gw, "--version"],
        "x12gw --help": [*x12gw, "--help"],
        "x12gw parse (1 set)": [*x12gw, "parse", str(SAMPLE)],
        "x12gw validate (1 set)": [*x12gw, "validate", str(SAMPLE)],
    }
    if x12valid:
        commands["pyx12 x12valid --help"] = [x12valid, "--help"]
    base = None
    print(f"{'command':26} {'mean ms':>8} {'min ms':>8} {'x bare python':>14}   ({args.runs} runs each)")
    for name, cmd in commands.items():
        t = timings(cmd, args.runs)
        mean = statistics.mean(t)
        base = base or mean
        print(f"{name:26} {mean * 1e3:8.1f} {min(t) * 1e3:8.1f} {mean / base:13.1f}x")


if __name__ == "__main__":
    main()
