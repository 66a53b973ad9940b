"""The shipped authorization rule (``mappings/rules/default.xml``, record ``authorization``) read
straight from a 278 response's placed segments: the same field dicts as its generated code
(``mappings.straight``) over the node tree (``mappings.segtree``), without building that tree or
evaluating a path per field.

Why: once 278 validation was cut, mapping a response became the largest single share of validate +
map, and most of it was the general machinery (a node per segment, an index per loop, a list per path
step) for one rule that every gateway without payer overrides uses on every 278 response. Here the
loop instances ``mappings.direct271`` opens in one pass over the placed segments are reused, and each
patient event (2000E) is read by looking at its own segments and loops once.

It applies only to a rule equal to the shipped one (:func:`direct_record`); any other rule (a payer
override, an edited file) goes the general way. The assumption is ``direct271``'s: no loop lies inside
a loop of the same id, so the segments of same-id loops, taken loop by loop, are in document order; a
set that breaks it gives None and is mapped the general way. ``tests/test_map_direct278.py`` holds
the generated code as the reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mappings.authorization import authorization_record
from mappings.compiled_rules import PerRule
from mappings.direct271 import (
    _NONE,
    DirectReader,
    _all,
    _by_qualifier,
    _component,
    _first,
    _Loop,
    _occurrences,
    _qualified,
    _release,
    _row,
    _Set,
    _tree,
    shipped_rule,
)
from mappings.engine import RecordRule
from mappings.records import AuthorizationRecord, ControlRef
from mappings.straight import _eq1, _ne
from transactions.placed import Placed
from transactions.segment import Repetition, Segment

Fields = dict[str, Any]

_MODIFIERS = (3, 4, 5, 6)  # the procedure composite's modifier components
_HSD01 = (1,)


def _by_tag(segs: list[Segment]) -> dict[str, list[Segment]]:
    """``segs`` by segment id, each list in document order: every ``seg[@id=...]`` step of a loop
    answered from one pass over its segments."""
    out: dict[str, list[Segment]] = {}
    for s in segs:
        tag = s.tag
        if tag in out:
            out[tag].append(s)
        else:
            out[tag] = [s]
    return out


def _nm1(loops: list[_Loop]) -> list[Segment]:
    """The NM1 segments of ``loops`` (same-id loops, so in document order)."""
    return [s for lp in loops for s in lp.segs if s.tag == "NM1"]


def _suffix02(segs: list[Segment]) -> list[str]:
    """``comp/subele[substring(@id, string-length(@id) - 1) = '02']``: every second component (what
    ``straight._suffixed(s.elements, 2)`` gives per segment, without its generators)."""
    out: list[str] = []
    for s in segs:
        for value in s.elements:
            if value.__class__ is str:
                continue
            for occ in value if isinstance(value, Repetition) else (value,):
                if occ.__class__ is not str and len(occ) > 1:
                    out += [c for j, c in enumerate(occ, 1) if c and j % 100 == 2]
    return out


def _comps(segs: list[Segment], i: int) -> list[str]:
    """The modifier components (3 to 6) of composite element ``i`` of ``segs``, in order (what
    ``straight._components(s.elements, i, _MODIFIERS)`` gives per segment)."""
    return [c for occ in _occurrences(segs, i) for j in _MODIFIERS if j <= len(occ) and (c := occ[j - 1])]


def _rejection(segment: Segment, level: str) -> Fields:
    e = [segment]
    return {
        "level": level or None,
        "valid_request": _first(e, 1),
        "reason_code": _first(e, 3),
        "follow_up": _first(e, 4),
    }


def _under_2000f(loop: _Loop) -> bool:
    """``ancestor::loop[@id='2000F']`` for a segment held by ``loop`` (the transaction is no loop)."""
    node: _Loop | None = loop
    while node is not None and node.parent is not None:
        if node.id == "2000F":
            return True
        node = node.parent
    return False


def _service(loop: _Loop) -> Fields:
    """One 2000F loop's field dict (the ``services`` list)."""
    tags = _by_tag(loop.segs)
    hcr = _row(tags.get("HCR", _NONE), 3)
    sv1 = tags.get("SV1", _NONE)
    sv2 = tags.get("SV2", _NONE)
    hsd = tags.get("HSD", _NONE)
    counted = [s for s in hsd if _ne(s.elements, _HSD01, "VS")] if hsd else _NONE  # (no frame when none)
    dates = _by_qualifier(tags.get("DTP", _NONE))
    qualifier = _component(sv1, 1, 1)
    if qualifier is None:
        qualifier = _component(sv2, 2, 1)
    code = _component(sv1, 1, 2)
    if code is None:
        code = _component(sv2, 2, 2)
        if code is None:
            code = _component(tags.get("SV3", _NONE), 1, 2)
    quantity = _first(counted, 2)
    if quantity is None:
        quantity = _first(sv1, 4)
        if quantity is None:
            quantity = _first(sv2, 5)
    unit = _first(counted, 1)
    if unit is None:
        unit = _first(sv1, 3)
        if unit is None:
            unit = _first(sv2, 4)
    return {
        "trace_number": _first(_qualified(tags.get("TRN", _NONE), "TRN", "2"), 2),
        "action_code": hcr[0],
        "certification_number": hcr[1],
        "reason_code": hcr[2],
        "procedure_qualifier": qualifier,
        "procedure_code": code,
        "modifiers": _comps(sv1, 1) or _comps(sv2, 2),
        "revenue_code": _first(sv2, 1),
        "quantity": quantity,
        "visits": _first([s for s in hsd if _eq1(s.elements, 1, "VS")], 2) if hsd else None,
        "unit": unit,
        "service_dates": _first(dates.get("472", _NONE), 3),
        "effective": _first(dates.get("007", _NONE), 3),
        "expiration": _first(dates.get("036", _NONE), 3),
        "documentation_codes": _suffix02(tags.get("HI", _NONE)),
        "messages": _all(tags.get("MSG", _NONE), 1),
        "rejections": [_rejection(s, loop.id) for s in tags["AAA"]] if "AAA" in tags else [],
    }


def _top(tree: _Set) -> Fields:
    """The fields every record of the set shares: absolute and ``//loop`` paths, and the rejections
    outside any service line (``//seg[@id='AAA'][not(ancestor::loop[@id='2000F'])]``)."""
    root = tree.root
    bht = [s for s in root.segs if s.tag == "BHT"]
    payer_loops = [k for lp in root.loops if lp.id == "2000A" for k in lp.loops if k.id == "2010A"]
    payer = _nm1(payer_loops)
    by_id: dict[str, list[_Loop]] = {"2010B": [], "2010C": [], "2010D": []}
    for lp in tree.loops:
        if lp.id in by_id:
            by_id[lp.id].append(lp)
    payer_row = _row(payer, 9)
    bht_row = _row(bht, 6)
    requester = _row(_nm1(by_id["2010B"]), 9)
    member = _row(_nm1(by_id["2010C"]), 9)
    patient = _row(_nm1(by_id["2010D"]), 4)
    return {
        "bht_reference": bht_row[2],
        "response_type": bht_row[5],
        "payer_name": payer_row[2],
        "payer_id": payer_row[8],
        "requester_name": requester[2],
        "requester_id": requester[8],
        "member_id": member[8],
        "subscriber_last_name": member[2],
        "subscriber_first_name": member[3],
        "patient_last_name": patient[2],
        "patient_first_name": patient[3],
        "rejections": [_rejection(s, lp.id) for s, lp in tree.aaa if not _under_2000f(lp)]
        if tree.aaa
        else [],
    }


def _record(ctx: _Loop, top: Fields) -> Fields:
    """One authorization record from its context (a 2000E, or the transaction when there is none)."""
    tags = _by_tag(ctx.segs)
    trn = tags.get("TRN", _NONE)
    hcr = _row(tags.get("HCR", _NONE), 3)
    ref = _by_qualifier(tags.get("REF", _NONE))
    um = tags.get("UM", _NONE)
    um_row = _row(um, 6)
    dates = _by_qualifier(tags.get("DTP", _NONE))
    providers = _by_qualifier(_nm1([k for k in ctx.loops if k.id == "2010EA"]))
    sj = _row(providers.get("SJ", _NONE), 9)
    fa = _row(providers.get("FA", _NONE), 9)
    facility_code = _component(um, 4, 1) if um else None
    if facility_code is None:
        facility_code = um_row[3]
    return {
        "bht_reference": top["bht_reference"],
        "response_type": top["response_type"],
        "trace_number": _first(_qualified(trn, "TRN", "2"), 2),
        "payer_trace_number": _first(_qualified(trn, "TRN", "1"), 2),
        "payer_name": top["payer_name"],
        "payer_id": top["payer_id"],
        "requester_name": top["requester_name"],
        "requester_id": top["requester_id"],
        "member_id": top["member_id"],
        "subscriber_last_name": top["subscriber_last_name"],
        "subscriber_first_name": top["subscriber_first_name"],
        "patient_last_name": top["patient_last_name"],
        "patient_first_name": top["patient_first_name"],
        "action_code": hcr[0],
        "certification_number": hcr[1],
        "reason_code": hcr[2],
        "admin_reference": _first(ref.get("NT", _NONE), 2),
        "previous_certification": _first(ref.get("BB", _NONE), 2),
        "request_category": um_row[0],
        "certification_type": um_row[1],
        "service_type": um_row[2],
        "facility_code": facility_code,
        "level_of_service": um_row[5],
        "effective": _first(dates.get("007", _NONE), 3),
        "expiration": _first(dates.get("036", _NONE), 3),
        "issued": _first(dates.get("102", _NONE), 3),
        "event_dates": _first(dates.get("AAH", _NONE), 3),
        "admission_date": _first(dates.get("435", _NONE), 3),
        "discharge_date": _first(dates.get("096", _NONE), 3),
        "diagnoses": _suffix02(tags.get("HI", _NONE)),
        "days_approved": _first(_qualified(tags.get("HSD", _NONE), "HSD", "DY"), 2),
        "messages": _all(tags.get("MSG", _NONE), 1),
        "servicing_provider_id": sj[8],
        "servicing_provider_id_qualifier": sj[7],
        "servicing_provider_name": sj[2],
        "facility_id": fa[8],
        "facility_name": fa[2],
        "documentation": [_documentation(s) for s in tags["PWK"]] if "PWK" in tags else [],
        "services": [_service(k) for k in ctx.loops if k.id == "2000F"],
        "rejections": list(top["rejections"]),
    }


def _documentation(pwk: Segment) -> Fields:
    e = [pwk]
    return {"report_type": _first(e, 1), "transmission": _first(e, 2), "control_number": _first(e, 6)}


def authorization_fields(placed: Sequence[Placed], set_id: str) -> list[Fields] | None:
    """The shipped authorization rule's field dicts for a 278 response's placed segments (None: the
    set is outside this module's assumption, map it the general way). The contexts are the rule's
    select: every 2000E in document order, else the transaction itself."""
    tree = _tree(placed, set_id)
    if tree is None:
        return None
    try:
        contexts = [lp for lp in tree.loops if lp.id == "2000E"] or [tree.root]
        top = _top(tree)
        return [_record(ctx, top) for ctx in contexts]
    finally:
        _release(tree)


def authorization_records(
    placed: Sequence[Placed], set_id: str, control: ControlRef
) -> list[AuthorizationRecord] | None:
    """``authorization.authorization_record`` of each of :func:`authorization_fields`'s dicts (the
    record builder is shared, so the status rules have one home)."""
    found = authorization_fields(placed, set_id)
    if found is None:
        return None
    return [authorization_record(f, control) for f in found]


AUTHORIZATION = DirectReader(authorization_fields, authorization_records)


def shipped_authorization() -> RecordRule:
    """The authorization rule as shipped (the rule this direct reader stands for)."""
    return shipped_rule("authorization")


def _direct(rule: RecordRule) -> DirectReader | None:
    return AUTHORIZATION if rule == shipped_authorization() else None


direct_record = PerRule(_direct)
"""The direct reader standing for ``rule`` (None: no such reader, map it the general way); worked
out once per rule object."""
