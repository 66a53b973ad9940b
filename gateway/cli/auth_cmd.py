"""``x12gw auth list|show``: prior authorizations as the payers answered them.

``list`` filters by status, payer, end date (``--expiring-within 14d``) and how long an authorization
has been pended (``--pending-longer-than 2d``); ``show TRACKING|CERT`` gives one authorization with its
full event history, service lines and dates. Patient fields are masked unless ``--reveal``.
"""

from __future__ import annotations

import argparse
from typing import Any

from gateway.operators import render
from gateway.operators.cli import EXIT_NONE, EXIT_OK, add_common, choice_arg, listing, session_for
from gateway.operators.formatting import Column, write_json
from gateway.operators.queries import AuthFilter, authorization_detail, authorization_rows
from gateway.operators.session import audit_items
from gateway.operators.timespec import duration_arg

STATUSES = (
    "approved",
    "partially_approved",
    "denied",
    "pended",
    "modified",
    "cancelled",
    "contact_payer",
    "no_action_required",
    "no_decision",
    "rejected",
)

LIST_COLUMNS = (
    Column("tracking number", "tracking_number"),
    Column("status", "status", colour=True),
    Column("cert", "certification_number"),
    Column("payer", "payer_id"),
    Column("expires", "effective_to"),
    Column("status since", "status_since"),
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    auth = sub.add_parser("auth", help="prior authorizations: list, show")
    cmds = auth.add_subparsers(dest="auth_command", required=True, metavar="SUBCOMMAND")

    p = cmds.add_parser("list", help="authorizations, most recently updated first")
    add_common(p, reveal=True, limit=True)
    p.add_argument(
        "--status", type=choice_arg("--status", STATUSES), metavar="S", help=f"one of {', '.join(STATUSES)}"
    )
    p.add_argument("--payer", metavar="P", help="payer id")
    p.add_argument(
        "--expiring-within", type=duration_arg, metavar="D", help="ends between today and D from now"
    )
    p.add_argument(
        "--pending-longer-than",
        type=duration_arg,
        metavar="D",
        help="pended, with no change for longer than D",
    )
    p.set_defaults(func=run_list)

    p = cmds.add_parser("show", help="one authorization with its history and service lines")
    add_common(p, reveal=True)
    p.add_argument(
        "ref", metavar="TRACKING|CERT|REF", help="tracking number, certification number or client reference"
    )
    p.set_defaults(func=run_show)


def run_list(args: argparse.Namespace) -> int:
    flt = AuthFilter(
        status=args.status,
        payer=args.payer,
        expiring_within=args.expiring_within,
        pending_longer_than=args.pending_longer_than,
    )
    with session_for(args) as session:
        with session.store.read() as tx:
            rows, more = authorization_rows(session, tx, flt, args.limit)
        session.audit_reveal(
            "auth list", "authorizations", {"trackings": audit_items([r["tracking_number"] for r in rows])}
        )
        return listing(session, "authorizations", rows, more, LIST_COLUMNS, empty="no authorization matches")


def run_show(args: argparse.Namespace) -> int:
    with session_for(args) as session:
        with session.store.read() as tx:
            doc: dict[str, Any] | None = authorization_detail(session, tx, args.ref.strip())
        if doc is None:
            if session.json:
                write_json({"authorization": None}, session.out)
            else:
                session.write("no authorization has that tracking or certification number")
            return EXIT_NONE
        session.audit_reveal("auth show", args.ref, {"trackings": [doc["authorization"]["tracking_number"]]})
        if session.json:
            write_json(doc, session.out)
        else:
            render.authorization(session, doc)
    return EXIT_OK
