"""Run every benchmark script in this folder (``bench_*.py``), one after the other, each in its own
process, and print their figures under a header with the machine they ran on. A script that fails is
reported and the others still run; the exit code is 1 if any failed.

    python bench/run_all.py [--only NAME ...] [--quick]

``--quick`` passes small sizes (a smoke run, not figures to publish).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUICK = {
    "bench_core.py": ["--mb", "2", "--build", "500"],
    "bench_validate.py": ["--mb", "1"],
    "bench_map.py": ["--mb", "1", "--build", "500"],
    "bench_e2e.py": ["--requests", "500"],
    "bench_memory.py": ["--mb", "5"],
    "bench_nodes.py": ["--requests", "300"],
    "bench_start.py": ["--runs", "3"],
}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:  # noqa: PTH123
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*", default=None, help="script names (e.g. bench_e2e.py)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    args = parser.parse_args()
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if s.name in args.only or s.stem in args.only]
    print(f"# x12-gateway benchmarks on {machine()}", flush=True)
    failed = []
    for script in scripts:
        extra = QUICK.get(script.name, []) if args.quick else []
        print(f"\n## {script.name} {' '.join(extra)}".rstrip(), flush=True)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, str(script), *extra], check=False)
        print(f"({script.name}: {time.perf_counter() - start:.0f} s, exit {done.returncode})", flush=True)
        if done.returncode != 0:
            failed.append(script.name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
