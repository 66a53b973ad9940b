"""Assemble whole interchanges of requests: 270s in an HS group, 278s in an HI group."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from transactions.build270 import VERSION_270, build_270_body
from transactions.build278 import VERSION_278, build_278_body
from transactions.envelope_writer import (
    InterchangeHeader,
    TransactionBody,
    build_interchange,
    functional_groups,
)
from transactions.models import EligibilityInquiry, ServiceReviewRequest
from transactions.segment import Delimiters

Request = EligibilityInquiry | ServiceReviewRequest


@dataclass(frozen=True, slots=True)
class OutboundBatch:
    """The bytes of one interchange and which control numbers each request got."""

    data: bytes
    interchange_control: int
    group_controls: tuple[int, ...]
    set_controls: tuple[tuple[str, int], ...]  # (trace number, ST02) per request, in order


def build_request_interchange(
    requests: Sequence[Request],
    header: InterchangeHeader,
    *,
    application_sender: str,
    application_receiver: str,
    group_controls: Sequence[int],
    set_controls: Sequence[int],
    delimiters: Delimiters | None = None,
    newline: str = "",
) -> OutboundBatch:
    """One interchange with a group per request type; ``group_controls`` gives one number per type
    present (270 group first), ``set_controls`` one ST02 per request in order."""
    if len(set_controls) != len(requests):
        raise ValueError("one ST control number per request")
    d = delimiters or Delimiters()
    bodies: dict[str, list[TransactionBody]] = {"HS": [], "HI": []}
    assigned: list[tuple[str, int]] = []
    for req, number in zip(requests, set_controls, strict=True):
        if isinstance(req, EligibilityInquiry):
            bodies["HS"].append(
                TransactionBody("270", number, VERSION_270, build_270_body(req, header.timestamp))
            )
        else:
            bodies["HI"].append(
                TransactionBody("278", number, VERSION_278, build_278_body(req, header.timestamp))
            )
        assigned.append((req.trace_number, number))
    groups = functional_groups(
        bodies,
        {"HS": VERSION_270, "HI": VERSION_278},
        group_controls,
        application_sender=application_sender,
        application_receiver=application_receiver,
        timestamp=header.timestamp,
    )
    data = build_interchange(header, groups, d, newline=newline)
    return OutboundBatch(
        data, header.control_number, tuple(g.control_number for g, _ in groups), tuple(assigned)
    )
