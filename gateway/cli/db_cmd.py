"""``x12gw db upgrade|current|history``: the one explicit way the database schema changes.

Every other command checks the schema revision and refuses one that is not current (see
``gateway.runtime.storeopen``), so an upgrade happens when an operator decides, after a backup.
"""

from __future__ import annotations

import argparse

from gateway.runtime.config import load_config
from gateway.store import make_engine, upgrade
from gateway.store.migrate import history, state

EXIT_OK, EXIT_NOT_CURRENT = 0, 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = sub.add_parser("db", help="database schema: upgrade, current, history")
    cmds = db.add_subparsers(dest="db_command", required=True, metavar="SUBCOMMAND")
    for name, func, text in (
        ("upgrade", run_upgrade, "migrate the database to this release's schema (back it up first)"),
        ("current", run_current, "the database's schema revision and whether it is current (exit 1 if not)"),
        ("history", run_history, "every schema revision this release knows, oldest first"),
    ):
        p = cmds.add_parser(name, help=text)
        p.add_argument("--config", help="gateway.toml (default: $X12GW_CONFIG or ./gateway.toml)")
        p.set_defaults(func=func)


def run_upgrade(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    config.folders.ensure()
    engine = make_engine(config.database_url())
    try:
        before = state(engine)
        if before.status == "current":
            print(f"database schema is current ({before.head}); nothing to do")
            return EXIT_OK
        upgrade(engine)
        after = state(engine)
    finally:
        engine.dispose()
    print(f"database schema upgraded from {before.current or 'nothing'} to {after.current}")
    return EXIT_OK


def run_current(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    engine = make_engine(config.database_url())
    try:
        found = state(engine)
    finally:
        engine.dispose()
    print(f"database: {found.current or 'no schema'}  release: {found.head}  ({found.status})")
    return EXIT_OK if found.status == "current" else EXIT_NOT_CURRENT


def run_history(args: argparse.Namespace) -> int:
    config = load_config(args.config) if args.config else None
    current = None
    if config is not None:
        engine = make_engine(config.database_url())
        try:
            current = state(engine).current
        finally:
            engine.dispose()
    for revision, down, doc in history():
        mark = "*" if revision == current else " "
        print(f"{mark} {revision}  (after {down or '-'})  {doc}")
    return EXIT_OK
