"""``x12gw``: the command line. Each subcommand lives in its own module and registers itself here.

Exit codes everywhere: 0 ok, 1 the input was rejected / nothing matched, 2 usage, configuration or
unreadable-input errors.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from transactions.errors import X12GatewayError

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2

# Every top-level command: the module that registers it and its one-line help. Modules are imported
# only when their command runs, so ``--help``, ``--version`` and light commands such as ``parse`` do not
# pay ~2 s of CPU importing pyx12, SQLAlchemy, paramiko and lxml (tests pin the help texts to the
# modules' own, so the two cannot drift apart).
COMMANDS: dict[str, tuple[str, str]] = {
    "build": ("build_cmd", "build a 270 or 278 interchange from JSON requests"),
    "parse": ("parse_cmd", "show the envelope structure and segments of an X12 file"),
    "validate": ("validate_cmd", "validate X12 files against the 5010 implementation guides"),
    "map": ("map_cmd", "map 271/278 responses into eligibility results and authorization records"),
    "run": ("run_cmd", "run the gateway: inbox -> clearinghouse -> outbox"),
    "sim": ("sim_cmd", "run the clearinghouse simulator (an SFTP server answering 270/278)"),
    "demo": ("demo_cmd", "run sample requests end to end against a local clearinghouse simulator"),
    "log": ("log_cmd", "the transaction log: list, show, search, tail, export"),
    "auth": ("auth_cmd", "prior authorizations: list, show"),
    "acks": ("ops_cmd", "acknowledgments: overdue"),
    "stats": ("ops_cmd", "counts by type and status, acceptance rate, turnaround per payer"),
    "reprocess": ("ops_cmd", "send a quarantined inbox or inbound file through its stage again"),
    "resend": ("ops_cmd", "a rejected, invalid or overdue request goes out again in the next batch"),
    "audit": ("ops_cmd", "the PHI audit log: list"),
    "precert": ("precert_cmd", "pre-certification rules: does a service need prior authorization?"),
    "claims": ("claims_cmd", "check claims against authorizations before billing"),
    "nodes": ("nodes_cmd", "gateway nodes sharing the database: live or not, leases held, last seen"),
    "serve": ("serve_cmd", "serve the web console, /healthz, /readyz and /metrics over HTTP"),
    "users": ("users_cmd", "console users: add, remove, list"),
    "api-keys": ("api_keys_cmd", "HTTP API clients: add (prints the key once), list, revoke"),
    "db": ("db_cmd", "database schema: upgrade, current, history"),
    "keys": ("keys_cmd", "the data keys: rotate"),
    "purge": ("purge_cmd", "delete data older than its retention period (see [retention])"),
    "status": ("status_cmd", "health at a glance; exit 0 ok, 1 warning, 2 critical"),
}


class _VersionAction(argparse.Action):
    """``--version``: the installed distribution's version, looked up only when asked for."""

    def __call__(self, parser: argparse.ArgumentParser, *_args: object, **_kwargs: object) -> None:
        from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415 - only when asked

        try:
            found = version("x12-gateway")
        except PackageNotFoundError:
            found = "unknown (not installed)"
        print(f"{parser.prog} {found}")
        parser.exit()


def make_parser(command: str | None = None, *, everything: bool = True) -> argparse.ArgumentParser:
    """The CLI's parser. With ``everything`` every command module is imported and registered; otherwise
    only ``command``'s module is, and the other commands appear by name and help (enough for ``--help``)."""
    parser = argparse.ArgumentParser(prog="x12gw", description="X12 5010 pre-certification gateway")
    parser.add_argument("--version", action=_VersionAction, nargs=0, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if everything:
        wanted = list(dict.fromkeys(module for module, _ in COMMANDS.values()))
    else:
        wanted = [COMMANDS[command][0]] if command in COMMANDS else []
    for name in wanted:
        importlib.import_module(f"gateway.cli.{name}").register(sub)
    for name, (_, text) in COMMANDS.items():
        if name not in sub.choices:
            sub.add_parser(name, help=text)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The command named on the line: the first word that is not an option (top-level options take no
    values)."""
    return next((a for a in argv if not a.startswith("-")), None)


PROFILE_ENV = "X12GW_PROFILE"


def _profiled(args: argparse.Namespace) -> int:
    """Run the command under cProfile and write its stats to the file ``$X12GW_PROFILE`` names (for
    ``bench/bench_e2e.py --profile``: where a long run's time goes), even when the command fails."""
    import cProfile  # noqa: PLC0415 - only when asked for

    profile = cProfile.Profile()
    try:
        result: int = profile.runcall(args.func, args)
    finally:
        profile.dump_stats(os.environ[PROFILE_ENV])
    return result


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    parser = make_parser(_command(words), everything=False)
    args = parser.parse_args(words)
    try:
        code: int = _profiled(args) if os.environ.get(PROFILE_ENV) else args.func(args)
    except X12GatewayError as exc:
        print(f"x12gw: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
