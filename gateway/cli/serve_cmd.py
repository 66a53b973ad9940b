"""``x12gw serve [--config FILE] [--listen HOST:PORT]``: the HTTP process (console, health, metrics).

The server does not migrate the database (``/readyz`` says so when the schema is behind); it reads
what the run loop writes and, for the console's reprocess/resend, moves rows exactly as the CLI does.
"""

from __future__ import annotations

import argparse
import logging

import structlog
import uvicorn

from gateway.errors import ConfigError
from gateway.runtime.config import load_config
from gateway.runtime.logsetup import configure_logging
from gateway.runtime.storeopen import open_store
from gateway.web.app import create_app

DEFAULT_LISTEN = "127.0.0.1:8080"


def listen_arg(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError("--listen takes HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]") or "127.0.0.1", int(port)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="serve the web console, /healthz, /readyz and /metrics over HTTP")
    p.add_argument("--config", help="gateway.toml (default: $X12GW_CONFIG or ./gateway.toml)")
    p.add_argument(
        "--listen",
        type=listen_arg,
        default=listen_arg(DEFAULT_LISTEN),
        metavar="HOST:PORT",
        help=f"address to listen on (default {DEFAULT_LISTEN})",
    )
    p.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", help="... and this private key (PEM)")
    p.add_argument(
        "--secure-cookies",
        action="store_true",
        help="mark cookies Secure on plain HTTP too (when a TLS proxy sits in front)",
    )
    p.add_argument("--json-logs", action="store_true", help="JSON log lines even on a terminal")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    configure_logging(json=True if args.json_logs else None)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # /readyz reads the revision on every probe
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ConfigError("--tls-cert and --tls-key go together")
    config = load_config(args.config)
    store = open_store(config, role="serve")
    host, port = args.listen
    app = create_app(config, store, secure_cookies=args.secure_cookies)
    log = structlog.get_logger("x12gw.serve")
    log.info("serving", host=host, port=port, tls=bool(args.tls_cert))
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,  # paths carry tracking numbers and search terms; the app logs what matters
            ssl_certfile=args.tls_cert,
            ssl_keyfile=args.tls_key,
            server_header=False,
        )
    )
    try:
        server.run()
    finally:
        store.close()
    return 0
