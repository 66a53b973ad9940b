"""Wrap 271 and 278 response bodies into whole interchanges (the payer/clearinghouse direction).

The mirror of :mod:`transactions.outbound`: 271s go in an HB group, 278 responses in an HI group, one
transaction set per answered request (one patient per 271, as in real time; a batch interchange
simply holds many sets). Control numbers and the timestamp are parameters; ``header.timestamp`` also
fills each BHT04/BHT05.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from payersim.build271 import VERSION_271, build_271_body
from payersim.build278resp import VERSION_278_RESPONSE, build_278_response_body
from transactions.decisions import EligibilityAnswer, ReviewDecision
from transactions.envelope_writer import (
    InterchangeHeader,
    TransactionBody,
    build_interchange,
    functional_groups,
)
from transactions.models import EligibilityInquiry, ServiceReviewRequest
from transactions.outbound import OutboundBatch
from transactions.segment import Delimiters


@dataclass(frozen=True, slots=True)
class EligibilityResponse:
    """One 271 to build: the inquiry it answers, the answer, and the payer's own trace (optional)."""

    inquiry: EligibilityInquiry
    answer: EligibilityAnswer
    payer_trace: str | None = None


@dataclass(frozen=True, slots=True)
class ReviewResponse:
    """One 278 response to build: the request it answers, the decision, the UMO's own trace (optional)."""

    request: ServiceReviewRequest
    decision: ReviewDecision
    payer_trace: str | None = None


Response = EligibilityResponse | ReviewResponse


def response_body(response: Response, header: InterchangeHeader, number: int) -> TransactionBody:
    """The ST..SE content of one response, created at ``header.timestamp``."""
    when = header.timestamp
    if isinstance(response, EligibilityResponse):
        body = build_271_body(response.inquiry, response.answer, when, response.payer_trace)
        return TransactionBody("271", number, VERSION_271, body)
    body = build_278_response_body(response.request, response.decision, when, response.payer_trace)
    return TransactionBody("278", number, VERSION_278_RESPONSE, body)


def build_response_interchange(
    responses: Sequence[Response],
    header: InterchangeHeader,
    *,
    application_sender: str,
    application_receiver: str,
    group_controls: Sequence[int],
    set_controls: Sequence[int],
    delimiters: Delimiters | None = None,
    newline: str = "",
) -> OutboundBatch:
    """One interchange with a group per response type (HB first, then HI); ``group_controls`` gives one
    number per type present, ``set_controls`` one ST02 per response in order."""
    if len(set_controls) != len(responses):
        raise ValueError("one ST control number per response")
    bodies: dict[str, list[TransactionBody]] = {"HB": [], "HI": []}
    assigned: list[tuple[str, int]] = []
    for response, number in zip(responses, set_controls, strict=True):
        kind = "HB" if isinstance(response, EligibilityResponse) else "HI"
        bodies[kind].append(response_body(response, header, number))
        trace = (
            response.inquiry.trace_number
            if isinstance(response, EligibilityResponse)
            else response.request.trace_number
        )
        assigned.append((trace, number))
    groups = functional_groups(
        bodies,
        {"HB": VERSION_271, "HI": VERSION_278_RESPONSE},
        group_controls,
        application_sender=application_sender,
        application_receiver=application_receiver,
        timestamp=header.timestamp,
    )
    data = build_interchange(header, groups, delimiters or Delimiters(), newline=newline)
    return OutboundBatch(
        data, header.control_number, tuple(g.control_number for g, _ in groups), tuple(assigned)
    )
