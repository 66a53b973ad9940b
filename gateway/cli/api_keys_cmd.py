"""``x12gw api-keys add NAME [--scope S ...] [--cert-subject DN] | list | revoke NAME``: API clients.

``add`` prints a new client's key once (the store keeps only its SHA-256); with ``--cert-subject`` the
client authenticates by mutual TLS instead and gets no key. Without ``--scope`` a client may use every
scope. ``revoke`` ends a client's access at once (its row stays, for the record).
"""

from __future__ import annotations

import argparse
import sys
from contextlib import closing

from gateway.operators.cli import EXIT_NONE, EXIT_OK
from gateway.operators.formatting import write_json
from gateway.runtime.config import load_config
from gateway.runtime.storeopen import open_store
from gateway.store import Store
from gateway.web import apiauth


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("api-keys", help="HTTP API clients: add (prints the key once), list, revoke")
    cmds = p.add_subparsers(dest="api_keys_command", required=True, metavar="SUBCOMMAND")
    add = cmds.add_parser("add", help="a new API client; its key is printed once")
    add.add_argument("name")
    add.add_argument(
        "--scope",
        action="append",
        choices=apiauth.SCOPES,
        help="what the client may do (repeat; default: every scope)",
    )
    add.add_argument(
        "--cert-subject",
        metavar="DN",
        help="authenticate by this client certificate subject (mutual TLS, RFC 4514) instead of a key",
    )
    add.set_defaults(func=run_add)
    revoke = cmds.add_parser("revoke", help="revoke a client's key or certificate")
    revoke.add_argument("name")
    revoke.set_defaults(func=run_revoke)
    listing = cmds.add_parser("list", help="the API clients, their scopes and state")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=run_list)
    for q in (add, revoke, listing):
        q.add_argument("--config", help="gateway.toml (default: $X12GW_CONFIG or ./gateway.toml)")


def _store(args: argparse.Namespace) -> Store:
    return open_store(load_config(args.config), role="operator")


def run_add(args: argparse.Namespace) -> int:
    scopes = tuple(args.scope or apiauth.SCOPES)
    apiauth.check_new_client(args.name, scopes, args.cert_subject)
    with closing(_store(args)) as store:
        client, key = apiauth.add_client(store, args.name, scopes, cert_subject=args.cert_subject)
    print(f"API client {client.name} added; scopes: {' '.join(sorted(client.scopes))}")
    if key is not None:
        print("its key (shown only now; send it as 'Authorization: Bearer KEY'):")
        print(key)
    else:
        print(f"it authenticates by the client certificate {client.cert_subject}")
    return EXIT_OK


def run_revoke(args: argparse.Namespace) -> int:
    with closing(_store(args)) as store:
        revoked = apiauth.revoke_client(store, args.name)
    print(f"API client {args.name} revoked" if revoked else f"there is no live API client {args.name}")
    return EXIT_OK if revoked else EXIT_NONE


def run_list(args: argparse.Namespace) -> int:
    with closing(_store(args)) as store:
        found = apiauth.list_clients(store)
    if args.json:
        write_json({"clients": [_as_json(c) for c in found]}, sys.stdout)
    else:
        for c in found:
            how = f"key {c.key_hint}..." if c.key_hint else f"certificate {c.cert_subject}"
            state = f"revoked {c.revoked_at:%Y-%m-%d}" if c.revoked_at else f"since {c.created_at:%Y-%m-%d}"
            print(f"{c.name:<24} {state:<18} {' '.join(sorted(c.scopes))}  ({how})")
        if not found:
            print("no API clients")
    return EXIT_OK if found else EXIT_NONE


def _as_json(c: apiauth.ApiClient) -> dict[str, object]:
    return {
        "name": c.name,
        "scopes": sorted(c.scopes),
        "key_hint": c.key_hint,
        "cert_subject": c.cert_subject,
        "created_at": c.created_at,
        "revoked_at": c.revoked_at,
    }
