"""``x12gw run [--once] [--config FILE]``: the long-running gateway service loop.

``--once`` runs one cycle and exits 1 when anything in it failed (a partner exchange, a stage), so a
cron job or systemd timer sees the failure; its ``cycle`` log line then has ``"errors"`` > 0.
"""

from __future__ import annotations

import argparse
import os

from gateway.runtime import gcpolicy
from gateway.runtime.config import load_config
from gateway.runtime.logsetup import configure_from_settings, configure_logging
from gateway.runtime.runner import Gateway, open_context

EXIT_OK, EXIT_FAILED = 0, 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="run the gateway: inbox -> clearinghouse -> outbox")
    p.add_argument("--config", help="gateway.toml (default: $X12GW_CONFIG or ./gateway.toml)")
    p.add_argument("--once", action="store_true", help="run one full cycle and exit")
    p.add_argument(
        "--interval", type=float, help="seconds between idle cycles (default: the partners' poll_seconds)"
    )
    p.add_argument("--json-logs", action="store_true", help="JSON log lines even on a terminal")
    p.add_argument(
        "--upgrade",
        action="store_true",
        help="migrate an older database schema first (without it, run refuses one; see README: upgrades)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    os.umask(0o077)  # every file and folder this process makes is owner-only (PHI)
    configure_logging(json=True if args.json_logs else None)
    config = load_config(args.config)
    configure_from_settings(config.gateway.log_format, config.gateway.log_level, json_logs=args.json_logs)
    config.preflight()
    ctx = open_context(config, allow_upgrade=args.upgrade)
    gcpolicy.apply()  # maps, rules and configuration loaded: out of every collection from now on
    try:
        summary = Gateway(ctx).run(once=args.once, interval=args.interval)
    finally:
        ctx.store.close()
    return EXIT_FAILED if args.once and summary.errors else EXIT_OK
