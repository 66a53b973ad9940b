"""``x12gw serve [--config FILE] [--listen HOST:PORT]``: the HTTP process (console, health, metrics).

The server does not migrate the database (``/readyz`` says so when the schema is behind); it reads
what the run loop writes and, for the console's reprocess/resend, moves rows exactly as the CLI does.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import ssl
from typing import Any

import structlog
import uvicorn
from starlette.types import ASGIApp
from uvicorn.supervisors import Multiprocess

from gateway.errors import ConfigError
from gateway.runtime import gcpolicy, switching
from gateway.runtime.config import CONFIG_ENV, GatewayConfig, load_config
from gateway.runtime.logsetup import configure_from_settings, configure_logging
from gateway.runtime.storeopen import open_store
from gateway.web.app import WORKER_SETTINGS_ENV, create_app
from gateway.web.tls import ClientCertH11Protocol

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
        "--client-ca",
        help="accept client certificates signed by this CA (PEM) for the API's mutual TLS "
        "(a certificate it did not sign is refused in the handshake)",
    )
    p.add_argument(
        "--secure-cookies",
        action="store_true",
        help="mark cookies Secure on plain HTTP too (when a TLS proxy sits in front)",
    )
    p.add_argument("--json-logs", action="store_true", help="JSON log lines even on a terminal")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="serve from N processes (each with its own store connection), to use several cores",
    )
    p.set_defaults(func=run)


def server_config(
    app: ASGIApp | str,
    host: str,
    port: int,
    *,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    client_ca: str | None = None,
) -> uvicorn.Config:
    """uvicorn's configuration: no access log (paths carry tracking numbers and search terms; the app
    logs what matters, masked), and with ``client_ca`` client certificates verified in the handshake
    (optional, so API-key clients and browsers still connect) and their subject passed to the app."""
    extra: dict[str, Any] = {}
    if client_ca:
        extra = {"ssl_ca_certs": client_ca, "ssl_cert_reqs": ssl.CERT_OPTIONAL, "http": ClientCertH11Protocol}
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
        server_header=False,
        **extra,
    )


def run(args: argparse.Namespace) -> int:
    configure_logging(json=True if args.json_logs else None)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # /readyz reads the revision on every probe
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ConfigError("--tls-cert and --tls-key go together")
    if args.client_ca and not args.tls_cert:
        raise ConfigError("--client-ca needs --tls-cert and --tls-key")
    config = load_config(args.config)
    configure_from_settings(config.gateway.log_format, config.gateway.log_level, json_logs=args.json_logs)
    if args.workers > 1:
        return _run_workers(args, config)
    store = open_store(config, role="serve")
    host, port = args.listen
    app = create_app(config, store, secure_cookies=args.secure_cookies)
    gcpolicy.apply()  # maps and rules first: real-time answers and the run loop use them all day
    switching.apply()  # shorter waits for the interpreter lock (``gateway.runtime.switching``)
    log = structlog.get_logger("x12gw.serve")
    log.info("serving", host=host, port=port, tls=bool(args.tls_cert))
    server = uvicorn.Server(
        server_config(app, host, port, tls_cert=args.tls_cert, tls_key=args.tls_key, client_ca=args.client_ca)
    )
    try:
        server.run()
    finally:
        store.close()
    return 0


def _run_workers(args: argparse.Namespace, config: GatewayConfig) -> int:
    """Several uvicorn worker processes on one socket; each builds the app itself
    (:func:`gateway.web.app.app_from_environment`) from the same configuration file."""
    if config.source is None:
        raise ConfigError("--workers needs a configuration file")
    open_store(config, role="serve").close()  # the keys and database are checked once, up front
    os.environ[CONFIG_ENV] = str(config.source)
    os.environ[WORKER_SETTINGS_ENV] = ",".join(
        name for name, on in (("secure-cookies", args.secure_cookies), ("json-logs", args.json_logs)) if on
    )
    host, port = args.listen
    settings = server_config(
        "gateway.web.app:app_from_environment",
        host,
        port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        client_ca=args.client_ca,
    )
    settings.factory, settings.workers = True, args.workers
    structlog.get_logger("x12gw.serve").info("serving", host=host, port=port, workers=args.workers)
    Multiprocess(settings, sockets=[tcp_listener(settings.bind_socket())]).run()
    return 0


def tcp_listener(sock: socket.socket) -> socket.socket:
    """``sock`` as a socket object that says it is TCP (``proto`` 6), so every worker's accepted
    connections get ``TCP_NODELAY``.

    Why: asyncio turns Nagle's algorithm off only on sockets whose ``proto`` is ``IPPROTO_TCP``, and
    uvicorn's ``bind_socket`` makes its socket with ``proto`` 0; the workers' connections (which take
    their listener's ``proto``) then kept Nagle on. A response goes out as two writes (headers, then
    body), so the body waited for the client's delayed acknowledgement of the headers: about 40 ms
    added to every API call with ``--workers 2`` (``bench/bench_api.py``: overhead p50 23 ms with one
    process, 68 ms with two). A single ``serve`` process lets asyncio bind its own socket and never
    had this. Unix sockets and sockets already marked TCP are returned as they are."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
        return sock
    if sock.proto == socket.IPPROTO_TCP:
        return sock
    return socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
