"""Inbound throughput: validate + map 20 MB batches of 271 and 278 responses (what the gateway does with
every downloaded file) beside pyx12's own x12n_document (what x12valid runs) on the same file in the same
run, each in a fresh process so peak RSS is its own; and request building: 270s and 278s per second.

    python bench/bench_map.py [--mb 20] [--build 5000] [--memos both|on|off] [--gc both|policy|default]

``--memos`` (default both): the compiled engine remembers the checks of repeated values and segments,
and the loop walks of sets of a shape already walked (``transactions.engine.walk``); with the memos off
every value is checked and every set walked afresh, the figure for real files, which repeat less than
these generated batches (one set repeated).

``--gc`` (default both): every run with the gateway's collector policy (``gateway.runtime.gcpolicy``, as
``x12gw map`` and ``validate`` apply it, without loading maps ahead; the rows say "gc policy") and with
CPython's defaults (rows without it), each in its own process.

``--warm``: each measured process first does, untimed, what ``x12gw run`` and ``serve`` do at start
(imports, the project's maps and mapping rules compiled, with the policy: ``gcpolicy.apply()``, which
loads them before freezing), so the figure is the inbound stage's steady rate in a long-running
gateway rather than a one-off command's; the rows say "warm". Without it, imports and map compiling
(about 0.2-0.3 s per process) count in the timed part, as for ``x12gw map``.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import ROOT, SCRATCH, WHEN, batch_271, inquiry, scratch_file
from bench.measure import measure
from transactions.envelope_reader import read_interchanges
from transactions.envelope_writer import GroupHeader, InterchangeHeader, TransactionBody, build_interchange
from transactions.writer import serialize

SAMPLE_278RESP = ROOT / "sample_edi" / "responses" / "278resp-A1-certified.x12"
SAMPLE_278REQ = ROOT / "sample_edi" / "requests" / "278-outpatient-mri.json"


def batch_278resp(target_bytes: int) -> bytes:
    """One interchange repeating a certified 278 response set (the sample) with fresh ST numbers."""
    ic = read_interchanges(SAMPLE_278RESP.read_bytes())[0]
    tset = next(ic.transaction_sets())
    size = len(serialize(tset.body, ic.delimiters, newline="\n")) + 60
    count = max(1, target_bytes // size)
    sets = [TransactionBody("278", i + 1, tset.version, tset.body) for i in range(count)]
    header = InterchangeHeader("ZZ", "BENCHSENDER", "ZZ", "BENCHRECEIVER", 1, WHEN)
    group = GroupHeader("HI", "BENCHSENDER", "BENCHRECEIVER", 1, tset.version, WHEN)
    return build_interchange(header, [(group, sets)], ic.delimiters, newline="\n")


def memos_off() -> None:
    """Every segment and element checked afresh in this (measured) process."""
    import transactions.engine.elements as compiled_elements  # noqa: PLC0415

    compiled_elements.MEMO_LIMIT = 0


def gc_policy(on: bool) -> None:
    """The gateway's collector policy in this (measured) process when ``on``, else CPython's defaults."""
    if on:
        from gateway.runtime import gcpolicy  # noqa: PLC0415

        gcpolicy.apply(warm=False)  # as ``x12gw map`` does: the file's maps compile in the timed run


def warm_process(policy: bool) -> None:
    """What a long-running gateway process has done before a file arrives (``--warm``): the modules
    imported, the project's maps and rules compiled, and with ``policy`` the collector policy applied
    after them (``gcpolicy.apply()``: loaded first, then frozen), as ``x12gw run``/``serve`` do."""
    import mappings.mapper  # noqa: F401, PLC0415 - imported before the timed part
    import transactions.validation  # noqa: F401, PLC0415
    from gateway.runtime import gcpolicy  # noqa: PLC0415

    if policy:
        gcpolicy.apply()
    else:
        gcpolicy.warm_tables()


def validate_and_map(path: str, memo: bool = True, policy: bool = False) -> tuple[int, int, int]:
    """(transaction sets, segments, records) as the gateway's inbound stage gets them."""
    from mappings.mapper import default_rules, map_set  # noqa: PLC0415 - imported in the measured process
    from transactions.validation import Options, validate_detailed  # noqa: PLC0415

    gc_policy(policy)
    if not memo:
        memos_off()

    rules = default_rules()
    with open(path, "rb") as fh:  # noqa: PTH123 - a benchmark reads its scratch file directly
        validation = validate_detailed(iter(lambda: fh.read(1 << 20), b""), Options(keep_placed=True))
    by_offset = {s.report.offset: s for s in validation.sets}
    sets = segments = records = 0
    for ic in validation.report.interchanges:
        for g in ic.groups:
            for s in g.sets:
                sets += 1
                segments += s.segment_count
                if s.accepted:
                    records += len(map_set(by_offset[s.offset], ic.control_number, g.control_number, rules))
    return sets, segments, records


def validate_and_map_streamed(path: str, policy: bool = False) -> tuple[int, int, int]:
    """The same, set by set (``ValidationStream``, as ``x12gw map --jsonl``): one set held at a time."""
    from mappings.mapper import default_rules, map_set  # noqa: PLC0415 - imported in the measured process
    from transactions.validation import Options, ValidationStream  # noqa: PLC0415

    gc_policy(policy)

    rules = default_rules()
    sets = segments = records = 0
    with open(path, "rb") as fh:  # noqa: PTH123 - a benchmark reads its scratch file directly
        for item in ValidationStream(iter(lambda: fh.read(1 << 20), b""), Options(keep_placed=True)):
            report = item.validated.report
            sets += 1
            segments += report.segment_count
            if report.accepted:
                records += len(map_set(item.validated, item.interchange, item.group, rules))
    return sets, segments, records


def validate_only(path: str, memo: bool = True, policy: bool = False) -> tuple[int, int, int]:
    from transactions.validation import validate  # noqa: PLC0415

    gc_policy(policy)
    if not memo:
        memos_off()

    with open(path, "rb") as fh:  # noqa: PTH123
        report = validate(iter(lambda: fh.read(1 << 20), b""))
    sets = [s for i in report.interchanges for g in i.groups for s in g.sets]
    return len(sets), sum(s.segment_count for s in sets), 0


def pyx12_x12valid(path: str, map_dir: str) -> tuple[int, int, int]:
    import pyx12.params  # noqa: PLC0415
    import pyx12.x12n_document  # noqa: PLC0415

    logging.getLogger("pyx12").setLevel(logging.CRITICAL)
    ok = pyx12.x12n_document.x12n_document(
        pyx12.params.params(), path, io.StringIO(), None, None, None, map_path=map_dir
    )
    return int(ok), 0, 0


def build_rates(count: int) -> tuple[float, float]:
    """270s and 278s built (into one interchange each) per second."""
    from transactions.build270 import VERSION_270, build_270_body  # noqa: PLC0415
    from transactions.build278 import build_278_body  # noqa: PLC0415
    from transactions.models import ServiceReviewRequest  # noqa: PLC0415
    from transactions.requests_json import request_from_obj  # noqa: PLC0415
    from transactions.segment import Delimiters  # noqa: PLC0415

    header = InterchangeHeader("ZZ", "S", "ZZ", "R", 1, WHEN)
    start = time.perf_counter()
    sets = [
        TransactionBody("270", i + 1, VERSION_270, build_270_body(inquiry(i), WHEN)) for i in range(count)
    ]
    build_interchange(header, [(GroupHeader("HS", "S", "R", 1, VERSION_270, WHEN), sets)], Delimiters())
    rate_270 = count / (time.perf_counter() - start)
    base = request_from_obj(json.loads(SAMPLE_278REQ.read_text()))
    if not isinstance(base, ServiceReviewRequest):
        raise TypeError(f"{SAMPLE_278REQ.name} is not a 278 request")
    requests = [replace(base, trace_number=f"BENCH-{i:08d}") for i in range(count)]
    start = time.perf_counter()
    version = "005010X217"
    sets = [TransactionBody("278", i + 1, version, build_278_body(r, WHEN)) for i, r in enumerate(requests)]
    build_interchange(header, [(GroupHeader("HI", "S", "R", 1, version, WHEN), sets)], Delimiters())
    rate_278 = count / (time.perf_counter() - start)
    return rate_270, rate_278


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=20.0)
    parser.add_argument("--build", type=int, default=5000)
    parser.add_argument("--memos", choices=("both", "on", "off"), default="both")
    parser.add_argument("--gc", choices=("both", "policy", "default"), default="both")
    parser.add_argument("--warm", action="store_true", help="maps and rules loaded before the timed part")
    args = parser.parse_args()
    memo_runs = {"both": (True, False), "on": (True,), "off": (False,)}[args.memos]
    policies = {"both": (False, True), "policy": (True,), "default": (False,)}[args.gc]
    SCRATCH.mkdir(exist_ok=True)
    from gateway.runtime.mapdir import assemble_map_dir  # noqa: PLC0415

    map_dir = str(assemble_map_dir(SCRATCH / "mapdir"))
    files = {
        "271": scratch_file("map-271", batch_271, args.mb),
        "278resp": scratch_file("map-278resp", batch_278resp, args.mb),
    }
    head = f"{'file':8} {'what':37} {'MB':>6} {'seconds':>8} {'MB/s':>6} {'sets/s':>8} {'peak RSS':>9}"
    print(head)
    for kind, path in files.items():
        size = path.stat().st_size / 1e6
        t_pyx, rss_pyx, _ = measure(pyx12_x12valid, str(path), map_dir)
        rows = [("pyx12 x12valid", t_pyx, rss_pyx)]
        for memo, policy in ((m, p) for m in memo_runs for p in policies):
            label = (
                ("" if memo else ", memos off")
                + (", gc policy" if policy else "")
                + (", warm" if args.warm else "")
            )
            # warm: the policy is applied by the setup, after loading (not again in the timed part)
            setup, timed_policy = (partial(warm_process, policy), False) if args.warm else (None, policy)
            t_map, rss_map, (sets, segs, records) = measure(
                validate_and_map, str(path), memo, timed_policy, setup=setup
            )
            rows.insert(-1, (f"validate+map{label}", t_map, rss_map))
            if memo:
                t_stream, rss_stream, counts = measure(
                    validate_and_map_streamed, str(path), timed_policy, setup=setup
                )
                assert counts == (sets, segs, records), "streamed mapping must give the same counts"  # noqa: S101
                rows.insert(-1, (f"validate+map set by set{label}", t_stream, rss_stream))
            t_val, rss_val, _ = measure(validate_only, str(path), memo, timed_policy, setup=setup)
            rows.insert(-1, (f"validate{label}", t_val, rss_val))
            print(
                f"{kind:8} ratio{label} validate+map / pyx12 time {t_map / t_pyx:.2f}x, validate / pyx12 "
                f"{t_val / t_pyx:.2f}x, pyx12 / validate {t_pyx / t_val:.1f}x "
                f"({sets:,} sets, {segs:,} segments, {records:,} records)"
            )
        for name, seconds, rss in rows:
            print(
                f"{kind:8} {name:37} {size:6.1f} {seconds:8.2f} {size / seconds:6.2f} "
                f"{sets / seconds:8,.0f} {rss:6.0f} MiB"
            )
    t = measure(build_rates, args.build)
    rate_270, rate_278 = t[2]
    print(f"build    {args.build:,} each: {rate_270:,.0f} 270s/s, {rate_278:,.0f} 278s/s")


if __name__ == "__main__":
    main()
