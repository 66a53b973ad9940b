"""Validation throughput: our validator (the compiled engine, and optionally our driver over pyx12's
walker) vs pyx12's own x12n_document (what x12valid runs), same files, same run. Each measurement runs
in its own fresh process so peak RSS is its own; times include loading (and compiling) the maps.

    python bench/bench_validate.py [--mb 20] [--kinds 270,271,278,837P] [--pyx12-walker]
"""

from __future__ import annotations

import argparse
import io
import logging
import sys
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import ROOT, SCRATCH, batch_270, batch_271, scratch_file
from bench.measure import measure
from transactions.envelope_reader import read_interchanges
from transactions.envelope_writer import GroupHeader, InterchangeHeader, TransactionBody, build_interchange

PUBLIC_837 = ROOT / "tests" / "public_x12" / "837p" / "kputnam-stupidedi__commercial-health-insurance.edi"


def ours(path: str, engine: str = "compiled", memo: bool = True) -> tuple[int, int]:
    import transactions.engine.elements as compiled_elements  # noqa: PLC0415 - in the measured process
    from transactions.validation import Options, validate  # noqa: PLC0415

    if not memo:  # every segment and element checked afresh: the figure for data that never repeats
        compiled_elements.MEMO_LIMIT = 0

    with open(path, "rb") as fh:  # noqa: PTH123
        report = validate(iter(lambda: fh.read(1 << 20), b""), Options(engine=engine))
    sets = [s for i in report.interchanges for g in i.groups for s in g.sets]
    return len(sets), sum(s.segment_count for s in sets)


def pyx12_own(path: str, map_dir: str) -> tuple[int, int]:
    import pyx12.params  # noqa: PLC0415
    import pyx12.x12n_document  # noqa: PLC0415

    logging.getLogger("pyx12").setLevel(logging.CRITICAL)
    param = pyx12.params.params()
    ok = pyx12.x12n_document.x12n_document(param, path, io.StringIO(), None, None, None, map_path=map_dir)
    return int(ok), 0


def batch_837(target_bytes: int) -> bytes:
    ic = read_interchanges(PUBLIC_837.read_bytes())[0]
    tset = next(ic.transaction_sets())
    gs = ic.groups[0].gs
    count = max(1, target_bytes // (sum(len(repr(s)) for s in tset.body) // 2))
    sets = [TransactionBody("837", i + 1, tset.version, tset.body) for i in range(count)]
    header = InterchangeHeader("ZZ", "BENCHSENDER", "ZZ", "BENCHRECEIVER", 1, datetime_of(ic))
    group = GroupHeader("HC", gs.get(2), gs.get(3), 1, gs.get(8), datetime_of(ic))
    return build_interchange(header, [(group, sets)], ic.delimiters, newline="\n")


def datetime_of(_: object) -> datetime:
    from bench.corpus import WHEN  # noqa: PLC0415

    return WHEN


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=20.0)
    parser.add_argument("--kinds", default="270,271,278,837P", help="comma-separated batches to run")
    parser.add_argument("--pyx12-walker", action="store_true", help="also time --engine pyx12 (slow)")
    args = parser.parse_args()
    SCRATCH.mkdir(exist_ok=True)
    from bench.bench_map import batch_278resp  # noqa: PLC0415
    from gateway.runtime.mapdir import assemble_map_dir  # noqa: PLC0415

    map_dir = str(assemble_map_dir(SCRATCH / "mapdir"))
    makers = {"270": batch_270, "271": batch_271, "278": batch_278resp, "837P": batch_837}
    names = {"270": "validate-270", "271": "validate-271", "278": "validate-278resp", "837P": "validate-837p"}
    kinds = [k for k in args.kinds.split(",") if k in makers]
    files = {k: scratch_file(names[k], makers[k], args.mb) for k in kinds}
    print(
        f"{'file':6} {'validator':24} {'MB':>6} {'seconds':>8} {'MB/s':>6} {'segments/s':>11} {'peak RSS':>9}"
    )
    for kind, path in files.items():
        size = path.stat().st_size / 1e6
        rows = []
        t_ours, rss_ours, (sets, segs) = measure(ours, str(path), "compiled")
        rows.append(("x12-gateway (compiled)", t_ours, rss_ours))
        t_nomemo, rss_nomemo, _ = measure(ours, str(path), "compiled", False)
        rows.append(("  same, memos off", t_nomemo, rss_nomemo))
        if args.pyx12_walker:
            t_walk, rss_walk, _ = measure(ours, str(path), "pyx12")
            rows.append(("x12-gateway --engine pyx12", t_walk, rss_walk))
        t_pyx, rss_pyx, _ = measure(pyx12_own, str(path), map_dir)
        rows.append(("pyx12 x12n_document", t_pyx, rss_pyx))
        for name, seconds, rss in rows:
            rates = f"{size / seconds:6.2f} {segs / seconds:11,.0f}"
            print(f"{kind:6} {name:24} {size:6.1f} {seconds:8.2f} {rates} {rss:7.0f} MiB")
        counts = f"({sets:,} transaction sets, {segs:,} segments)"
        ratios = f"{t_pyx / t_ours:.1f}x (memos off {t_pyx / t_nomemo:.1f}x)"
        print(f"{kind:6} pyx12 time / compiled time: {ratios}  {counts}")


if __name__ == "__main__":
    main()
