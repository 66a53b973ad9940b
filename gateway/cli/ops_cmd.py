"""``x12gw acks overdue``, ``stats``, ``reprocess``, ``resend``, ``audit list``: operating the gateway.

``acks overdue`` lists sent files still without a 999/TA1 after ``timeouts.ack_overdue_minutes``
(exit 0 when none, 1 when some: usable as a monitoring check);
``stats`` counts transactions and requests and measures turnaround per payer; ``reprocess FILE_ID``
and ``resend TRACKING`` put a quarantined file or a rejected/invalid/overdue request back in front of
the run loop, once (running them twice is refused the second time); ``audit list`` shows who revealed
PHI, when and what.
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from gateway.operators.actions import ActionResult, reprocess, resend
from gateway.operators.cli import EXIT_NONE, EXIT_OK, add_common, listing, session_for
from gateway.operators.formatting import Column, render_pairs, render_table, write_json
from gateway.operators.queries import compute_stats, overdue_acks
from gateway.operators.session import Session
from gateway.operators.timespec import duration_arg, format_duration, time_arg

OVERDUE_COLUMNS = (
    Column("file", "file_id", right=True),
    Column("partner", "partner"),
    Column("sent ({tz})", "sent_at"),
    Column("waiting", "waiting"),
    Column("sets", "transaction_sets", right=True),
    Column("tracking numbers", "trackings"),
)
EXIT_OVERDUE = 1
AUDIT_COLUMNS = (
    Column("at ({tz})", "at"),
    Column("user", "os_user", flexible=True),
    Column("action", "action"),
    Column("subject", "subject"),
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    acks = sub.add_parser("acks", help="acknowledgments: overdue")
    cmds = acks.add_subparsers(dest="acks_command", required=True, metavar="SUBCOMMAND")
    p = cmds.add_parser("overdue", help="sent files with no 999/TA1 after the configured time")
    add_common(p, limit=True)
    p.add_argument(
        "--older-than",
        type=duration_arg,
        metavar="D",
        help="instead of timeouts.ack_overdue_minutes (e.g. 30m, 2h; 0m: every unacknowledged file)",
    )
    p.set_defaults(func=run_overdue)

    p = sub.add_parser("stats", help="counts by type and status, acceptance rate, turnaround per payer")
    add_common(p)
    p.add_argument(
        "--since", type=time_arg, metavar="T", help="only what was created at or after T (7d, 2026-01-01)"
    )
    p.add_argument("--until", type=time_arg, metavar="T", help="only what was created before T")
    p.set_defaults(func=run_stats)

    p = sub.add_parser("reprocess", help="send a quarantined inbox or inbound file through its stage again")
    add_common(p)
    p.add_argument(
        "file_id",
        type=file_id_arg,
        metavar="FILE_ID",
        help="a file id, bare or as log show names it (file:19)",
    )
    p.set_defaults(func=run_reprocess)

    p = sub.add_parser(
        "resend", help="a rejected, invalid or overdue request goes out again in the next batch"
    )
    add_common(p)
    p.add_argument("tracking", metavar="TRACKING")
    p.set_defaults(func=run_resend)

    audit = sub.add_parser("audit", help="the PHI audit log: list")
    cmds = audit.add_subparsers(dest="audit_command", required=True, metavar="SUBCOMMAND")
    p = cmds.add_parser("list", help="who revealed PHI, when and what; newest first")
    add_common(p, limit=True)
    p.add_argument("--user", help="only this OS user")
    p.add_argument("--since", type=time_arg, metavar="T")
    p.add_argument("--until", type=time_arg, metavar="T")
    p.set_defaults(func=run_audit)


def file_id_arg(text: str) -> int:
    """argparse ``type=`` for a file id: ``19`` or ``file:19`` (the prefix ``log show`` prints)."""
    prefix, sep, value = text.strip().partition(":")
    digits = value.strip() if sep and prefix.lower() == "file" else text.strip()
    if not digits.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a file id (a number, or file:NUMBER)")
    return int(digits)


def run_overdue(args: argparse.Namespace) -> int:
    with session_for(args) as session:
        older = args.older_than
        if older is None:
            older = timedelta(minutes=session.config.timeouts.ack_overdue_minutes)
        with session.store.read() as tx:
            rows, more = overdue_acks(session, tx, older, args.limit)
        shown = (
            rows
            if session.json
            else [
                {
                    **r,
                    "waiting": format_duration(r["waiting_minutes"] * 60),
                    "trackings": ", ".join(r["tracking_numbers"]),
                }
                for r in rows
            ]
        )
        listing(
            session,
            "overdue",
            shown,
            more,
            OVERDUE_COLUMNS,
            empty=f"no sent file has waited over {format_duration(older.total_seconds())} for its 999/TA1",
            extra={"older_than_minutes": older.total_seconds() / 60},
        )
        # a monitoring check: 0 when all is well, 1 when something is overdue (not "nothing matched")
        return EXIT_OVERDUE if rows else EXIT_OK


def run_stats(args: argparse.Namespace) -> int:
    with session_for(args) as session:
        now = session.clock()
        since = args.since.resolve(now) if args.since else None
        until = args.until.resolve(now) if args.until else None
        with session.store.read() as tx:
            doc = compute_stats(tx, since=since, until=until)
        if session.json:
            write_json(doc, session.out)
        else:
            _render_stats(session, doc)
    return EXIT_OK


def _counts_table(session: Session, title: str, counts: dict[str, dict[str, int]]) -> None:
    session.write(session.painter.bold(title))
    rows = [
        {
            "what": what,
            "total": sum(states.values()),
            "states": ", ".join(f"{s} {n}" for s, n in states.items()),
        }
        for what, states in counts.items()
    ]
    columns = (
        Column("", "what"),
        Column("total", "total", right=True),
        Column("by state", "states", flexible=True),
    )
    session.lines(
        render_table(rows, columns, width=session.width, painter=session.painter) if rows else ["  (none)"]
    )
    session.write()


def _render_stats(session: Session, doc: dict[str, Any]) -> None:
    window = f"{doc['since'] or 'the beginning'} .. {doc['until'] or 'now'}"
    session.write(f"statistics for {window}")
    session.write()
    _counts_table(session, "transaction sets (type, direction)", doc["transaction_sets"])
    _counts_table(session, "requests", doc["requests"])
    acks = doc["acknowledgments"]
    rate = acks["acceptance_rate"]
    latency = doc["ack_latency"]
    session.write(session.painter.bold("acknowledgments of what we sent"))
    session.lines(
        render_pairs(
            [
                ("acknowledged", acks["acknowledged"]),
                ("accepted", acks["accepted"]),
                ("rejected", acks["rejected"]),
                ("acceptance rate", f"{rate * 100:.1f}%" if rate is not None else "n/a"),
                ("authorizations", ", ".join(f"{k} {v}" for k, v in doc["authorizations"].items())),
                ("unmatched responses", doc["unmatched_responses"]),
                (
                    "999 latency",
                    f"median {format_duration(latency['median_seconds'])}, "
                    f"p95 {format_duration(latency['p95_seconds'])} over {latency['files']} file(s)"
                    if latency["files"]
                    else "n/a",
                ),
            ],
            width=session.width,
        )
    )
    session.write()
    session.write(session.painter.bold("turnaround, sent to first answer"))
    rows = [
        {**t, "median": format_duration(t["median_seconds"]), "p95": format_duration(t["p95_seconds"])}
        for t in doc["turnaround"]
    ]
    columns = (
        Column("payer", "payer_id"),
        Column("kind", "kind"),
        Column("answered", "count", right=True),
        Column("median", "median", right=True),
        Column("p95", "p95", right=True),
    )
    session.lines(
        render_table(rows, columns, width=session.width, painter=session.painter) if rows else ["  (none)"]
    )


def _action(session: Session, result: ActionResult) -> int:
    if session.json:
        write_json({"done": result.done, "message": result.message, **result.detail}, session.out)
    else:
        session.write(("" if result.done else "refused: ") + result.message)
    return EXIT_OK if result.done else EXIT_NONE


def run_reprocess(args: argparse.Namespace) -> int:
    with session_for(args) as session:
        return _action(session, reprocess(session, args.file_id))


def run_resend(args: argparse.Namespace) -> int:
    with session_for(args) as session:
        return _action(session, resend(session, args.tracking.strip()))


def run_audit(args: argparse.Namespace) -> int:
    with session_for(args) as session:
        now = session.clock()
        with session.store.read() as tx:
            entries = tx.audit.list_reveals(
                os_user=args.user,
                since=args.since.resolve(now) if args.since else None,
                until=args.until.resolve(now) if args.until else None,
                limit=args.limit + 1,
            )
        rows = [
            {
                "id": e.id,
                "at": e.at,
                "os_user": e.os_user,
                "action": e.action,
                "subject": e.subject,
                "detail": e.detail,
            }
            for e in entries[: args.limit]
        ]
        return listing(
            session, "entries", rows, len(entries) > args.limit, AUDIT_COLUMNS, empty="no PHI reveal recorded"
        )
