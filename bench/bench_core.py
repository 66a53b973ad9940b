"""Reading and building: segments/s and MB/s for the streaming reader, 270s built per second.

python bench/bench_core.py [--mb 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import WHEN, batch_270, inquiry
from bench.measure import measure
from transactions.build270 import VERSION_270, build_270_body
from transactions.envelope_writer import GroupHeader, InterchangeHeader, TransactionBody, build_interchange
from transactions.reader import SegmentReader
from transactions.segment import Delimiters


def read_file(path: str) -> int:
    with open(path, "rb") as fh:  # noqa: PTH123 - a benchmark reads its scratch file directly
        return sum(1 for _ in SegmentReader(iter(lambda: fh.read(1 << 20), b"")))


def build_many(count: int) -> int:
    sets = [
        TransactionBody("270", i + 1, VERSION_270, build_270_body(inquiry(i), WHEN)) for i in range(count)
    ]
    header = InterchangeHeader("ZZ", "S", "ZZ", "R", 1, WHEN)
    group = GroupHeader("HS", "S", "R", 1, VERSION_270, WHEN)
    return len(build_interchange(header, [(group, sets)], Delimiters()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=20.0)
    parser.add_argument("--build", type=int, default=10_000)
    args = parser.parse_args()
    scratch = Path(tempfile.gettempdir()) / "x12gw-bench"
    scratch.mkdir(exist_ok=True)
    path = scratch / f"read-270-{args.mb:g}mb.x12"
    if not path.exists():
        path.write_bytes(batch_270(int(args.mb * 1e6)))
    size_mb = path.stat().st_size / 1e6
    seconds, peak, segments = measure(read_file, str(path))
    print(
        f"read    {size_mb:7.1f} MB  {segments:>9,} segments  {seconds:6.2f} s  "
        f"{segments / seconds:>10,.0f} segments/s  {size_mb / seconds:6.1f} MB/s  peak RSS {peak:6.1f} MiB"
    )
    start = time.perf_counter()
    size = build_many(args.build)
    seconds = time.perf_counter() - start
    rate = args.build / seconds
    print(f"build   {args.build:,} 270s ({size / 1e6:.1f} MB)  {seconds:6.2f} s  {rate:>8,.0f} 270s/s")


if __name__ == "__main__":
    main()
