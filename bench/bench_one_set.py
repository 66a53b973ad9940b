"""The pure core's CPU for ONE small transaction set, as a real-time API call spends it (us per call).

    python bench/bench_one_set.py [--calls 2000] [--rounds 5] [--part all|build|answer]

Why: ``bench/bench_map.py`` measures whole files, where per-run setup (stream objects, reports, the
engine's memos emptied after every run) is spread over thousands of sets; a real-time call pays it for
one set. The two parts, each the core calls ``x12gw serve`` makes per eligibility call:

- ``build``: the API's JSON request form read (``request_from_obj``), its interchange built with the
  sets kept (``build_request_interchange(keep_segments=True)``) and checked (``validate_written``), as
  ``gateway.stages.batching.build_one`` does;
- ``answer``: the payer simulator's 271 answer to that 270 (built once, untimed) read, validated set by
  set and mapped (``ValidationStream`` with the inbound stage's options, ``map_set``), each record as
  the stored document's dict (``to_dict``) and each set's findings as JSON, as
  ``gateway.stages.inbound.prepare_answer`` and ``store_answer`` do.

Each call gets a fresh trace number and member id (so no call repeats the last one's values, as in
``bench/bench_api.py``). Prints the median of ``--rounds`` rounds of ``--calls`` calls, in us per call
of this process's CPU time, and every round's figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mappings.mapper import default_rules, map_set
from transactions.envelope_writer import InterchangeHeader
from transactions.findings import finding_json
from transactions.jsonform import to_dict
from transactions.outbound import build_request_interchange
from transactions.requests_json import request_from_obj
from transactions.segment import Delimiters
from transactions.validation import Options, ValidationStream, validate_written

ROOT = Path(__file__).resolve().parent.parent
WHEN = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
REQUEST = json.loads((ROOT / "sample_edi" / "requests" / "270-subscriber.json").read_text())
OURS = "X12GWDEMO"  # our ISA06/GS02 in the built 270, so ISA08/GS03 of the answer


def request_doc(n: int) -> dict[str, Any]:
    """The API's JSON request form of call ``n`` (as ``bench/bench_api.py`` posts it)."""
    doc: dict[str, Any] = json.loads(json.dumps(REQUEST))
    doc["trace_number"] = f"BA-{n:06d}"
    doc["subscriber"]["member_id"] = f"ZZM8{n:08d}"
    return doc


def build(n: int) -> bytes:
    """One 270 built and checked as ``batching.build_one`` does; its bytes."""
    req = request_from_obj(request_doc(n))
    header = InterchangeHeader("ZZ", OURS, "ZZ", "ACME01", n, WHEN)
    batch = build_request_interchange(
        [req],
        header,
        application_sender=OURS,
        application_receiver="ACME01",
        group_controls=[n],
        set_controls=[n],
        keep_segments=True,
    )
    reports = validate_written(batch.written, Delimiters())
    if not all(r.accepted for r in reports):
        raise SystemExit("the built 270 was rejected")
    return batch.data


def payer_answer(data: bytes) -> bytes:
    """The simulator's real-time 271 to one 270 (its default scenario)."""
    from payersim.realtime import RealtimeResponder  # noqa: PLC0415 - the simulator only here
    from payersim.scenario import Scenario  # noqa: PLC0415

    answer = RealtimeResponder(Scenario(), lambda: WHEN).answer(data)
    if answer.kind != "271":
        raise SystemExit(f"the simulator answered {answer.kind}")
    return answer.data


OPTIONS = Options(our_ids=frozenset({OURS}), our_gs_ids=frozenset({OURS}), keep_placed=True)


def read_answer(data: bytes) -> int:
    """One answer read, validated, mapped and made into documents as the inbound stage does."""
    rules = default_rules()
    stream = ValidationStream((data,), OPTIONS)
    made = 0
    for item in stream:
        records = map_set(item.validated, item.interchange, item.group, rules)
        made += len([to_dict(r) for r in records])
        made += len([finding_json(f) for f in item.validated.report.findings])
    assert stream.report is not None  # noqa: S101
    return made


def answers(count: int) -> list[bytes]:
    """``count`` different 271s (one per call number), made before timing."""
    return [payer_answer(build(n)) for n in range(1, count + 1)]


def timed(fn: Callable[[int], object], calls: int) -> float:
    """CPU us per call of ``fn(1..calls)``."""
    start = time.process_time()
    for n in range(1, calls + 1):
        fn(n)
    return (time.process_time() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--part", choices=("all", "build", "answer"), default="all")
    args = parser.parse_args()
    inputs = answers(args.calls) if args.part != "build" else []
    parts: dict[str, Callable[[int], object]] = {
        "build": build,
        "answer": lambda n: read_answer(inputs[n - 1]),
    }
    for name, fn in parts.items():
        if args.part not in ("all", name):
            continue
        timed(fn, min(args.calls, 200))  # warm: maps compiled, caches filled
        figures = [timed(fn, args.calls) for _ in range(args.rounds)]
        shown = " ".join(f"{f:.0f}" for f in figures)
        print(f"{name}: {statistics.median(figures):.0f} us per call (rounds: {shown})")


if __name__ == "__main__":
    main()
