"""Memory: validating a 100 MB interchange (271 batch) stays under 200 MB peak RSS. Measured twice, each in
a fresh process: the validator fed in 1 MB chunks (how the library streams a file), and the
``x12gw validate FILE --json`` and ``--jsonl`` commands (run as the console script does, with this
checkout first on ``PYTHONPATH``). Prints the figures and whether each is under the limit.

    python bench/bench_memory.py [--mb 100] [--limit-mib 200] [--skip-cli]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import batch_271
from bench.measure import measure

SCRATCH = Path(tempfile.gettempdir()) / "x12gw-bench"
ROOT = Path(__file__).resolve().parent.parent
X12GW = [sys.executable, "-c", "import sys; from gateway.cli import main; sys.exit(main())"]


def validate_streaming(path: str) -> tuple[int, bool]:
    from transactions.validation import validate  # noqa: PLC0415 - imported in the measured process

    with open(path, "rb") as fh:  # noqa: PTH123 - a benchmark reads its scratch file directly
        report = validate(iter(lambda: fh.read(1 << 20), b""))
    return sum(len(g.sets) for i in report.interchanges for g in i.groups), report.all_accepted


def cli_peak(path: Path, output: str) -> tuple[float, float, int]:
    """(seconds, peak RSS MiB, exit code) of ``x12gw validate PATH --json`` (rusage of that child)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    proc = subprocess.Popen([*X12GW, "validate", str(path), output], stdout=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, usage.ru_maxrss / 1024, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=100.0)
    parser.add_argument("--limit-mib", type=float, default=200.0)
    parser.add_argument("--skip-cli", action="store_true")
    args = parser.parse_args()
    SCRATCH.mkdir(exist_ok=True)
    path = SCRATCH / f"memory-271-{args.mb:g}mb.x12"
    if not path.exists():
        path.write_bytes(batch_271(int(args.mb * 1e6)))
    size = path.stat().st_size / 1e6
    seconds, peak, (sets, accepted) = measure(validate_streaming, str(path))
    verdict = "under" if peak < args.limit_mib else "OVER"
    print(
        f"memory  validate (1 MB chunks)  {size:6.1f} MB  {sets:,} sets  {seconds:6.1f} s  "
        f"peak RSS {peak:5.0f} MiB  ({verdict} {args.limit_mib:g} MiB; all accepted: {accepted})"
    )
    for output in () if args.skip_cli else ("--json", "--jsonl"):
        seconds, peak, code = cli_peak(path, output)
        verdict = "under" if peak < args.limit_mib else "OVER"
        print(
            f"memory  x12gw validate {output:8} {size:6.1f} MB  exit {code}  {seconds:6.1f} s  "
            f"peak RSS {peak:5.0f} MiB  ({verdict} {args.limit_mib:g} MiB)"
        )


if __name__ == "__main__":
    main()
