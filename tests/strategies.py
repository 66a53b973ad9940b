"""Hypothesis strategies for valid request models and delimiter sets, shared by the property tests."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from hypothesis import strategies as st

from transactions.models import (
    Address,
    Attachment,
    CertificationType,
    DateRange,
    Diagnosis,
    EligibilityInquiry,
    Payer,
    Person,
    Procedure,
    Provider,
    RequestCategory,
    ServiceLine,
    ServiceReviewRequest,
    npi_is_valid,
)
from transactions.segment import Delimiters

UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DIGITS = "0123456789"
DELIMITER_POOL = [
    "*",
    "|",
    "!",
    "^",
    "~",
    ":",
    ">",
    "\x1d",
    "\x1c",
    "\x1e",
    "\x1f",
    "+",
    "{",
    "}",
    "`",
    "\\",
    "#",
    "@",
    ";",
    "&",
    "\x07",
]

words = st.text(alphabet=UPPER, min_size=1, max_size=12)
names = st.builds(lambda a, b: f"{a} {b}" if b else a, words, st.one_of(st.none(), words))
ids = st.text(alphabet=UPPER + DIGITS, min_size=2, max_size=15)
dates = st.dates(min_value=date(1920, 1, 1), max_value=date(2030, 12, 31))


@st.composite
def delimiters(draw: st.DrawFn) -> Delimiters:
    chars = draw(st.lists(st.sampled_from(DELIMITER_POOL), min_size=4, max_size=4, unique=True))
    return Delimiters(*chars)


@st.composite
def npis(draw: st.DrawFn) -> str:
    stem = draw(st.sampled_from("12")) + draw(st.text(alphabet=DIGITS, min_size=8, max_size=8))
    return next(stem + d for d in DIGITS if npi_is_valid(stem + d))


@st.composite
def date_ranges(draw: st.DrawFn) -> DateRange:
    start = draw(dates)
    days = draw(st.one_of(st.none(), st.integers(0, 400)))
    end = (
        None
        if days is None
        else date.fromordinal(min(start.toordinal() + days, date(2030, 12, 31).toordinal()))
    )
    return DateRange(start, end)


addresses = st.builds(
    Address,
    names,
    st.text(alphabet=UPPER, min_size=2, max_size=20),  # N401 is 2-30 characters
    st.sampled_from(["IL", "NY", "CA", "TX"]),
    st.text(DIGITS, min_size=5, max_size=9),
    st.one_of(st.none(), names),
)
payers = st.builds(Payer, names, ids)


@st.composite
def providers(draw: st.DrawFn, *, contact: bool, taxonomy: bool = True) -> Provider:
    person = draw(st.booleans())
    phone = draw(st.one_of(st.none(), st.text(DIGITS, min_size=10, max_size=10))) if contact else None
    name = draw(st.one_of(st.none(), names))
    return Provider(
        name=draw(names),
        npi=draw(npis()),
        first_name=draw(words) if person else None,
        address=draw(st.one_of(st.none(), addresses)),
        taxonomy=draw(st.one_of(st.none(), st.just("207X00000X"))) if taxonomy else None,
        contact_name=name if (contact and phone) else None,
        contact_phone=phone,
    )


@st.composite
def persons(draw: st.DrawFn, *, member: bool) -> Person:
    birth = draw(st.one_of(st.none(), dates))
    return Person(
        last_name=draw(words),
        first_name=draw(words),
        member_id=draw(ids) if member else None,
        middle_name=draw(st.one_of(st.none(), words)),
        birth_date=birth,
        gender=draw(st.one_of(st.none(), st.sampled_from(["M", "F", "U"]))) if birth else None,
    )


procedures = st.builds(
    Procedure,
    st.sampled_from(["70553", "72148", "E0601", "97110", "99213", "K0001", "G0202"]),
    st.lists(st.sampled_from(["RR", "NU", "26", "TC", "GP", "LT"]), max_size=4, unique=True).map(tuple),
)
traces = st.text(alphabet=UPPER + DIGITS + "-", min_size=1, max_size=30)
service_types = st.sampled_from(
    [
        "30",
        "1",
        "2",
        "4",
        "12",
        "18",
        "33",
        "35",
        "47",
        "48",
        "62",
        "73",
        "88",
        "98",
        "AL",
        "MH",
        "UC",
        "DM",
        "PT",
    ]
)


@st.composite
def inquiries(draw: st.DrawFn) -> EligibilityInquiry:
    use_proc = draw(st.booleans())
    return EligibilityInquiry(
        trace_number=draw(traces),
        payer=draw(payers),
        provider=draw(providers(contact=False)),
        subscriber=draw(persons(member=True)),
        dependent=draw(st.one_of(st.none(), persons(member=False))),
        service_types=()
        if use_proc
        else tuple(draw(st.lists(service_types, min_size=1, max_size=8, unique=True))),
        procedure=draw(procedures) if use_proc else None,
        service_date=draw(st.one_of(st.none(), date_ranges())),
        trace_assigner=draw(st.text(DIGITS, min_size=10, max_size=10)),
    )


diagnosis_codes = st.sampled_from(
    ["M54.16", "M5126", "I21.4", "I10", "E11.9", "G47.33", "S83.511A", "Z00.00"]
)


@st.composite
def lines(draw: st.DrawFn) -> ServiceLine:
    revenue = draw(st.one_of(st.none(), st.sampled_from(["0120", "0360", "0450"])))
    procedure = draw(procedures if revenue is None else st.one_of(st.none(), procedures))
    return ServiceLine(
        procedure=procedure,
        revenue_code=revenue,
        quantity=Decimal(draw(st.integers(1, 500))),
        unit=draw(st.sampled_from(["UN", "DA", "F2"] if revenue else ["UN", "MJ", "F2"])),
        service_date=draw(st.one_of(st.none(), date_ranges())),
        visits=draw(st.one_of(st.none(), st.integers(1, 60))),
        trace_number=draw(st.one_of(st.none(), traces)),
    )


@st.composite
def review_requests(draw: st.DrawFn) -> ServiceReviewRequest:
    category: RequestCategory = draw(st.sampled_from(["AR", "HS", "IN", "SC"]))
    cert: CertificationType = draw(st.sampled_from(["I", "R", "S", "3", "4"]))
    dx = draw(st.lists(diagnosis_codes, min_size=0, max_size=12))
    # 0 means none: the principal is never the admitting one
    admit = draw(st.integers(0, max(len(dx) - 1, 0)))
    return ServiceReviewRequest(
        trace_number=draw(traces),
        payer=draw(payers),
        requester=draw(providers(contact=True)),
        subscriber=draw(persons(member=True)),
        request_category=category,
        certification_type=cert,
        service_type=draw(st.sampled_from(["1", "2", "3", "18", "42", "62", "73", "AD", "PT"])),
        facility_code=draw(st.sampled_from(["11", "12", "21", "22", "23"])),
        level_of_service=draw(st.sampled_from([None, "E", "U", "03"])),
        dependent=draw(st.one_of(st.none(), persons(member=False))),
        diagnoses=tuple(Diagnosis(c, admitting=0 < i == admit) for i, c in enumerate(dx)),
        admission_date=draw(dates) if category == "AR" else draw(st.one_of(st.none(), dates)),
        discharge_date=draw(st.one_of(st.none(), dates)),
        event_dates=draw(st.one_of(st.none(), date_ranges())),
        days=draw(st.one_of(st.none(), st.integers(1, 90))),
        servicing_provider=draw(st.one_of(st.none(), providers(contact=True, taxonomy=False))),
        facility=draw(st.one_of(st.none(), providers(contact=True, taxonomy=False))),
        lines=tuple(draw(st.lists(lines(), max_size=5))),
        attachments=tuple(
            draw(
                st.lists(
                    st.builds(
                        Attachment,
                        st.sampled_from(["RR", "OB", "77", "B3"]),
                        st.sampled_from(["EL", "FX", "BM"]),
                        st.one_of(st.none(), ids),
                    ),
                    max_size=3,
                )
            )
        ),
        previous_certification=draw(ids) if cert != "I" else None,
        trace_assigner=draw(st.text(DIGITS, min_size=10, max_size=10)),
    )
