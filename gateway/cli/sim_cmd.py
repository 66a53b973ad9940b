"""``x12gw sim --root DIR``: run the clearinghouse simulator until SIGINT or SIGTERM.

Prints the listening port and the host key line (to pin in the gateway's partner configuration), then
answers uploads to ``DIR/inbound`` in ``DIR/outbound`` (see :mod:`payersim.simulator`). It also
serves CAQH CORE real time over HTTPS (both envelope styles, :mod:`payersim.core_server`) and prints
its URL, CA and client certificate, made once in ``DIR/.sim/pki`` (``--no-core`` leaves it out).
The host key is read from ``--host-key`` (default ``DIR/.sim/host_key``, which SFTP clients cannot
see); when the file does not exist a new ed25519 key is generated and saved there with mode 0600, so
the pin survives restarts.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from gateway.errors import ConfigError
from gateway.runtime.logsetup import configure_logging, register_secret
from gateway.transport.keys import ensure_key
from payersim.certs import make_pki
from payersim.core_server import CoreFaults, CoreServer, default_pki_folder
from payersim.scenario import Scenario
from payersim.simulator import STATE_DIR, ClearinghouseSimulator


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sim", help="run the clearinghouse simulator (an SFTP server answering 270/278)")
    p.add_argument("--root", type=Path, required=True, help="folder to serve (inbound/ and outbound/ inside)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port to listen on (default 0: any free port)")
    p.add_argument("--scenario", type=Path, help="scenario TOML (default: everything active and approved)")
    p.add_argument(
        "--host-key",
        type=Path,
        help=f"server private key (default ROOT/{STATE_DIR}/host_key; made if absent)",
    )
    p.add_argument(
        "--authorized-key",
        type=Path,
        action="append",
        default=[],
        metavar="FILE.pub",
        help="OpenSSH public key file(s) allowed to log in (repeatable)",
    )
    p.add_argument("--password-env", metavar="VAR", help="allow password login with the value of $VAR")
    p.add_argument("--username", default="x12gw", help="login name (default x12gw)")
    _core_arguments(p)
    p.set_defaults(func=run)


def _core_arguments(p: argparse.ArgumentParser) -> None:
    core = p.add_argument_group("CAQH CORE real time (HTTPS)")
    core.add_argument("--no-core", action="store_true", help="do not serve CORE real time")
    core.add_argument("--core-port", type=int, default=0, help="HTTPS port (default 0: any free port)")
    core.add_argument(
        "--core-auth",
        choices=("mtls", "basic"),
        default="mtls",
        help="client certificate (default) or --username with the password of --password-env",
    )
    core.add_argument("--core-latency", type=float, default=0.0, metavar="SECONDS", help="delay every answer")
    for fault, what in (
        ("5xx", "answer HTTP 503"),
        ("busy", "answer Receiver Busy"),
        ("malformed", "send a cut-off envelope"),
        ("checksum", "send a wrong checksum"),
    ):
        core.add_argument(
            f"--core-{fault}", type=int, default=0, metavar="N", help=f"the first N POSTs: {what}"
        )


def authorized_lines(files: list[Path]) -> list[str]:
    """Every public-key line of the given files (blank lines and # comments skipped)."""
    lines: list[str] = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"authorized key file {path} cannot be read ({exc.__class__.__name__})"
            ) from None
        stripped = (line.strip() for line in text.splitlines())
        lines += [line for line in stripped if line and not line.startswith("#")]
    return lines


def _password(var: str | None) -> str | None:
    if var is None:
        return None
    value = os.environ.get(var)
    if not value:
        raise ConfigError(f"--password-env {var}: the environment variable is not set")
    register_secret(value)
    return value


def run(args: argparse.Namespace) -> int:
    configure_logging()
    root: Path = args.root
    root.mkdir(parents=True, exist_ok=True)
    scenario = Scenario.load(args.scenario) if args.scenario else Scenario()
    key = ensure_key(args.host_key or root / STATE_DIR / "host_key")
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with ClearinghouseSimulator(
            root,
            scenario,
            host_key=key,
            authorized_keys=authorized_lines(args.authorized_key),
            password=_password(args.password_env),
            username=args.username,
            host=args.host,
            port=args.port,
        ) as sim:
            print(
                f"x12gw sim: serving {sim.root} on {sim.host}:{sim.port} as user {args.username}", flush=True
            )
            print(f"port: {sim.port}", flush=True)
            print(f"host-key: {sim.host_key_line}", flush=True)
            with _core_server(args, root, scenario):
                stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


@contextmanager
def _core_server(args: argparse.Namespace, root: Path, scenario: Scenario) -> Iterator[CoreServer | None]:
    """The CORE endpoint next to the SFTP server (its URL and certificates printed), or nothing."""
    if args.no_core:
        yield None
        return
    pki = make_pki(default_pki_folder(root))
    faults = CoreFaults(
        latency_seconds=args.core_latency,
        http_5xx=args.core_5xx,
        busy=args.core_busy,
        malformed=args.core_malformed,
        wrong_checksum=args.core_checksum,
    )
    password = _password(args.password_env) if args.core_auth == "basic" else None
    if args.core_auth == "basic" and password is None:
        raise ConfigError("--core-auth basic needs --password-env")
    server = CoreServer(
        scenario,
        pki=pki,
        auth=args.core_auth,
        username=args.username,
        password=password,
        host=args.host,
        port=args.core_port,
        faults=faults,
    )
    with server:
        print(f"core-url: {server.url}", flush=True)
        print(f"core-ca: {pki.ca_cert}", flush=True)
        print(f"core-client-cert: {pki.client_cert}", flush=True)
        print(f"core-client-key: {pki.client_key}", flush=True)
        yield server
