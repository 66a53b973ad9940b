"""Build a 271 eligibility response (005010X279A1) answering one :class:`EligibilityInquiry`.

Layout mirrors the 270: 2000A information source (payer, HL03 20) > 2000B information receiver
(provider, 21) > 2000C subscriber (22) [> 2000D dependent (23)]. Correlation rules (TR3 and X12 RFIs
960/1272): BHT03 is the 270's BHT03, and the 270 TRN comes back at the patient's level with TRN01 2
and the other elements unchanged; the payer may add its own TRN01 1. Benefits (EB, loop 2110C/D) sit
at the patient's level. A rejection (AAA) ends the response at its loop; lower loops are not sent.
When the subscriber is rejected (2100C) for a dependent inquiry, the 2000D level is not sent, so the
trace is returned at 2000C: it must never be lost.

The helpers :func:`aaa_segments`, :func:`per_segment` and :func:`trace_segments` are shared with the
278 response builder.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from decimal import Decimal

from transactions.build270 import VERSION_270
from transactions.build278 import quantity_text
from transactions.common import HLCounter, d8, dtp, person_name, provider_segments
from transactions.decisions import (
    Benefit,
    Contact,
    DecisionError,
    EligibilityAnswer,
    Rejection,
    RelatedEntity,
)
from transactions.models import EligibilityInquiry, Person, Procedure
from transactions.segment import Element, Repetition, Segment, seg

VERSION_271 = VERSION_270
# TRN03 of the payer's own trace: 10 characters, starting with 1 (EIN), 3 (DUNS) or 9 (assigned).
PAYER_TRACE_ASSIGNER = "9SIMPAYER1"


def decimal_text(value: Decimal) -> str:
    """An X12 R value: no exponent, no trailing zeros, no leading zero before the point (``.2``)."""
    text = quantity_text(value)
    return text[1:] if text.startswith("0.") else text


def procedure_composite(p: Procedure) -> tuple[str, ...]:
    return (p.qualifier, p.code, *p.modifiers)


def aaa_segments(rejections: Sequence[Rejection], level: str) -> Iterator[Segment]:
    """The AAA segments of one loop (AAA02 is not used)."""
    for r in rejections:
        if r.level == level:
            yield seg("AAA", r.aaa01, None, r.reason, r.aaa04)


def per_segment(c: Contact) -> Segment:
    """PER*IC with up to three ways to reach the contact (phone, fax, e-mail, URL, in that order)."""
    ways: list[Element] = []
    for qualifier, value in (("TE", c.phone), ("FX", c.fax), ("EM", c.email), ("UR", c.url)):
        if value and len(ways) < 6:
            ways += [qualifier, value]
    return seg("PER", "IC", c.name, *ways)


def demographics(p: Person) -> Iterator[Segment]:
    """DMG only when the birth date is known: the 278 response requires DMG01/DMG02, and a DMG
    carrying only a gender says little a requester can match on."""
    if p.birth_date is not None:
        yield seg("DMG", "D8", d8(p.birth_date), p.gender)


def trace_segments(trace: str, assigner: str, payer_trace: str | None, payer_assigner: str) -> list[Segment]:
    """TRN*2 echoing the request's trace unchanged, then the payer's own TRN*1 when it assigns one."""
    out = [seg("TRN", "2", trace, assigner)]
    if payer_trace:
        out.append(seg("TRN", "1", payer_trace, payer_assigner))
    return out


def _entity(e: RelatedEntity) -> Iterator[Segment]:
    yield seg(
        "NM1",
        e.entity,
        "1" if e.first_name else "2",
        e.name,
        e.first_name,
        None,
        None,
        None,
        e.id_qualifier,
        e.id,
    )
    if e.phone:
        yield seg("PER", "IC", None, "TE", e.phone)


def benefit_segments(b: Benefit) -> Iterator[Segment]:
    """One 2110C/D loop: EB, HSD, REF, DTP, MSG, then LS / 2120 entities / LE."""
    types = b.service_types
    eb03: Element | None = None if not types else (types[0] if len(types) == 1 else Repetition(types))
    yield seg(
        "EB",
        b.code,
        b.coverage_level,
        eb03,
        b.insurance_type,
        b.plan_name,
        b.period,
        decimal_text(b.amount) if b.amount is not None else None,
        decimal_text(b.percent) if b.percent is not None else None,
        b.quantity_qualifier,
        decimal_text(b.quantity) if b.quantity is not None else None,
        b.authorization_required,
        b.in_network,
        procedure_composite(b.procedure) if b.procedure else None,
    )
    for h in b.delivery:
        count = str(h.period_count) if h.period_count is not None else None
        yield seg("HSD", h.qualifier, decimal_text(h.quantity), h.unit, None, h.period, count)
    for r in b.references:
        yield seg("REF", r.qualifier, r.value, r.description)
    for d in b.dates:
        yield dtp(d.qualifier, d.dates)
    for m in b.messages:
        yield seg("MSG", m)
    if b.entities:
        yield seg("LS", "2120")
        for e in b.entities:
            yield from _entity(e)
        yield seg("LE", "2120")


def _patient_details(answer: EligibilityAnswer) -> tuple[list[Segment], list[Segment]]:
    """(REFs that follow the NM1, DTPs that follow DMG) for the patient's 2100C/D."""
    refs = [
        seg("REF", r.qualifier, r.value, r.description) for r in (answer.plan, answer.group) if r is not None
    ]
    dates: list[Segment] = []
    for begin, end, rng in (("346", "347", answer.plan_dates), ("356", "357", answer.eligibility_dates)):
        if rng is not None:
            dates.append(dtp(begin, rng.start))
            if rng.end is not None:
                dates.append(dtp(end, rng.end))
    return refs, dates


def _person_loop(
    entity: str, person: Person, answer: EligibilityAnswer, *, patient: bool, level: str
) -> list[Segment]:
    """2100C/D (NM1, REF, AAA, DMG, DTP) and, for the patient of an answered inquiry, its 2110 loops."""
    rejected = answer.stop_level == level
    refs, dates = _patient_details(answer) if patient and not rejected else ([], [])
    out = [person_name(entity, person, with_id=entity == "IL"), *refs]
    out += aaa_segments(answer.rejections, level)
    out += demographics(person)
    if patient and not rejected:
        out += dates
        for b in answer.benefits:
            out += benefit_segments(b)
    return out


def build_271_body(
    inquiry: EligibilityInquiry,
    answer: EligibilityAnswer,
    created: datetime,
    payer_trace: str | None = None,
    *,
    payer_trace_assigner: str = PAYER_TRACE_ASSIGNER,
) -> tuple[Segment, ...]:
    """The segments between ST and SE (BHT first) of the 271 answering ``inquiry``.

    ``created`` fills BHT04/BHT05; ``payer_trace`` (optional) is the payer's own TRN*1 trace.
    """
    stop = answer.stop_level
    if stop == "2100D" and inquiry.dependent is None:
        raise DecisionError("a 2100D rejection needs a dependent inquiry", field="rejections")
    hls = HLCounter()
    out: list[Segment] = [
        seg("BHT", "0022", "11", inquiry.trace_number, d8(created.date()), created.strftime("%H%M"))
    ]
    source, hl = hls.hl(None, "20", stop not in ("2000A", "2100A"))
    out += [hl, *aaa_segments(answer.rejections, "2000A")]
    p = inquiry.payer
    out.append(seg("NM1", "PR", "2", p.name, None, None, None, None, p.id_qualifier, p.id))
    if answer.payer_contact is not None:
        out.append(per_segment(answer.payer_contact))
    out += aaa_segments(answer.rejections, "2100A")
    if stop in ("2000A", "2100A"):
        return tuple(out)
    receiver, hl = hls.hl(source, "21", stop != "2100B")
    out += [hl, *provider_segments("1P", inquiry.provider, contact=False)]
    out += aaa_segments(answer.rejections, "2100B")
    if inquiry.provider.taxonomy:
        out.append(seg("PRV", "PE", "PXC", inquiry.provider.taxonomy))
    if stop == "2100B":
        return tuple(out)
    traces = trace_segments(inquiry.trace_number, inquiry.trace_assigner, payer_trace, payer_trace_assigner)
    with_dependent = inquiry.dependent is not None and stop != "2100C"
    subscriber, hl = hls.hl(receiver, "22", with_dependent)
    out.append(hl)
    if not with_dependent:
        out += traces
    out += _person_loop("IL", inquiry.subscriber, answer, patient=inquiry.dependent is None, level="2100C")
    if with_dependent and inquiry.dependent is not None:
        _, hl = hls.hl(subscriber, "23", False)
        out += [hl, *traces]
        out += _person_loop("03", inquiry.dependent, answer, patient=True, level="2100D")
    return tuple(out)
