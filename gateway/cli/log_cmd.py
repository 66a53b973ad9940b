"""``x12gw log list|show|search|tail|export``: the transaction log, for operators.

``list`` shows files and transaction sets newest first; ``show REF`` one request, file or set in full
(envelopes, acknowledgments, state history, related transactions, segments with the guide's names);
``search`` finds requests by member id, client reference, trace, certification number, payer or date;
``tail`` prints events as they happen; ``export`` streams the log as CSV or JSON for audits. See
``gateway.operators``.
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from types import FrameType
from typing import Any, TextIO

from gateway.operators import render
from gateway.operators.cli import (
    EXIT_NONE,
    EXIT_OK,
    EXIT_USAGE,
    add_common,
    choice_arg,
    listing,
    session_for,
)
from gateway.operators.formatting import Column, clip, json_default, json_line, shown_time, write_json
from gateway.operators.queries import (
    LOG_COLUMNS,
    LOG_STATES,
    REQUEST_STATES,
    LogFilter,
    SearchCriteria,
    event_rows,
    iter_log,
    last_events,
    search,
    take,
)
from gateway.operators.session import Session, audit_items
from gateway.operators.timespec import time_arg
from gateway.operators.views import Resolver, Views
from gateway.runtime.filemask import mask_file_name

TYPES = ("270", "271", "278", "999", "TA1", "inbox", "file")
PROGRESS_EVERY = 500
MIN_DETAIL = 20

LIST_COLUMNS = (
    Column("file", "file_id", right=True),
    Column("when ({tz})", "created_at"),
    Column("type", "dir_type"),
    Column("ISA/GS/ST", "controls"),
    Column("reference", "ref"),
    Column("ack", "ack_status", colour=True),
    Column("state", "state", colour=True),
)
SEARCH_COLUMNS = (
    Column("tracking number", "tracking_number"),
    Column("kind", "kind"),
    Column("ref", "client_reference"),
    Column("state", "state", colour=True),
    Column("status", "status", colour=True, flexible=True),
    Column("patient", "patient", flexible=True),
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    log = sub.add_parser("log", help="the transaction log: list, show, search, tail, export")
    cmds = log.add_subparsers(dest="log_command", required=True, metavar="SUBCOMMAND")

    p = cmds.add_parser("list", help="files and transaction sets, newest first")
    add_common(p, reveal=True, limit=True)
    _filters(p)
    p.set_defaults(func=run_list)

    p = cmds.add_parser("show", help="one request, file or transaction set in full")
    add_common(p, reveal=True)
    p.add_argument(
        "ref",
        metavar="REF",
        help="file id, ISA13/GS06/ST02, trace, tracking or certification number, client reference; "
        "or prefixed: file:, set:, isa:, gs:, st:, trace:, tracking:, cert:, ref:",
    )
    p.add_argument("--brief", action="store_true", help="segments without their element names")
    p.add_argument("--no-segments", action="store_true", help="leave the segments out")
    p.set_defaults(func=run_show)

    p = cmds.add_parser("search", help="requests by member id, trace, certification number, payer, date")
    add_common(p, reveal=True, limit=True)
    p.add_argument("--member-id", help="subscriber member id (matched by its keyed hash)")
    p.add_argument("--ref", help="the billing system's client reference (matched by its keyed hash)")
    p.add_argument("--last-name", metavar="NAME", help="patient's last name, with --birth-date (keyed hash)")
    p.add_argument(
        "--birth-date", type=_date_arg, metavar="YYYY-MM-DD", help="patient's birth date, with --last-name"
    )
    p.add_argument("--trace", help="trace number (TRN02): ours, the payer's, or a service line's")
    p.add_argument("--cert", help="certification number (HCR02)")
    p.add_argument("--payer", help="payer id")
    p.add_argument("--kind", choices=("270", "278"))
    p.add_argument(
        "--state",
        type=choice_arg("--state", REQUEST_STATES),
        help="request state (new, sent, answered, pended, rejected, ...)",
    )
    p.add_argument("--since", type=time_arg, metavar="T", help="created at or after T (2h, 14d, 2026-01-31)")
    p.add_argument("--until", type=time_arg, metavar="T", help="created before T")
    p.set_defaults(func=run_search)

    p = cmds.add_parser("tail", help="the latest events; -f follows new ones until Ctrl-C")
    add_common(p)
    p.add_argument("-n", "--lines", type=int, default=20, metavar="N", help="show the last N events (20)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new events until SIGINT")
    p.add_argument("--interval", type=float, default=1.0, metavar="SECONDS", help="poll interval with -f")
    p.add_argument("--entity", help="only events of this entity type (file, request, transaction_set, ...)")
    p.set_defaults(func=run_tail)

    p = cmds.add_parser("export", help="stream the log as CSV or JSON (oldest first) for audits")
    p.add_argument("--config", help="gateway.toml (default: $X12GW_CONFIG or ./gateway.toml)")
    p.add_argument("--format", choices=("csv", "json"), required=True)
    p.add_argument("-o", "--output", metavar="FILE", help="write here (mode 0600) instead of stdout")
    _filters(p)
    p.set_defaults(func=run_export, json=False)


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--partner", help="trading partner name ('inbox' for billing files)")
    p.add_argument("--type", type=_type_arg, help="270, 271, 278, 999, TA1, inbox or file")
    p.add_argument("--direction", choices=("in", "out"))
    p.add_argument(
        "--status",
        type=choice_arg("--status", LOG_STATES),
        metavar="S",
        help="state of the file, transaction set or request (received, unmatched, rejected, ...)",
    )
    p.add_argument("--ack", type=_ack_arg, metavar="CODE", help="acknowledgment code A, E, P, R (or 'none')")
    p.add_argument("--since", type=time_arg, metavar="T", help="at or after T (30m, 2h, 14d, 2026-01-31)")
    p.add_argument("--until", type=time_arg, metavar="T", help="before T")


ACK_FILTERS = ("A", "E", "P", "R", "M", "W", "X", "none")


def _ack_arg(text: str) -> str:
    for known in ACK_FILTERS:
        if text.strip().lower() == known.lower():
            return known
    raise argparse.ArgumentTypeError(f"--ack {text!r} is not one of: {', '.join(ACK_FILTERS)}")


def _date_arg(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _type_arg(text: str) -> str:
    for known in TYPES:
        if text.lower() == known.lower():
            return known
    raise argparse.ArgumentTypeError(f"--type must be one of {', '.join(TYPES)}")


def _log_filter(args: argparse.Namespace, session: Session) -> LogFilter:
    now = session.clock()
    return LogFilter(
        partner=args.partner,
        type=args.type,
        direction=args.direction,
        status=args.status,
        ack=args.ack,
        since=args.since.resolve(now) if args.since else None,
        until=args.until.resolve(now) if args.until else None,
    )


def _display(row: dict[str, Any]) -> dict[str, Any]:
    parts = [row["interchange_control"], row["group_control"], row["set_control"]]
    controls = "/".join("" if p is None else str(p) for p in parts).strip("/")
    traces = row["trace_numbers"]
    ref = row["tracking_number"] or (traces[0] if traces else None) or row["file"]
    return {**row, "controls": controls, "ref": ref, "dir_type": f"{row['direction']} {row['type']}"}


def run_list(args: argparse.Namespace) -> int:
    with session_for(args) as session, session.store.read() as tx:
        rows, more = take(iter_log(session, tx, _log_filter(args, session)), args.limit)
        files = sorted({mask_file_name(str(r["file"])) for r in rows})  # the audit table holds no PHI itself
        session.audit_reveal("log list", "list", {"files": audit_items(files)})
        return listing(
            session,
            "rows",
            rows if session.json else [_display(r) for r in rows],
            more,
            LIST_COLUMNS,
            empty="nothing in the log matches",
        )


def run_show(args: argparse.Namespace) -> int:
    with session_for(args) as session:
        with session.store.read() as tx:
            subjects = Resolver(tx, session.reference_key()).resolve(args.ref)
            if len(subjects) != 1:
                return _not_one(session, args.ref, subjects)
            views = Views(session, tx)
            view = views.view(subjects[0])
        if args.no_segments:
            for block in view["transactions"]:
                block["segments"] = None
                block["segments_omitted"] = True
        session.audit_reveal(
            "log show",
            args.ref,
            {"subject": subjects[0].ref, "trackings": audit_items(sorted(views.trackings))},
        )
        if session.json:
            write_json(view, session.out)
        else:
            render.show(session, view, elements=not args.brief)
    return EXIT_OK


def _not_one(session: Session, ref: str, subjects: list[Any]) -> int:
    if not subjects:
        if session.json:
            write_json({"matches": []}, session.out)
        else:
            session.write("nothing matches that reference")
        return EXIT_NONE
    candidates = [{"ref": s.ref, "kind": s.kind, "label": s.label} for s in subjects]
    if session.json:
        write_json({"ambiguous": candidates}, session.out)
    else:
        session.write(f"{len(candidates)} things match {ref!r}; show one of them:")
        for c in candidates:
            session.write(f"  x12gw log show {c['ref']:<40} {c['label']}")
    print("x12gw: error: ambiguous reference; use one of the prefixed forms", file=sys.stderr)
    return EXIT_USAGE


def run_search(args: argparse.Namespace) -> int:
    criteria_given = any(
        getattr(args, k) is not None
        for k in (
            "member_id",
            "ref",
            "last_name",
            "trace",
            "cert",
            "payer",
            "kind",
            "state",
            "since",
            "until",
        )
    )
    if (args.last_name is None) != (args.birth_date is None):
        print("x12gw: error: --last-name and --birth-date go together", file=sys.stderr)
        return EXIT_USAGE
    if not criteria_given:
        print(
            "x12gw: error: log search needs at least one of --member-id, --ref, --last-name with "
            "--birth-date, --trace, --cert, --payer, "
            "--kind, --state, --since, --until",
            file=sys.stderr,
        )
        return EXIT_USAGE
    with session_for(args) as session:
        now = session.clock()
        criteria = SearchCriteria(
            member_id=args.member_id,
            client_reference=args.ref,
            last_name=args.last_name,
            birth_date=args.birth_date,
            trace_number=args.trace,
            certification_number=args.cert,
            payer=args.payer,
            kind=args.kind,
            state=args.state,
            since=args.since.resolve(now) if args.since else None,
            until=args.until.resolve(now) if args.until else None,
        )
        with session.store.read() as tx:
            rows, more = search(session, tx, criteria, args.limit)
        session.audit_reveal(
            "log search",
            "search: " + ", ".join(criteria.named()),
            {"trackings": audit_items([r["tracking_number"] for r in rows])},
        )
        return listing(session, "requests", rows, more, SEARCH_COLUMNS, empty="no request matches")


def _event_line(event: dict[str, Any], width: int) -> str:
    detail = event["detail"] or {}
    extra = " ".join(f"{k}={v}" for k, v in detail.items() if not isinstance(v, list | dict) or v)
    head = f"{shown_time(event['at'])}  {event['subject']}  {event['from'] or '-'} -> {event['to']}"
    # the subject (tracking number, file name) is never cut; only the detail gives way
    return f"{head}  {clip(extra, max(MIN_DETAIL, width - len(head) - 2))}".rstrip()


@contextmanager
def _until_interrupted() -> Iterator[threading.Event]:
    """An event set by SIGINT/SIGTERM (main thread only), handlers restored afterwards."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_tail(args: argparse.Namespace) -> int:
    with session_for(args) as session:
        with session.store.read() as tx:
            events = last_events(tx, max(1, min(args.lines, 10_000)), args.entity)
            last_id = events[-1]["id"] if events else _last_event_id(tx)
        _print_events(session, events)
        if not args.follow:
            return EXIT_OK if events else EXIT_NONE
        with _until_interrupted() as stop:
            while not stop.wait(max(0.05, args.interval)):
                with session.store.read() as tx:
                    changes = tx.audit.changes_after(last_id, entity_type=args.entity, limit=1000)
                    batch = event_rows(tx, changes)
                if batch:
                    last_id = batch[-1]["id"]
                    _print_events(session, batch)
    return EXIT_OK


def _last_event_id(tx: Any) -> int:
    newest = tx.audit.list_changes(limit=1)
    return int(newest[0].id) if newest else 0


def _print_events(session: Session, events: list[dict[str, Any]]) -> None:
    for event in events:
        session.write(json_line(event) if session.json else _event_line(event, session.width))
    session.out.flush()


def _csv_value(value: Any) -> Any:
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return json_default(value) if value is not None and not isinstance(value, str | int | float) else value


def _open_output(path: str | None) -> TextIO:
    if path is None:
        return sys.stdout
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8", newline="")


def run_export(args: argparse.Namespace) -> int:
    args.json = False
    with session_for(args) as session:
        out = _open_output(args.output)
        progress = sys.stderr.isatty() and (args.output is not None or not sys.stdout.isatty())
        count = 0
        try:
            with session.store.read() as tx:
                rows = iter_log(session, tx, _log_filter(args, session), newest_first=False)
                if args.format == "csv":
                    writer = csv.DictWriter(out, fieldnames=LOG_COLUMNS, extrasaction="ignore")
                    writer.writeheader()
                else:
                    out.write("[")
                for row in rows:
                    if args.format == "csv":
                        writer.writerow({k: _csv_value(row.get(k)) for k in LOG_COLUMNS})
                    else:
                        out.write(("," if count else "") + "\n" + json_line(row))
                    count += 1
                    if progress and count % PROGRESS_EVERY == 0:
                        sys.stderr.write(f"\rexported {count} rows")
                if args.format == "json":
                    out.write("\n]\n")
        finally:
            if out is not sys.stdout:
                out.close()
            else:
                out.flush()
        if progress:
            sys.stderr.write(f"\rexported {count} rows\n")
    return EXIT_OK if count else EXIT_NONE
