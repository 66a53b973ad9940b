"""``x12gw build 270|278 REQUEST.json [-o FILE]``: JSON request(s) to one X12 interchange."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from transactions.envelope_writer import InterchangeHeader
from transactions.errors import RequestError
from transactions.models import EligibilityInquiry
from transactions.outbound import Request, build_request_interchange
from transactions.requests_json import parse_request_document


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("build", help="build a 270 or 278 interchange from JSON requests")
    p.add_argument("kind", choices=["270", "278"])
    p.add_argument("request", type=Path, help="JSON file: one request, a list, or {'requests': [...]}")
    p.add_argument("-o", "--output", type=Path, help="write here instead of standard output")
    p.add_argument("--sender", default="X12GATEWAY", help="ISA06/GS02 sender id (qualifier ZZ)")
    p.add_argument("--receiver", default="CLEARINGHOUSE", help="ISA08/GS03 receiver id (qualifier ZZ)")
    p.add_argument("--control-number", type=int, default=1, help="ISA13, GS06 and first ST02")
    p.add_argument("--usage", choices=["P", "T"], default="T", help="ISA15 usage indicator")
    p.add_argument("--newline", action="store_true", help="a newline after each segment terminator")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    parsed = parse_request_document(args.request.read_bytes())
    errors = [r for r in parsed if isinstance(r, RequestError)]
    if errors:
        for e in errors:
            print(f"x12gw: invalid request: {e}", file=sys.stderr)
        return 1
    requests: list[Request] = [r for r in parsed if not isinstance(r, RequestError)]
    wanted = EligibilityInquiry if args.kind == "270" else None
    if any(isinstance(r, EligibilityInquiry) != (wanted is not None) for r in requests):
        print(f"x12gw: {args.request} holds requests that are not {args.kind}", file=sys.stderr)
        return 1
    now = datetime.now(UTC)
    header = InterchangeHeader(
        "ZZ", args.sender, "ZZ", args.receiver, args.control_number, now, usage=args.usage
    )
    batch = build_request_interchange(
        requests,
        header,
        application_sender=args.sender,
        application_receiver=args.receiver,
        group_controls=[args.control_number],
        set_controls=[args.control_number + i for i in range(len(requests))],
        newline="\n" if args.newline else "",
    )
    if args.output:
        args.output.write_bytes(batch.data)
    else:
        sys.stdout.buffer.write(batch.data)
    return 0
