"""Validation (keep_placed) and mapping timed apart, in process, best of N CPU-time runs: on a shared
machine the minimum is steadier than one run, and the two phases can be compared across branches.

    python bench/map_phases.py [--mb 1.5] [--runs 5] [--no-gc]

``--no-gc`` disables the cyclic collector, to see what its passes over the held sets cost.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_map import batch_278resp
from bench.corpus import batch_271, scratch_file
from mappings.mapper import default_rules, map_set
from transactions.validation import Options, validate_detailed


def best_of(data: bytes, runs: int) -> tuple[float, float, int]:
    """(validate seconds, map seconds, records): the least CPU time of each phase over ``runs``."""
    rules = default_rules()
    validate_times, map_times, records = [], [], 0
    for _ in range(runs):
        start = time.process_time()
        validation = validate_detailed([data], Options(keep_placed=True))
        validate_times.append(time.process_time() - start)
        start = time.process_time()
        records = sum(len(map_set(s, "1", "1", rules)) for s in validation.sets)
        map_times.append(time.process_time() - start)
    return min(validate_times), min(map_times), records


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=1.5)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-gc", action="store_true")
    args = parser.parse_args()
    if args.no_gc:
        gc.disable()
    for kind, make in (("271", batch_271), ("278resp", batch_278resp)):
        data = scratch_file(f"map-{kind}", make, args.mb).read_bytes()
        size = len(data) / 1e6
        t_val, t_map, records = best_of(data, args.runs)
        print(
            f"{kind:8} {size:5.2f} MB  validate {t_val:6.3f} s  map {t_map:6.3f} s  "
            f"validate+map {size / (t_val + t_map):5.2f} MB/s  ({records:,} records)"
        )


if __name__ == "__main__":
    main()
