"""Build a 278 request for review (005010X217, BHT02 13) from a ServiceReviewRequest, and read it back.

Layout: 2000A UMO (HL03 20) > 2000B requester (21) > 2000C subscriber (22) [> 2000D dependent (23)] >
2000E patient event (EV: TRN, UM, REF*BB, DTP, HI, HSD, PWK, 2010EA providers) > 2000F service (SS, one
per line: TRN, DTP*472, SV1/SV2, HSD). Follow-ups (revision, extension, cancel, renewal) carry the
previous certification number in 2000E REF*BB with the certification type in UM02.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal

from transactions.common import (
    HLCounter,
    dmg,
    dtp,
    hl_blocks,
    parse_dtp,
    payer_and_provider,
    person_name,
    provider_segments,
    read_person,
    read_provider,
)
from transactions.errors import RequestError
from transactions.models import Attachment, Diagnosis, Payer, Procedure, ServiceLine, ServiceReviewRequest
from transactions.segment import Segment, seg

VERSION_278 = "005010X217"


def quantity_text(q: Decimal) -> str:
    """A quantity as X12 R: no exponent, no trailing zeros ("10", "1.5")."""
    return format(q.normalize(), "f")


def _procedure(p: Procedure) -> tuple[str, ...]:
    return (p.qualifier, p.code, *p.modifiers)


def _line(line: ServiceLine, req: ServiceReviewRequest) -> Iterator[Segment]:
    if line.trace_number:
        yield seg("TRN", "1", line.trace_number, req.trace_assigner)
    if line.service_date is not None:
        yield dtp("472", line.service_date)
    if line.revenue_code is not None or line.procedure is not None:
        key = (line.revenue_code, line.procedure, line.unit, quantity_text(line.quantity))
        try:
            service = _kept_service(*key)
        except TypeError:  # a value that cannot be a key (not what the models hold): built afresh
            service = _service(*key)
        yield service
    if line.visits is not None:
        yield seg("HSD", "VS", str(line.visits))


def _service(revenue_code: str | None, procedure: Procedure | None, unit: str, qty: str) -> Segment:
    """SV2 (a revenue code, maybe with a procedure) or SV1 (a procedure); the quantity as written."""
    if revenue_code is not None:
        proc = _procedure(procedure) if procedure else None
        return seg("SV2", revenue_code, proc, None, unit, qty)
    return seg("SV1", _procedure(procedure), None, unit, qty)  # type: ignore[arg-type]  # one is given


# Segments are immutable, and a batch repeats its services, diagnoses and review kinds (none of them
# identifies anyone): kept, they are built once and are not objects for the collector to scan again.
_kept_service = functools.lru_cache(maxsize=1024)(_service)


def _diagnoses(dx: Sequence[Diagnosis]) -> Segment:
    try:
        return _kept_diagnoses(dx)
    except TypeError:  # a value that cannot be a key (not what the models hold): built afresh
        return _hi(dx)


def _hi(dx: Sequence[Diagnosis]) -> Segment:
    values: list[tuple[str, ...]] = []
    for i, d in enumerate(dx):
        qualifier = "ABK" if i == 0 else ("ABJ" if d.admitting else "ABF")
        values.append((qualifier, d.x12_code))
    return seg("HI", *values)


_kept_diagnoses = functools.lru_cache(maxsize=1024)(_hi)


def _pwk(a: Attachment) -> Segment:
    if a.control_number:
        return seg("PWK", a.report_type, a.transmission, None, None, "AC", a.control_number)
    return seg("PWK", a.report_type, a.transmission)


def _um(um: tuple[str, str, str, str, str, str | None]) -> Segment:
    """UM from (category, certification type, service type, facility code, its qualifier, level)."""
    category, certification, service, facility, qualifier, level = um
    return seg("UM", category, certification, service, (facility, qualifier), None, level)


_kept_um = functools.lru_cache(maxsize=1024)(_um)


def _event(req: ServiceReviewRequest) -> Iterator[Segment]:
    yield seg("TRN", "1", req.trace_number, req.trace_assigner)
    um = (
        req.request_category,
        req.certification_type,
        req.service_type,
        req.facility_code,
        req.facility_code_qualifier,
        req.level_of_service,
    )
    try:
        review = _kept_um(um)
    except TypeError:  # a value that cannot be a key (not what the models hold): built afresh
        review = _um(um)
    yield review
    if req.previous_certification:
        yield seg("REF", "BB", req.previous_certification)
    if req.event_dates is not None:
        yield dtp("AAH", req.event_dates)
    if req.admission_date is not None:
        yield dtp("435", req.admission_date)
    if req.discharge_date is not None:
        yield dtp("096", req.discharge_date)
    if req.diagnoses:
        yield _diagnoses(req.diagnoses)
    if req.days is not None:
        yield seg("HSD", "DY", str(req.days))
    for a in req.attachments:
        yield _pwk(a)
    if req.servicing_provider is not None:
        yield from provider_segments("SJ", req.servicing_provider)
    if req.facility is not None:
        yield from provider_segments("FA", req.facility)


def build_278_body(req: ServiceReviewRequest, created: datetime) -> tuple[Segment, ...]:
    """The segments between ST and SE (BHT first). ``created`` fills BHT04/BHT05."""
    hls = HLCounter()
    out, requester = payer_and_provider(
        hls,
        structure="0007",
        req_id=req.trace_number,
        created=created,
        payer=req.payer,
        payer_entity="X3",
        provider=req.requester,
        contact=True,
    )
    patient_parent, hl = hls.hl(requester, "22", True)
    out += [hl, person_name("IL", req.subscriber, with_id=True), *dmg(req.subscriber)]
    if req.dependent is not None:
        patient_parent, hl = hls.hl(patient_parent, "23", True)
        out += [hl, person_name("QC", req.dependent, with_id=False), *dmg(req.dependent)]
    event, hl = hls.hl(patient_parent, "EV", bool(req.lines))
    out += [hl, *_event(req)]
    for line in req.lines:
        _, hl = hls.hl(event, "SS", False)
        out += [hl, *_line(line, req)]
    return tuple(out)


def _read_line(block: Sequence[Segment]) -> ServiceLine:
    procedure = revenue = None
    quantity, unit = Decimal(1), "UN"
    service_date = visits = trace = None
    for s in block:
        if s.tag == "TRN":
            trace = s.get(2)
        elif s.tag == "DTP" and s.get(1) == "472":
            service_date = parse_dtp(s)
        elif s.tag == "SV1":
            procedure = _read_procedure(s.composite(1))
            unit, quantity = s.get(3) or "UN", Decimal(s.get(4) or "1")
        elif s.tag == "SV2":
            revenue = s.get(1) or None
            procedure = _read_procedure(s.composite(2))
            unit, quantity = s.get(4) or "UN", Decimal(s.get(5) or "1")
        elif s.tag == "HSD" and s.get(1) == "VS":
            visits = int(s.get(2))
    return ServiceLine(procedure, revenue, quantity, unit, service_date, visits, trace)  # type: ignore[arg-type]


def _read_procedure(comp: tuple[str, ...]) -> Procedure | None:
    if len(comp) < 2:
        return None
    return Procedure(comp[1], tuple(m for m in comp[2:6] if m), comp[0])  # type: ignore[arg-type]


def _read_diagnoses(hi: Segment) -> tuple[Diagnosis, ...]:
    out = []
    for i in range(1, len(hi) + 1):
        comp = hi.composite(i)
        if len(comp) >= 2:
            out.append(Diagnosis(comp[1], admitting=comp[0] in ("ABJ", "BJ")))
    return tuple(out)


def _read_event(block: Sequence[Segment]) -> dict[str, object]:
    fields: dict[str, object] = {}
    attachments: list[Attachment] = []
    for i, s in enumerate(block):
        if s.tag == "TRN":
            fields["trace_number"], fields["trace_assigner"] = s.get(2), s.get(3)
        elif s.tag == "UM":
            um04 = s.composite(4)
            fields.update(
                request_category=s.get(1),
                certification_type=s.get(2),
                service_type=s.get(3),
                facility_code=um04[0] if um04 else "",
                facility_code_qualifier=um04[1] if len(um04) > 1 else "B",
                level_of_service=s.get(6) or None,
            )
        elif s.tag == "REF" and s.get(1) == "BB":
            fields["previous_certification"] = s.get(2)
        elif s.tag == "DTP":
            _read_event_date(s, fields)
        elif s.tag == "HI":
            fields["diagnoses"] = _read_diagnoses(s)
        elif s.tag == "HSD" and s.get(1) == "DY":
            fields["days"] = int(s.get(2))
        elif s.tag == "PWK":
            attachments.append(Attachment(s.get(1), s.get(2), s.get(6) or None))  # type: ignore[arg-type]
        elif s.tag == "NM1" and s.get(1) in ("SJ", "FA"):
            key = "servicing_provider" if s.get(1) == "SJ" else "facility"
            fields[key] = read_provider(block, i)
    fields["attachments"] = tuple(attachments)
    return fields


def _read_event_date(s: Segment, fields: dict[str, object]) -> None:
    rng = parse_dtp(s)
    one: date = rng.start
    if s.get(1) == "AAH":
        fields["event_dates"] = rng
    elif s.get(1) == "435":
        fields["admission_date"] = one
    elif s.get(1) == "096":
        fields["discharge_date"] = one


def read_278_request(body: Sequence[Segment]) -> ServiceReviewRequest:
    """The request a 278 request body carries (first patient event and its service lines)."""
    blocks = hl_blocks(body)
    levels: dict[str, list[Segment]] = {}
    lines: list[ServiceLine] = []
    for hl, segs in blocks:
        if hl.get(3) == "SS":
            lines.append(_read_line(segs))
        else:
            levels.setdefault(hl.get(3), segs)
    missing = {"20", "21", "22", "EV"} - set(levels)
    if missing:
        raise RequestError(f"278 lacks HL level(s) {', '.join(sorted(missing))}", field="HL")
    umo = levels["20"][0]
    sub = levels["22"]
    dependent = None
    if "23" in levels:
        dep = levels["23"]
        dependent = read_person(dep[0], dep[1:])
    fields = _read_event(levels["EV"])
    try:
        return ServiceReviewRequest(
            payer=Payer(umo.get(3), umo.get(9), umo.get(8)),  # type: ignore[arg-type]
            requester=read_provider(levels["21"], 0),
            subscriber=read_person(sub[0], sub[1:]),
            dependent=dependent,
            lines=tuple(lines),
            **fields,  # type: ignore[arg-type]
        )
    except TypeError as exc:
        raise RequestError(f"278 patient event is incomplete ({exc})", field="2000E") from None
