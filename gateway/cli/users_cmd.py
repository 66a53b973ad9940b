"""``x12gw users add NAME --role viewer|operator | remove NAME | list``: the console's local users.

The password is read from standard input when it is not a terminal (one line, for scripts and
configuration management), else prompted twice without echo. Adding an existing user replaces its
role and password and logs out its sessions.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from contextlib import closing

from gateway.operators.cli import EXIT_NONE, EXIT_OK, EXIT_USAGE
from gateway.operators.formatting import write_json
from gateway.runtime.config import load_config
from gateway.runtime.storeopen import open_store
from gateway.store import Store
from gateway.web import users


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("users", help="console users: add, remove, list")
    cmds = p.add_subparsers(dest="users_command", required=True, metavar="SUBCOMMAND")
    add = cmds.add_parser("add", help="add a user, or set an existing user's role and password")
    add.add_argument("name")
    add.add_argument("--role", choices=users.ROLES, required=True)
    add.set_defaults(func=run_add)
    remove = cmds.add_parser("remove", help="remove a user and end its sessions")
    remove.add_argument("name")
    remove.set_defaults(func=run_remove)
    listing = cmds.add_parser("list", help="the users and their roles")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=run_list)
    for q in (add, remove, listing):
        q.add_argument("--config", help="gateway.toml (default: $X12GW_CONFIG or ./gateway.toml)")


def read_password() -> str | None:
    """The new password: one line of standard input, or prompted twice on a terminal."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        print("x12gw: error: the passwords differ", file=sys.stderr)
        return None
    return first


def _store(args: argparse.Namespace) -> Store:
    return open_store(load_config(args.config), role="operator")


def run_add(args: argparse.Namespace) -> int:
    password = read_password()
    if password is None:
        return EXIT_USAGE
    users.check_new_user(args.name, args.role, password)
    with closing(_store(args)) as store:
        user = users.add_user(store, args.name, args.role, password)
    print(f"user {user.name} ({user.role}) saved")
    return EXIT_OK


def run_remove(args: argparse.Namespace) -> int:
    with closing(_store(args)) as store:
        removed = users.remove_user(store, args.name)
    print(f"user {args.name} removed" if removed else f"there is no user {args.name}")
    return EXIT_OK if removed else EXIT_NONE


def run_list(args: argparse.Namespace) -> int:
    with closing(_store(args)) as store:
        found = users.list_users(store)
    if args.json:
        write_json(
            {"users": [{"name": u.name, "role": u.role, "created_at": u.created_at} for u in found]},
            sys.stdout,
        )
    else:
        for u in found:
            print(f"{u.name:<24} {u.role:<9} since {u.created_at:%Y-%m-%d}")
        if not found:
            print("no users")
    return EXIT_OK if found else EXIT_NONE
