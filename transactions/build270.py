"""Build a 270 eligibility inquiry (005010X279A1) from an :class:`EligibilityInquiry`, and read it back.

Layout: 2000A information source (payer, HL03 20) > 2000B information receiver (provider, 21) >
2000C subscriber (22) [> 2000D dependent (23)]. The TRN and the EQ inquiry sit at the patient's level:
2000C/2110C when the subscriber is the patient, 2000D/2110D when a dependent is.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from datetime import datetime

from transactions.common import (
    HLCounter,
    dmg,
    dtp,
    hl_blocks,
    parse_dtp,
    payer_and_provider,
    person_name,
    read_person,
    read_provider,
)
from transactions.errors import RequestError
from transactions.models import DateRange, EligibilityInquiry, Payer, Person, Procedure
from transactions.segment import Repetition, Segment, seg

VERSION_270 = "005010X279A1"


def _eq(req: EligibilityInquiry) -> Segment:
    """The EQ; kept per procedure or service types, as a batch asks about the same few."""
    try:
        return _kept_eq(req.procedure, req.service_types)
    except TypeError:  # a value that cannot be a key (not what the models hold): built afresh
        return _eq_segment(req.procedure, req.service_types)


def _eq_segment(procedure: Procedure | None, types: Sequence[str]) -> Segment:
    if procedure is not None:
        p = procedure
        return seg("EQ", None, (p.qualifier, p.code, *p.modifiers))
    return seg("EQ", types[0] if len(types) == 1 else Repetition(types))


_kept_eq = functools.lru_cache(maxsize=1024)(_eq_segment)


def _patient_block(
    req: EligibilityInquiry, person: Person, entity: str, *, with_id: bool
) -> Iterator[Segment]:
    yield seg("TRN", "1", req.trace_number, req.trace_assigner)
    yield person_name(entity, person, with_id=with_id)
    yield from dmg(person)
    if req.service_date is not None:
        yield dtp("291", req.service_date)
    yield _eq(req)


def build_270_body(req: EligibilityInquiry, created: datetime) -> tuple[Segment, ...]:
    """The segments between ST and SE (BHT first). ``created`` fills BHT04/BHT05."""
    hls = HLCounter()
    out, receiver = payer_and_provider(
        hls,
        structure="0022",
        req_id=req.trace_number,
        created=created,
        payer=req.payer,
        payer_entity="PR",
        provider=req.provider,
        contact=False,
    )
    subscriber, hl = hls.hl(receiver, "22", req.dependent is not None)
    out.append(hl)
    if req.dependent is None:
        out += _patient_block(req, req.subscriber, "IL", with_id=True)
    else:
        out.append(person_name("IL", req.subscriber, with_id=True))
        out += dmg(req.subscriber)
        _, hl = hls.hl(subscriber, "23", False)
        out.append(hl)
        out += _patient_block(req, req.dependent, "03", with_id=False)
    return tuple(out)


def read_270(body: Sequence[Segment]) -> EligibilityInquiry:
    """The inquiry a 270 body (segments between ST and SE) carries; refuses shapes it cannot represent."""
    blocks = hl_blocks(body)
    by_level = {hl.get(3): segs for hl, segs in blocks}
    try:
        payer_nm1 = by_level["20"][0]
        receiver = by_level["21"]
        subscriber = by_level["22"]
    except (KeyError, IndexError):
        raise RequestError("270 lacks the 2000A/2000B/2000C levels", field="HL") from None
    payer = Payer(payer_nm1.get(3), payer_nm1.get(9), payer_nm1.get(8))  # type: ignore[arg-type]
    provider = read_provider(receiver, 0)
    sub_nm1 = next(s for s in subscriber if s.tag == "NM1")
    sub = read_person(sub_nm1, subscriber[subscriber.index(sub_nm1) + 1 :])
    patient_block, dependent = subscriber, None
    if "23" in by_level:
        patient_block = by_level["23"]
        dep_nm1 = next(s for s in patient_block if s.tag == "NM1")
        dependent = read_person(dep_nm1, patient_block[patient_block.index(dep_nm1) + 1 :])
    trn = next((s for s in patient_block if s.tag == "TRN"), None)
    eq = next((s for s in patient_block if s.tag == "EQ"), None)
    if trn is None or eq is None:
        raise RequestError("270 patient level lacks TRN or EQ", field="TRN")
    service_date: DateRange | None = None
    for s in patient_block:
        if s.tag == "DTP" and s.get(1) == "291":
            service_date = parse_dtp(s)
            break
    procedure = None
    comp = eq.composite(2)
    if comp:
        procedure = Procedure(comp[1], tuple(m for m in comp[2:] if m), comp[0])  # type: ignore[arg-type]
    types = tuple(str(t) for t in eq.repeats(1))
    return EligibilityInquiry(
        trace_number=trn.get(2),
        payer=payer,
        provider=provider,
        subscriber=sub,
        dependent=dependent,
        service_types=types,
        procedure=procedure,
        service_date=service_date,
        trace_assigner=trn.get(3),
    )
