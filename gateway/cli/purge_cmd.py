"""``x12gw purge [--older-than 7y] [--dry-run]``: apply the retention periods (``[retention]``).

See ``gateway.runtime.retention`` for what is removed and what is never touched.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from gateway.errors import ConfigError
from gateway.operators.session import os_user
from gateway.runtime.config import load_config
from gateway.runtime.durations import parse_period
from gateway.runtime.logsetup import configure_logging, get_logger
from gateway.runtime.retention import DEFAULT_BATCH, Cutoffs, purge
from gateway.runtime.storeopen import open_store


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("purge", help="delete data older than its retention period (see [retention])")
    p.add_argument("--config", help="gateway.toml (default: $X12GW_CONFIG or ./gateway.toml)")
    p.add_argument(
        "--older-than",
        metavar="PERIOD",
        help="one period for every kind (7y, 18m, 90d ...) instead of [retention]",
    )
    p.add_argument("--dry-run", action="store_true", help="count what would go; change nothing")
    p.add_argument(
        "--batch", type=int, default=DEFAULT_BATCH, help=f"rows per transaction (default {DEFAULT_BATCH})"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    configure_logging()
    if not 1 <= args.batch <= 10_000:
        raise ConfigError("--batch must be between 1 and 10000")
    older_than = parse_period(args.older_than, "--older-than") if args.older_than else None
    if args.older_than and older_than is None:
        raise ConfigError("--older-than never would purge nothing; leave it out to use [retention]")
    config = load_config(args.config)
    store = open_store(config, role="operator")
    try:
        cutoffs = Cutoffs.of(config, datetime.now(UTC), older_than)
        counts = purge(config, store, cutoffs, dry_run=args.dry_run, batch=args.batch)
        if not args.dry_run:
            with store.begin() as tx:
                tx.audit.record_reveal(os_user=os_user(), action="purge", subject="retention", detail=counts)
    finally:
        store.close()
    get_logger("x12gw.purge").info("purge finished", dry_run=args.dry_run, **counts)
    if args.json:
        json.dump({"dry_run": args.dry_run, "counts": counts}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        verb = "would remove" if args.dry_run else "removed"
        shown = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(counts.items()) if n) or "nothing"
        print(f"purge {verb}: {shown}")
    return 0
