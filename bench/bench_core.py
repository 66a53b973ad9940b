"""Reading and building, side by side in one run:

- the streaming reader (segments/s, MB/s) beside plain ``str.split`` on the same bytes (the pure-Python
  limit: decode, split segments, split elements) and pyx12's own ``X12Reader`` (what x12valid reads
  with), each in a fresh process so peak RSS is its own;
- 270s built per second by the builders alone and through the JSON path (JSON text -> request models
  -> built 270), and the ratio of the two (best of three, in one process); the same for 278s (the
  sample outpatient request with a trace number per request, its nested models shared by every
  request), and 278s from models made per request (what the 270 figure's ``inquiry`` does).

``BENCH_CLOCK=cpu`` times the build figures with the process's CPU time (as :mod:`bench.measure`
does). The build figures run under the gateway's collector policy (``--gc policy``, the default:
``gateway.runtime.gcpolicy``, what ``x12gw run`` applies before its intake stage turns inbox JSON into
X12: maps and rules loaded, then ``gc.freeze()`` and a young threshold of 10,000); ``--gc default``
keeps CPython's. Every build path writes the same bytes from the same requests (checked before
timing); the JSON path starts from the file's bytes, as the intake stage reads them.

python bench/bench_core.py [--mb 20] [--build 10000] [--no-read] [--gc policy|default]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import WHEN, batch_270, inquiry, scratch_file
from bench.measure import measure
from transactions.build270 import VERSION_270, build_270_body
from transactions.build278 import build_278_body
from transactions.envelope_writer import GroupHeader, InterchangeHeader, TransactionBody, build_interchange
from transactions.models import (
    Attachment,
    DateRange,
    Diagnosis,
    Payer,
    Person,
    Procedure,
    Provider,
    ServiceLine,
    ServiceReviewRequest,
)
from transactions.reader import SegmentReader
from transactions.segment import Delimiters


def read_file(path: str) -> int:
    with open(path, "rb") as fh:  # noqa: PTH123 - a benchmark reads its scratch file directly
        return sum(1 for _ in SegmentReader(iter(lambda: fh.read(1 << 20), b"")))


def split_file(path: str) -> int:
    """The floor: the same bytes decoded once and split on the known delimiters, no objects built."""
    with open(path, "rb") as fh:  # noqa: PTH123
        text = fh.read().decode("utf-8", "surrogateescape")
    return sum(1 for s in text.split("~") if s.strip() for _ in (s.split("*"),))


def pyx12_read_file(path: str) -> int:
    import pyx12.x12file  # noqa: PLC0415 - imported in the measured process

    logging.getLogger("pyx12").setLevel(logging.CRITICAL)
    with open(path, encoding="utf-8") as fh:  # noqa: PTH123
        return sum(1 for _ in pyx12.x12file.X12Reader(fh))


def build_many(count: int) -> bytes:
    sets = [
        TransactionBody("270", i + 1, VERSION_270, build_270_body(inquiry(i), WHEN)) for i in range(count)
    ]
    return _envelope(sets)


def build_from_json(text: bytes) -> bytes:
    from transactions.requests_json import parse_request_document  # noqa: PLC0415

    requests = parse_request_document(text)
    sets = [
        TransactionBody("270", i + 1, VERSION_270, build_270_body(r, WHEN))  # type: ignore[arg-type]
        for i, r in enumerate(requests)
    ]
    return _envelope(sets)


VERSION_278 = "005010X217"
SAMPLE_278 = Path(__file__).resolve().parent.parent / "sample_edi" / "requests" / "278-outpatient-mri.json"


@functools.cache
def _sample_278() -> ServiceReviewRequest:
    from transactions.requests_json import request_from_obj  # noqa: PLC0415

    base = request_from_obj(json.loads(SAMPLE_278.read_text()))
    if not isinstance(base, ServiceReviewRequest):
        raise TypeError(f"{SAMPLE_278.name} is not a 278 request")
    return base


def review(n: int) -> ServiceReviewRequest:
    """The sample 278 request with its own trace number."""
    return dataclasses.replace(_sample_278(), trace_number=f"BENCH-{n:08d}")


def build_many_278(count: int) -> bytes:
    sets = [TransactionBody("278", i + 1, VERSION_278, build_278_body(review(i), WHEN)) for i in range(count)]
    return _envelope(sets, "HI", VERSION_278)


def review_made(n: int) -> ServiceReviewRequest:
    """The sample 278 request (``sample_edi/requests/278-outpatient-mri.json``) made by its constructors,
    every nested model a new instance, as :func:`bench.corpus.inquiry` makes each 270's."""
    office = "RIVERSIDE IMAGING CENTER"
    day = DateRange(date(2026, 12, 5))
    return ServiceReviewRequest(
        trace_number=f"BENCH-{n:08d}",
        payer=Payer("ACME HEALTH PLAN", "ACME01"),
        requester=Provider(office, "1234567893", contact_name="UM DESK", contact_phone="5555550100"),
        subscriber=Person("CANARYTEST", "ALPHA", "ZZM100000001", birth_date=date(1970, 1, 1), gender="F"),
        request_category="HS",
        certification_type="I",
        service_type="73",
        facility_code="22",
        level_of_service="E",
        diagnoses=(Diagnosis("M54.16"), Diagnosis("M51.26")),
        event_dates=DateRange(date(2026, 12, 5), date(2026, 12, 5)),
        servicing_provider=Provider(office, "1234567893"),
        lines=(
            ServiceLine(Procedure("72148"), quantity=Decimal(1), service_date=day, trace_number="AU-0001-1"),
        ),
        attachments=(Attachment("RR", "EL", "ATT0001"),),
    )


def build_many_278_fresh(count: int) -> bytes:
    """As :func:`build_many_278`, with each request's models made by :func:`review_made` (none shared)."""
    sets = [
        TransactionBody("278", i + 1, VERSION_278, build_278_body(review_made(i), WHEN)) for i in range(count)
    ]
    return _envelope(sets, "HI", VERSION_278)


def build_278_from_json(text: bytes) -> bytes:
    from transactions.requests_json import parse_request_document  # noqa: PLC0415

    requests = parse_request_document(text)
    sets = [
        TransactionBody("278", i + 1, VERSION_278, build_278_body(r, WHEN))  # type: ignore[arg-type]
        for i, r in enumerate(requests)
    ]
    return _envelope(sets, "HI", VERSION_278)


def _envelope(sets: list[TransactionBody], fid: str = "HS", version: str = VERSION_270) -> bytes:
    header = InterchangeHeader("ZZ", "S", "ZZ", "R", 1, WHEN)
    group = GroupHeader(fid, "S", "R", 1, version, WHEN)
    return build_interchange(header, [(group, sets)], Delimiters())


def best_of(runs: int, fn: Callable[..., Any], *args: Any) -> float:
    """Shortest of ``runs`` timings: the machine is shared, the minimum is the least disturbed."""
    clock = time.process_time if os.environ.get("BENCH_CLOCK") == "cpu" else time.perf_counter
    best = float("inf")
    for _ in range(runs):
        start = clock()
        fn(*args)
        best = min(best, clock() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=20.0)
    parser.add_argument("--build", type=int, default=10_000)
    parser.add_argument("--no-read", action="store_true", help="only the build figures (skip the readers)")
    parser.add_argument(
        "--gc",
        choices=("default", "policy"),
        default="policy",
        help="collector for the build figures: the gateway's policy (what `x12gw run` applies before "
        "its intake stage) or CPython's defaults",
    )
    args = parser.parse_args()
    if not args.no_read:
        bench_read(args.mb)
    if args.gc == "policy":
        from gateway.runtime import gcpolicy  # noqa: PLC0415 - only when asked for

        if gcpolicy.apply():
            print(
                f"build under the gateway's collector policy (gc.freeze(), thresholds {gcpolicy.THRESHOLDS})"
            )
        else:
            print(
                f"build under CPython's collector defaults (${gcpolicy.ENV} turns the gateway's policy off)"
            )
    else:
        print("build under CPython's collector defaults (--gc default)")
    bench_build(args.build)


def bench_read(mb: float) -> None:
    """The three readers on one generated 270 batch, each in a fresh process."""
    path = scratch_file("read-270", batch_270, mb)
    size_mb = path.stat().st_size / 1e6
    times = {}
    for name, fn in (
        ("x12-gateway reader", read_file),
        ("str.split (floor)", split_file),
        ("pyx12 X12Reader", pyx12_read_file),
    ):
        seconds, peak, segments = measure(fn, str(path))
        times[name] = seconds
        print(
            f"read  {name:20} {size_mb:6.1f} MB {segments:>9,} segments {seconds:6.2f} s "
            f"{segments / seconds:>10,.0f} segments/s {size_mb / seconds:6.1f} MB/s  peak RSS {peak:6.1f} MiB"
        )
    ours = times["x12-gateway reader"]
    print(
        f"read  ratio reader / str.split {ours / times['str.split (floor)']:.1f}x, "
        f"pyx12 X12Reader / reader {times['pyx12 X12Reader'] / ours:.1f}x"
    )


def bench_build(count: int, rounds: int = 5) -> None:
    """270s and 278s per second from models (builders alone) and from JSON bytes.

    Every path builds the same requests into the same interchange: the bytes are compared once before
    any timing, and a difference stops the bench (a faster path must not be doing less work). The
    paths of a kind take turns, ``rounds`` times, and each keeps its shortest time: on a shared machine
    a busy spell then slows a round of every path, not every run of one."""
    from transactions.requests_json import request_to_obj  # noqa: PLC0415

    print(
        "build figures: CPU" if os.environ.get("BENCH_CLOCK") == "cpu" else "build figures: wall clock",
        f"(best of {rounds}, paths taking turns); each covers the whole interchange (ST..SE bodies,",
        "envelope, bytes out); 'JSON -> built' starts from the JSON file's bytes (as the intake stage",
        "and `x12gw build` read it: parse, request models, builders, envelope); 'builders' from models",
    )
    data = json.dumps({"requests": [request_to_obj(inquiry(i)) for i in range(count)]}).encode()
    _same("270", data, build_from_json(data), ("builders alone", build_many(count)))
    t_build, t_json = best_in_turns(rounds, (build_many, count), (build_from_json, data))
    _pair("270", count, t_build, t_json)
    data = json.dumps({"requests": [request_to_obj(review(i)) for i in range(count)]}).encode()
    made = ("builders, models made", build_many_278_fresh(count))
    _same("278", data, build_278_from_json(data), ("builders alone", build_many_278(count)), made)
    t_build, t_json, t_fresh = best_in_turns(
        rounds, (build_many_278, count), (build_278_from_json, data), (build_many_278_fresh, count)
    )
    _pair("278", count, t_build, t_json, "(one request's nested models shared)")
    name = "builders, models made"
    print(
        f"build {name:20} {count:,} 278s {t_fresh:6.2f} s {count / t_fresh:>8,.0f} 278s/s "
        "(every request's models made by their constructors)"
    )
    print(f"build ratio JSON path / builders with models made (278) {t_json / t_fresh:.2f}x")


def best_in_turns(rounds: int, *calls: tuple[Callable[..., Any], Any]) -> list[float]:
    """Each call's shortest time over ``rounds`` rounds in which every call runs once, in turn."""
    best = [float("inf")] * len(calls)
    for _ in range(rounds):
        for i, (fn, arg) in enumerate(calls):
            best[i] = min(best[i], best_of(1, fn, arg))
    return best


def _same(kind: str, data: bytes, from_json: bytes, *others: tuple[str, bytes]) -> None:
    """Stop unless every path wrote the very bytes the JSON path wrote."""
    for name, out in others:
        if out != from_json:
            raise SystemExit(f"{kind}: '{name}' wrote other bytes than the JSON path: not the same work")
    print(
        f"build {kind}: JSON input {len(data) / 1e6:.1f} MB (every field written, as request_to_obj "
        f"writes it); all {1 + len(others)} paths write the same {len(from_json) / 1e6:.1f} MB interchange"
    )


def _pair(kind: str, count: int, t_build: float, t_json: float, note: str = "") -> None:
    for name, seconds in (("builders alone", t_build), (f"JSON -> built {kind}", t_json)):
        extra = f" {note}" if note and name == "builders alone" else ""
        print(f"build {name:20} {count:,} {kind}s {seconds:6.2f} s {count / seconds:>8,.0f} {kind}s/s{extra}")
    print(f"build ratio JSON path / builders ({kind}) {t_json / t_build:.2f}x")


if __name__ == "__main__":
    main()
