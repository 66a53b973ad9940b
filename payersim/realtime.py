"""The payer's real-time answer to one interchange (CAQH CORE real time), from the same scenarios.

Where the SFTP simulator writes a 999 for every group and answers later, real time answers at once
with exactly one interchange: a TA1 when the interchange is rejected, a 999 when a functional group
is rejected (CORE: a 999 goes back in real time only then), otherwise the 271 or the 278 response.
``pend_then_approve`` answers the pend (A4) only; the later approval is a batch-world event. A rule's
``delay_seconds`` delays the HTTP answer (a payer slower than the 20 s budget, per member).
Duplicate ISA13s are not refused here: a CORE retransmission resends the same interchange.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from payersim.build_responses import EligibilityResponse, Response, ReviewResponse, build_response_interchange
from payersim.scenario import Outcome, Review, Scenario, certifies, eligibility_answer, review_decision
from payersim.simulator import (
    FORCED_TA1_NOTE,
    Request,
    _Address,
    _address,
    _delimiters,
    _first_gs,
    _forced_finding,
    _read_request,
    utc_now,
)
from payersim.simulator import ClearinghouseSimulator as _Sftp
from transactions.acks import AckEnvelope, build_999, build_ta1
from transactions.envelope_writer import InterchangeHeader
from transactions.findings import TA1_CODES, Finding, InterchangeReport, Ta1Verdict
from transactions.models import EligibilityInquiry
from transactions.validation import Options, validate_detailed


@dataclass(frozen=True)
class Answer:
    """What the payer answers: ``kind`` is 271, 278resp, 999 or TA1; ``data`` the interchange."""

    kind: str
    data: bytes
    delay_seconds: float = 0.0  # the scenario's delay_seconds: how long the payer "thinks"


class NotX12Error(ValueError):
    """The payload is not an X12 interchange at all (the envelope error PayloadRejected)."""


class RealtimeResponder:
    """Answers one interchange at a time; control numbers and traces from in-memory counters."""

    def __init__(self, scenario: Scenario, clock: Callable[[], datetime] = utc_now) -> None:
        self.scenario = scenario
        self._clock = clock
        self._lock = threading.Lock()
        self._counters = {name: itertools.count(1) for name in ("ic", "gs", "st", "trace", "cert", "ref")}

    def _take(self, name: str) -> int:
        with self._lock:
            return next(self._counters[name])

    def answer(self, data: bytes) -> Answer:
        validation = validate_detailed(data, Options())
        report = validation.report
        if report.fatal is not None or len(report.interchanges) != 1:
            raise NotX12Error("the payload is not one X12 interchange")
        ic = report.interchanges[0]
        address = _address(ic, _first_gs(data).get(ic.offset), _delimiters(data))
        if ic.rejected:
            return self._ta1(ic, address)
        segments = {id(v.report): v.segments for v in validation.sets}
        responses: list[Response] = []
        delay = 0.0
        forced: dict[int, Finding] = {}
        for group in ic.groups:
            for s in group.sets:
                request = (
                    _read_request(s, segments.get(id(s))) if s.accepted and group.ack_code != "R" else None
                )
                if request is None:
                    continue
                outcome = self.scenario.outcome_for(request)
                if outcome.ack == "ta1_reject":
                    verdict = Ta1Verdict("R", FORCED_TA1_NOTE, TA1_CODES[FORCED_TA1_NOTE])
                    return self._ta1(replace(ic, ta1=verdict), address)
                if outcome.ack == "reject":
                    forced[id(s)] = _forced_finding(segments.get(id(s), ()), s.set_id)
                    continue
                responses.append(self._response(request, outcome))
                delay = max(delay, outcome.delay_seconds)
        groups = tuple(_Sftp._force(g, forced) for g in ic.groups)  # the SFTP side's forced rejection
        if any(g.ack_code == "R" for g in groups) or not responses:
            return self._999(replace(ic, groups=groups), address)
        return replace(self._business(responses, address), delay_seconds=delay)

    def answer_batch(self, data: bytes) -> list[Answer]:
        """CORE batch mode: a 999 for every functional group (accepted or not), then the answers; a TA1
        alone when the interchange is rejected."""
        first = self.answer(data)
        if first.kind in ("TA1", "999"):
            return [first]
        validation = validate_detailed(data, Options())
        ic = validation.report.interchanges[0]
        address = _address(ic, _first_gs(data).get(ic.offset), _delimiters(data))
        return [self._999(ic, address), replace(first, delay_seconds=0.0)]

    def _response(self, request: Request, outcome: Outcome) -> Response:
        today = self._clock().date()
        trace = f"SIMRT{self._take('trace'):07d}"
        if isinstance(request, EligibilityInquiry):
            answer = eligibility_answer(self.scenario, request, outcome.eligibility, today)
            return EligibilityResponse(request, answer, trace)
        step: Review = "pend" if outcome.review == "pend_then_approve" else outcome.review
        reference = f"SIMRTREF{self._take('ref'):06d}" if step == "pend" else None
        cert = f"SIMRT{self._take('cert'):06d}" if certifies(step) else None
        decision = review_decision(request, step, today, certification=cert, reference=reference)
        return ReviewResponse(request, decision, trace)

    def _business(self, responses: list[Response], a: _Address) -> Answer:
        when = self._clock()
        header = InterchangeHeader(
            a.our_qualifier, a.our_id, a.their_qualifier, a.their_id, self._take("ic"), when, usage=a.usage
        )
        kinds = {type(r) for r in responses}
        batch = build_response_interchange(
            responses,
            header,
            application_sender=a.app_sender,
            application_receiver=a.app_receiver,
            group_controls=[self._take("gs") for _ in kinds],
            set_controls=[self._take("st") for _ in responses],
            delimiters=a.delimiters,
        )
        kind = "271" if isinstance(responses[0], EligibilityResponse) else "278resp"
        return Answer(kind, batch.data)

    def _envelope(self, a: _Address) -> AckEnvelope:
        return AckEnvelope(
            a.our_qualifier, a.our_id, self._take("ic"), self._take("gs"), self._clock(), a.usage
        )

    def _ta1(self, ic: InterchangeReport, a: _Address) -> Answer:
        data = build_ta1(ic, self._envelope(a), a.delimiters)
        if data is None:
            raise NotX12Error("the interchange cannot be acknowledged")
        return Answer("TA1", data)

    def _999(self, ic: InterchangeReport, a: _Address) -> Answer:
        data = build_999(ic, self._envelope(a), self._take("st"), a.delimiters)
        if data is None:
            raise NotX12Error("the interchange cannot be acknowledged")
        return Answer("999", data)
