"""Build a 278 response (005010X217, BHT02 11) answering one :class:`ServiceReviewRequest`.

Layout mirrors the request: 2000A UMO (HL03 20) > 2000B requester (21) > 2000C subscriber (22)
[> 2000D dependent (23)] > 2000E patient event (EV) > 2000F service (SS, one per request line).
Correlation: BHT03 is the request's BHT03; every request TRN comes back at its level (2000E, and
2000F for line traces) with TRN01 2 and the other elements unchanged; the UMO may add its own TRN01 1.
The event's UM, dates, diagnoses and each line's SV1/SV2 and service date are echoed so the
requester can match them. The review outcome is HCR (HCR02 certification number, HCR03 reason);
when the request is rejected, AAA at the failing loop replaces HCR and the lower loops are not sent.
BHT06 is 19 ("further updates to follow") when anything is pended, else 18.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from payersim.build271 import (
    PAYER_TRACE_ASSIGNER,
    aaa_segments,
    demographics,
    per_segment,
    procedure_composite,
    trace_segments,
)
from transactions.build278 import VERSION_278, quantity_text
from transactions.common import HLCounter, d8, dtp, person_name, provider_segments
from transactions.decisions import CERTIFYING, DecisionError, LineDecision, ReviewDecision
from transactions.models import Attachment, Diagnosis, ServiceLine, ServiceReviewRequest
from transactions.segment import Segment, seg

VERSION_278_RESPONSE = VERSION_278
# HSD01 for an approved quantity, by the request line's unit (HSD has no "minutes": units it is).
_HSD_QUALIFIER = {"DA": "DY", "UN": "FL", "F2": "FL", "MJ": "FL"}


def _pwk(a: Attachment) -> Segment:
    if a.control_number:
        return seg("PWK", a.report_type, a.transmission, None, None, "AC", a.control_number)
    return seg("PWK", a.report_type, a.transmission)


def _diagnoses(dx: tuple[Diagnosis, ...]) -> Segment:
    """HI echo; ABJ (admitting) only where the guide allows it (HI02), ABF elsewhere."""
    values = [
        ("ABK" if i == 0 else ("ABJ" if d.admitting and i == 1 else "ABF"), d.x12_code)
        for i, d in enumerate(dx)
    ]
    return seg("HI", *values)


def _um(req: ServiceReviewRequest) -> Segment:
    facility = (req.facility_code, req.facility_code_qualifier)
    return seg(
        "UM",
        req.request_category,
        req.certification_type,
        req.service_type,
        facility,
        None,
        req.level_of_service,
    )


def _certification_refs(
    number: str | None, decision: ReviewDecision, admin: str | None, previous: str | None
) -> list[Segment]:
    """REF*NT then REF*BB: admin reference, previous authorization echo, or the certification number
    when this payer sends it there instead of HCR02 (``certification_in``)."""
    nt, bb = admin, previous
    if number and decision.certification_in == "REF_NT":
        nt = number
    elif number and decision.certification_in == "REF_BB":
        bb = number
    return [seg("REF", q, v) for q, v in (("NT", nt), ("BB", bb)) if v]


def _hcr(
    action: str, number: str | None, reason: str | None, opinion: str | None, decision: ReviewDecision
) -> Segment:
    return seg("HCR", action, number if decision.certification_in == "HCR02" else None, reason, opinion)


def _event_dates(req: ServiceReviewRequest, decision: ReviewDecision, created: datetime) -> list[Segment]:
    out = []
    if req.event_dates is not None:
        out.append(dtp("AAH", req.event_dates))
    if req.admission_date is not None:
        out.append(dtp("435", req.admission_date))
    if req.discharge_date is not None:
        out.append(dtp("096", req.discharge_date))
    if decision.effective is not None:
        out.append(dtp("007", decision.effective))
    if decision.expiration is not None:
        out.append(dtp("036", decision.expiration))
    issued = decision.issued or (created.date() if decision.action in CERTIFYING else None)
    if issued is not None:
        out.append(dtp("102", issued))
    return out


def _event(req: ServiceReviewRequest, decision: ReviewDecision, created: datetime) -> Iterator[Segment]:
    """2000E after TRN/AAA/UM: HCR, REF, DTP, HI, HSD, PWK, MSG and the 2010EA provider echoes."""
    action = decision.action
    if action is None:
        raise DecisionError("a decision without a rejection needs an action", field="action")
    number = decision.certification_number
    yield _hcr(action, number, decision.reason, decision.second_opinion, decision)
    yield from _certification_refs(number, decision, decision.admin_reference, req.previous_certification)
    yield from _event_dates(req, decision, created)
    if req.diagnoses:  # HI is situational: no empty echo
        yield _diagnoses(req.diagnoses)
    days = (
        decision.approved_days
        if decision.approved_days is not None
        else (req.days if action == "A1" else None)
    )
    if days is not None:
        yield seg("HSD", "DY", str(days))
    yield from (_pwk(a) for a in decision.documentation)
    if decision.message:
        yield seg("MSG", decision.message)
    if req.servicing_provider is not None:
        yield from provider_segments("SJ", req.servicing_provider)
    if req.facility is not None:
        yield from provider_segments("FA", req.facility)


def _line_decisions(req: ServiceReviewRequest, decision: ReviewDecision) -> tuple[LineDecision, ...]:
    if decision.lines:
        if len(decision.lines) != len(req.lines):
            raise DecisionError("give one line decision per request line, or none", field="lines")
        return decision.lines
    if decision.action == "A2" and req.lines:
        raise DecisionError("a partial certification (A2) must say which lines are certified", field="lines")
    return tuple(LineDecision(decision.action) for _ in req.lines)  # type: ignore[arg-type]


def _approved(line: ServiceLine, ld: LineDecision) -> Segment | None:
    """HSD with the approved visits or quantity: what was given, else what was asked when certified."""
    certified = ld.action in CERTIFYING
    if ld.visits is not None:
        return seg("HSD", "VS", str(ld.visits))
    if ld.quantity is not None:
        return seg("HSD", _HSD_QUALIFIER[line.unit], quantity_text(ld.quantity))
    if not certified:
        return None
    if line.visits is not None:
        return seg("HSD", "VS", str(line.visits))
    return seg("HSD", _HSD_QUALIFIER[line.unit], quantity_text(line.quantity))


def _service(line: ServiceLine) -> Segment | None:
    qty = quantity_text(line.quantity)
    proc = procedure_composite(line.procedure) if line.procedure else None
    if line.revenue_code is not None:
        return seg("SV2", line.revenue_code, proc, None, line.unit, qty)
    if proc is not None:
        return seg("SV1", proc, None, line.unit, qty)
    return None


def _line(
    req: ServiceReviewRequest, line: ServiceLine, ld: LineDecision, decision: ReviewDecision
) -> Iterator[Segment]:
    """One 2000F after its HL: TRN echo, AAA or HCR, REF, DTP, SV1/SV2 echo, HSD, PWK, MSG."""
    if line.trace_number:
        yield seg("TRN", "2", line.trace_number, req.trace_assigner)
    if ld.rejection is not None:
        yield from aaa_segments((ld.rejection,), "2000F")
    number = ld.certification_number
    if number is None and ld.action in ("A1", "A6"):
        number = decision.certification_number
    if ld.action is not None:
        yield _hcr(ld.action, number, ld.reason, None, decision)
        yield from _certification_refs(number, decision, None, None)
    if line.service_date is not None:
        yield dtp("472", line.service_date)
    if ld.effective is not None:
        yield dtp("007", ld.effective)
    if ld.expiration is not None:
        yield dtp("036", ld.expiration)
    service = _service(line)
    if service is not None:
        yield service
    approved = _approved(line, ld) if ld.rejection is None else None
    if approved is not None:
        yield approved
    yield from (_pwk(a) for a in ld.documentation)
    if ld.message:
        yield seg("MSG", ld.message)


def _bht(req: ServiceReviewRequest, decision: ReviewDecision, created: datetime) -> Segment:
    more = decision.pended if decision.further_updates is None else decision.further_updates
    return seg(
        "BHT",
        "0007",
        "11",
        req.trace_number,
        d8(created.date()),
        created.strftime("%H%M"),
        "19" if more else "18",
    )


def build_278_response_body(
    request: ServiceReviewRequest,
    decision: ReviewDecision,
    created: datetime,
    payer_trace: str | None = None,
    *,
    payer_trace_assigner: str = PAYER_TRACE_ASSIGNER,
) -> tuple[Segment, ...]:
    """The segments between ST and SE (BHT first) of the 278 response to ``request``.

    ``created`` fills BHT04/BHT05 (and the default certification issue date, DTP*102);
    ``payer_trace`` (optional) is the UMO's own TRN*1 trace at 2000E.
    """
    stop = decision.stop_level
    if stop == "2010D" and request.dependent is None:
        raise DecisionError("a 2010D rejection needs a dependent patient", field="rejections")
    lines = _line_decisions(request, decision) if stop is None else ()
    rejections = decision.rejections
    hls = HLCounter()
    out: list[Segment] = [_bht(request, decision, created)]
    umo, hl = hls.hl(None, "20", stop not in ("2000A", "2010A"))
    p = request.payer
    out += [hl, *aaa_segments(rejections, "2000A")]
    out.append(seg("NM1", "X3", "2", p.name, None, None, None, None, p.id_qualifier, p.id))
    if decision.payer_contact is not None:
        out.append(per_segment(decision.payer_contact))
    out += aaa_segments(rejections, "2010A")
    if stop in ("2000A", "2010A"):
        return tuple(out)
    requester, hl = hls.hl(umo, "21", stop != "2010B")
    r = request.requester
    out += [
        hl,
        seg("NM1", "1P", "1" if r.first_name else "2", r.name, r.first_name, None, None, None, "XX", r.npi),
    ]
    out += aaa_segments(rejections, "2010B")
    if r.taxonomy:
        out.append(seg("PRV", "PE", "PXC", r.taxonomy))
    if stop == "2010B":
        return tuple(out)
    parent, hl = hls.hl(requester, "22", stop != "2010C")
    out += [hl, person_name("IL", request.subscriber, with_id=True), *aaa_segments(rejections, "2010C")]
    out += demographics(request.subscriber)
    if stop == "2010C":
        return tuple(out)
    if request.dependent is not None:
        parent, hl = hls.hl(parent, "23", stop != "2010D")
        out += [hl, person_name("QC", request.dependent, with_id=False), *aaa_segments(rejections, "2010D")]
        out += demographics(request.dependent)
        if stop == "2010D":
            return tuple(out)
    event, hl = hls.hl(parent, "EV", stop is None and bool(request.lines))
    out.append(hl)
    out += trace_segments(request.trace_number, request.trace_assigner, payer_trace, payer_trace_assigner)
    out += [*aaa_segments(rejections, "2000E"), _um(request)]
    if stop == "2000E":
        return tuple(out)
    out += _event(request, decision, created)
    for line, ld in zip(request.lines, lines, strict=True):
        _, hl = hls.hl(event, "SS", False)
        out += [hl, *_line(request, line, ld, decision)]
    return tuple(out)
