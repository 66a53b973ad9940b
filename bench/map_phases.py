"""Validation (keep_placed) and mapping timed apart, in process, best of N CPU-time runs: on a shared
machine the minimum is steadier than one run, and the two phases can be compared across branches.

    python bench/map_phases.py [--mb 1.5] [--runs 5] [--gc both|policy|default|off] [--no-gc]
                               [--direct on|both] [--memos on|off]

``--gc`` (default both): ``policy`` applies the gateway's collector policy (``gateway.runtime.gcpolicy``:
tables frozen, a larger young threshold), as ``x12gw run``/``map``/``validate`` do; ``default`` keeps
CPython's thresholds; ``both`` prints the two side by side, each measured in a fresh process; ``off``
(or ``--no-gc``) disables the cyclic collector, to see what its passes over the held sets cost.

``--memos off`` turns the compiled engine's memos off (checks of repeated values and segments, walks of
sets of a shape already walked), as ``bench_map --memos off`` does: the batch repeats one set, which
real files do less.

``--direct both`` also times mapping without the direct readers (``map_set(direct=False)``: the shipped
eligibility and authorization rules through their generated code over the node tree, instead of
``mappings.direct271``/``mappings.direct278``), the two alternated run by run in the same process over
the same validated sets, so a drifting machine weighs on both alike.
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_map import batch_278resp, memos_off
from bench.corpus import batch_271, scratch_file
from mappings.mapper import default_rules, map_set
from transactions.validation import Options, validate_detailed


def best_of(data: bytes, runs: int, direct: tuple[bool, ...] = (True,)) -> tuple[float, list[float], int]:
    """(validate seconds, map seconds per ``direct`` setting, records): the least CPU time of each
    phase over ``runs``, the mapping settings alternated within each run."""
    rules = default_rules()
    validate_times: list[float] = []
    map_times: list[list[float]] = [[] for _ in direct]
    records = 0
    for _ in range(runs):
        start = time.process_time()
        validation = validate_detailed([data], Options(keep_placed=True))
        validate_times.append(time.process_time() - start)
        for k, each in enumerate(direct):
            start = time.process_time()
            records = sum(len(map_set(s, "1", "1", rules, direct=each)) for s in validation.sets)
            map_times[k].append(time.process_time() - start)
    return min(validate_times), [min(t) for t in map_times], records


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=1.5)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--gc", choices=("both", "policy", "default", "off"), default="both")
    parser.add_argument("--no-gc", action="store_true", help="the same as --gc off")
    parser.add_argument("--direct", choices=("on", "both"), default="on")
    parser.add_argument("--memos", choices=("on", "off"), default="on")
    args = parser.parse_args()
    if args.memos == "off":
        memos_off()
    mode = "off" if args.no_gc else args.gc
    if mode == "both":  # each policy in its own interpreter: one's frozen objects do not bias the other
        for each in ("default", "policy"):
            argv = [sys.executable, __file__, "--mb", str(args.mb), "--runs", str(args.runs), "--gc", each]
            argv += ["--direct", args.direct, "--memos", args.memos]
            subprocess.run(argv, check=True)
        return
    if mode == "off":
        gc.disable()
    elif mode == "policy":
        from gateway.runtime import gcpolicy  # noqa: PLC0415 - the shell's policy, only when asked for

        if not gcpolicy.apply():
            print("(X12GW_GC turns the policy off: CPython's defaults)")
    memo_note = "memos off " if args.memos == "off" else ""
    for kind, make in (("271", batch_271), ("278resp", batch_278resp)):
        data = scratch_file(f"map-{kind}", make, args.mb).read_bytes()
        size = len(data) / 1e6
        settings = (True, False) if args.direct == "both" else (True,)
        t_val, t_maps, records = best_of(data, args.runs, settings)
        t_map = t_maps[0]
        print(
            f"{kind:8} gc {mode:7} {memo_note}{size:5.2f} MB  validate {t_val:6.3f} s  map {t_map:6.3f} s  "
            f"validate+map {size / (t_val + t_map):5.2f} MB/s  ({records:,} records)"
        )
        if len(t_maps) > 1:
            t_ref = t_maps[1]
            print(
                f"{kind:8} gc {mode:7} {size:5.2f} MB  without direct readers: map {t_ref:6.3f} s  "
                f"validate+map {size / (t_val + t_ref):5.2f} MB/s  ({t_ref / t_map:4.2f}x the direct time)"
            )


if __name__ == "__main__":
    main()
