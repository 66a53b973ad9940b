"""Plumbing shared by the operators' commands: common options, exit codes, listing output.

Every operator command takes ``--config`` (else ``$X12GW_CONFIG``, else ``./gateway.toml``),
``--json`` and ``--utc`` (times in UTC; the local zone by default); listings take ``--limit`` (default
50) and say when there is more; commands that can show PHI take ``--reveal``. Exit codes: 0
found/ok, 1 nothing matched or the operation was refused, 2 usage or configuration error
(``gateway.cli.main`` maps gateway errors to 2).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from gateway.operators.formatting import Column, render_table, set_utc, write_json
from gateway.operators.session import Session, open_session

EXIT_OK, EXIT_NONE, EXIT_USAGE = 0, 1, 2
DEFAULT_LIMIT = 50
MAX_LIMIT = 10_000


def limit_arg(text: str) -> int:
    """argparse ``type=`` for --limit: 1..10000."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"--limit must be between 1 and {MAX_LIMIT}")
    return value


def choice_arg(option: str, values: Sequence[str]) -> Callable[[str], str]:
    """argparse ``type=`` for a closed set of values (states, statuses): a value outside it is a usage
    error that lists the valid ones, instead of a filter that silently matches nothing."""
    valid = sorted(set(values))

    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in valid:
            raise argparse.ArgumentTypeError(f"{option} {text!r} is not one of: {', '.join(valid)}")
        return value

    return parse


def add_common(p: argparse.ArgumentParser, *, reveal: bool = False, limit: bool = False) -> None:
    p.add_argument("--config", help="gateway.toml (default: $X12GW_CONFIG or ./gateway.toml)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--utc", action="store_true", help="times in UTC (default: the local time zone)")
    if reveal:
        p.add_argument(
            "--reveal",
            action="store_true",
            help="show names, member ids and birth dates unmasked (recorded in the PHI audit log)",
        )
    if limit:
        p.add_argument(
            "--limit", type=limit_arg, default=DEFAULT_LIMIT, help=f"at most N rows (default {DEFAULT_LIMIT})"
        )


def session_for(args: argparse.Namespace) -> Any:
    """The session context manager for a parsed command line."""
    set_utc(bool(getattr(args, "utc", False)))
    return open_session(args.config, reveal=getattr(args, "reveal", False), json=args.json)


def listing(
    session: Session,
    key: str,
    rows: list[dict[str, Any]],
    more: bool,
    columns: Sequence[Column],
    *,
    empty: str,
    extra: dict[str, Any] | None = None,
) -> int:
    """Print a listing (table or ``{key: rows, "more": bool}``); exit 1 when it is empty."""
    if session.json:
        write_json({key: rows, "more": more, **(extra or {})}, session.out)
    elif not rows:
        session.write(empty)
    else:
        session.lines(render_table(rows, columns, width=session.width, painter=session.painter))
        if more:
            session.write(f"... more rows; narrow the filters or raise --limit (showing {len(rows)})")
    return EXIT_OK if rows else EXIT_NONE
