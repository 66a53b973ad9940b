"""``x12gw``: the command line. Each subcommand lives in its own module and registers itself here.

Exit codes everywhere: 0 ok, 1 the input was rejected / nothing matched, 2 usage, configuration or
unreadable-input errors.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gateway.cli import (
    auth_cmd,
    build_cmd,
    claims_cmd,
    demo_cmd,
    log_cmd,
    map_cmd,
    nodes_cmd,
    ops_cmd,
    parse_cmd,
    precert_cmd,
    run_cmd,
    sim_cmd,
    status_cmd,
    validate_cmd,
)
from transactions.errors import X12GatewayError

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="x12gw", description="X12 5010 pre-certification gateway")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (
        build_cmd,
        parse_cmd,
        validate_cmd,
        map_cmd,
        run_cmd,
        sim_cmd,
        demo_cmd,
        log_cmd,
        auth_cmd,
        ops_cmd,
        precert_cmd,
        claims_cmd,
        nodes_cmd,
        status_cmd,
    ):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except X12GatewayError as exc:
        print(f"x12gw: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
