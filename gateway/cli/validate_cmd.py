"""``x12gw validate FILE... [--json | --jsonl] [--ack-out DIR] [--jobs N]``: check files against the
implementation guides. Files are read in chunks (memory does not grow with the file); ``--jsonl`` prints
one JSON document per transaction set as soon as it is validated, then one per file (its interchanges
and groups, without the sets already printed). A file of 1 MiB or more is validated across ``--jobs``
worker processes (default: the cores available; ``--jobs N`` > 1 given explicitly applies to any file),
with the same report, in the same order, as one process gives (``gateway.runtime.parallel``).

Exit 0 when every transaction set is accepted (A or E), 1 when any set, group or interchange is
rejected, 2 when a file is unreadable or not X12.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TextIO

from gateway.runtime import gcpolicy
from transactions.acks import AckEnvelope, build_999, build_ta1
from transactions.findings import SET_CODES, ValidationReport, interchange_json, set_json
from transactions.validation import ENGINES, QUIRKS, Options, ValidationStream, validate

CHUNK = 1 << 20
PARALLEL_MIN_BYTES = 1 << 20  # below this, starting workers costs more than they save


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("validate", help="validate X12 files against the 5010 implementation guides")
    p.add_argument("files", nargs="+", type=Path)
    output = p.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="machine-readable report")
    output.add_argument(
        "--jsonl", action="store_true", help="one JSON line per transaction set, streamed, then one per file"
    )
    p.add_argument("--ack-out", type=Path, help="write the 999/TA1 acknowledgments into this folder")
    p.add_argument(
        "--strict-version", action="store_true", help="reject pre-errata version codes (005010X279)"
    )
    p.add_argument(
        "--lenient",
        action="append",
        choices=sorted(QUIRKS),
        default=[],
        help="accept this envelope quirk with a warning (repeatable; 'version' unless --strict-version)",
    )
    p.add_argument("--our-id", default="X12GATEWAY", help="ISA06 of acknowledgments written with --ack-out")
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="compiled",
        help="validation engine: compiled tables (default) or pyx12's map walker (the reference)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        help="worker processes for a large file (default: the cores available; 1: no workers)",
    )
    p.set_defaults(func=run)


def _write_acks(path: Path, report: ValidationReport, out: Path, our_id: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    now = datetime.now(UTC)
    for n, ic in enumerate(report.interchanges, 1):
        env = AckEnvelope("ZZ", our_id, n, n, now)
        for suffix, data in (
            ("ta1", build_ta1(ic, env)),
            ("999", None if ic.rejected else build_999(ic, env, 1)),
        ):
            if data is not None:
                target = out / f"{path.name}.{n}.{suffix}"
                target.write_bytes(data)
                written.append(target)
    return written


def print_report(path: Path, report: ValidationReport, stream: TextIO | None = None) -> None:
    """The human-readable report (also used by ``x12gw map`` for files that do not validate). The
    default stream is looked up at each call, not bound at import: a ``sys.stdout`` swapped in when
    the module was first imported (pytest's capture) is closed by the time later calls print."""
    stream = sys.stdout if stream is None else stream
    if report.fatal:
        print(f"{path}: NOT X12: {report.fatal}", file=stream)
        return
    for ic in report.interchanges:
        ta1 = ""
        if ic.ta1 and ic.ta1.ack_code != "A":
            ta1 = f" TA1 {ic.ta1.ack_code}/{ic.ta1.note_code} {ic.ta1.message}"
        print(f"{path}: interchange {ic.control_number} {ic.sender} -> {ic.receiver}{ta1}", file=stream)
        for note in (*ic.warnings, *([ic.misaddressed] if ic.misaddressed else [])):
            print(f"  {note}", file=stream)
        for g in ic.groups:
            counts = f"({g.accepted_count}/{len(g.sets)} accepted)"
            head = f"  group {g.functional_id} {g.control_number} {g.version}: {g.ack_code} {counts}"
            print(f"{head} {' '.join(g.group_codes)}".rstrip(), file=stream)
            for s in g.sets:
                codes = " ".join(s.set_codes)
                print(
                    f"    {s.set_id} {s.control_number} [{s.map or '-'}]: {s.ack_code} {codes}".rstrip(),
                    file=stream,
                )
                for c in s.set_codes:
                    if c != "5":
                        print(f"      set error {c}: {SET_CODES.get(c, c)}", file=stream)
                for note in s.notes:
                    print(f"      {note}", file=stream)
                for f in s.findings:
                    where = f"{f.segment}@{f.position}" + (f" {f.element}" if f.element else "")
                    where += f" loop {f.loop}" if f.loop else ""
                    print(f"      {f.severity} {f.code}: {where}: {f.message}", file=stream)


def read_chunks(fh: IO[bytes]) -> Iterator[bytes]:
    """A file as 1 MiB chunks, for the streaming reader."""
    return iter(lambda: fh.read(CHUNK), b"")


def _write_line(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc, separators=(",", ":")) + "\n")


def _stream_jsonl(path: Path, fh: IO[bytes], opts: Options) -> ValidationReport:
    """Print each set as it is validated, then the file's envelope verdicts; return the report."""
    stream = ValidationStream(read_chunks(fh), opts)
    for item in stream:
        set_doc = set_json(item.validated.report)
        _write_line({"path": str(path), "interchange": item.interchange, "group": item.group, "set": set_doc})
    assert stream.report is not None  # noqa: S101 - set when iteration ends
    report = stream.report
    interchanges = [interchange_json(i) for i in report.interchanges]
    for ic in interchanges:
        for group in ic["groups"]:  # type: ignore[attr-defined]
            del group["transaction_sets"]
    _write_line({"path": str(path), "fatal": report.fatal, "interchanges": interchanges})
    return report


def _workers(fh: IO[bytes], jobs: int | None) -> int:
    """Worker processes for this file: only when there are several cores and a file worth splitting."""
    if jobs is not None:
        return max(1, jobs)
    from gateway.runtime.parallel import default_jobs  # noqa: PLC0415 - only for large files

    size = os.fstat(fh.fileno()).st_size
    return default_jobs() if size >= PARALLEL_MIN_BYTES else 1


def _validate(fh: IO[bytes], opts: Options, jobs: int | None) -> ValidationReport:
    workers = _workers(fh, jobs)
    if workers == 1:
        return validate(read_chunks(fh), opts)
    from gateway.runtime.parallel import validate_parallel  # noqa: PLC0415 - only for large files

    return validate_parallel(read_chunks(fh), opts, workers)


def run(args: argparse.Namespace) -> int:
    leniency = set(args.lenient) | (set() if args.strict_version else {"version"})
    opts = Options(leniency=frozenset(leniency), engine=args.engine)
    gcpolicy.apply(warm=False)  # a one-off command: no maps compiled ahead that the file may not use
    results = []
    worst = 0
    for path in args.files:
        try:
            fh = path.open("rb")
        except OSError as exc:
            print(f"x12gw: cannot read {path}: {exc.strerror}", file=sys.stderr)
            worst = 2
            continue
        with fh:
            report = _stream_jsonl(path, fh, opts) if args.jsonl else _validate(fh, opts, args.jobs)
        if not args.jsonl:
            results.append((path, report))
        if report.fatal or not report.interchanges:
            worst = 2
        elif not report.all_accepted:
            worst = max(worst, 1)
        if args.ack_out and not report.fatal:
            _write_acks(path, report, args.ack_out, args.our_id)
    if args.json:
        doc = {
            "files": [
                {
                    "path": str(p),
                    "fatal": r.fatal,
                    "interchanges": [interchange_json(i) for i in r.interchanges],
                }
                for p, r in results
            ]
        }
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for p, r in results:
            print_report(p, r)
    return worst
