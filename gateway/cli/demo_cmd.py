"""``x12gw demo [--keep DIR]``: run the gateway end to end against the built-in clearinghouse simulator."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from gateway.runtime.logsetup import configure_logging
from payersim.demo import run_demo


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="run sample requests end to end against a local clearinghouse simulator")
    p.add_argument(
        "--keep", type=Path, help="use (and keep) this workspace folder instead of a temporary one"
    )
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for every answer")
    p.add_argument("--verbose", action="store_true", help="show the gateway's log lines")
    p.add_argument(
        "--realtime",
        action="store_true",
        help="send the requests through the HTTP API and CAQH CORE real time (MIME and SOAP) instead",
    )
    p.add_argument(
        "--fhir",
        action="store_true",
        help="submit the Da Vinci PAS example bundles to the FHIR front door (278s over CORE real time)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    os.umask(0o077)  # every file and folder this process makes is owner-only (PHI)
    configure_logging(level="INFO" if args.verbose else "WARNING")
    if args.fhir:
        from payersim.demo_fhir import run_fhir_demo  # noqa: PLC0415 - only for --fhir

        return run_fhir_demo(keep=args.keep, timeout=args.timeout)
    if args.realtime:
        from payersim.demo_realtime import run_realtime_demo  # noqa: PLC0415 - only for --realtime

        return run_realtime_demo(keep=args.keep, timeout=args.timeout)
    return run_demo(keep=args.keep, timeout=args.timeout)
