"""``x12gw keys rotate``: new payload and/or member-hash keys, the store re-encrypted in batches.

See ``gateway.runtime.rotation`` for the procedure (stop the gateway first; resumable after a crash).
"""

from __future__ import annotations

import argparse

from gateway.errors import ConfigError
from gateway.runtime.config import load_config
from gateway.runtime.logsetup import configure_logging, get_logger
from gateway.runtime.rotation import DEFAULT_BATCH, rotate


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="the data keys: rotate")
    cmds = keys.add_subparsers(dest="keys_command", required=True, metavar="SUBCOMMAND")
    p = cmds.add_parser("rotate", help="re-encrypt / re-hash the store under new keys (gateway stopped)")
    p.add_argument("--config", help="gateway.toml (default: $X12GW_CONFIG or ./gateway.toml)")
    p.add_argument("--payload", action="store_true", help="rotate the payload key only")
    p.add_argument("--member", action="store_true", help="rotate the member-hash key only")
    p.add_argument(
        "--batch", type=int, default=DEFAULT_BATCH, help=f"rows per transaction (default {DEFAULT_BATCH})"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    configure_logging()
    if not 1 <= args.batch <= 10_000:
        raise ConfigError("--batch must be between 1 and 10000")
    which = {w for w, on in (("payload", args.payload), ("member", args.member)) if on} or {
        "payload",
        "member",
    }
    config = load_config(args.config)
    counts = rotate(config, which=which, batch=args.batch)
    get_logger("x12gw.keys").info(
        "key rotation finished", **{k.replace(".", "_"): v for k, v in counts.items()}
    )
    for column, n in counts.items():
        print(f"{column}: {n} rows rewritten")
    print("rotation complete" if counts else "rotation complete (key files swapped)")
    return 0
