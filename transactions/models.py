"""Typed request models for what the gateway sends: 270 inquiries and 278 service review requests.

These are the documented JSON forms (README "File formats"): field names here are the JSON keys.
Validation in ``__post_init__`` covers what X12 itself cannot express (NPI check digit, code sets the
builders rely on); implementation-guide rules are checked later by the validator on the built X12.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import ClassVar, Literal

from transactions.errors import RequestError

Gender = Literal["M", "F", "U"]
_CODE = re.compile(r"^[A-Z0-9]{1,8}$")
_ICD10 = re.compile(r"^[A-Z][0-9][0-9A-Z](\.?[0-9A-Z]{1,4})?$")
# Compiled once: ``re.fullmatch(pattern, ...)`` looks the pattern up in re's cache on every call.
_TRACE = re.compile(r"[A-Za-z0-9-]{1,50}")
_MODIFIER = re.compile(r"[A-Z0-9]{2}")
_SERVICE_TYPE = re.compile(r"[A-Z0-9]{1,2}")


@functools.lru_cache(maxsize=4096)
def npi_is_valid(npi: str) -> bool:
    """Luhn check of a 10-digit NPI with the 80840 prefix, as CMS defines it.

    Cached: a batch names the same few providers thousands of times.
    """
    if not re.fullmatch(r"\d{10}", npi):
        return False
    digits = [int(c) for c in "80840" + npi[:9]]
    total = 0
    for i, d in enumerate(reversed(digits)):
        total += sum(divmod(d * 2, 10)) if i % 2 == 0 else d
    return (10 - total % 10) % 10 == int(npi[9])


def _need(cond: bool, message: str, name: str) -> None:
    if not cond:
        raise RequestError(message, field=name)


def _check_request(trace_number: str, trace_assigner: str, subscriber: Person) -> None:
    """What every request needs whatever its kind: a TRN02-safe trace, a 10-character TRN03, a member id.

    The checks of a model built once per request are written out (``if ...: raise``) rather than
    through :func:`_need`: a call per rule was a good part of reading a request from JSON."""
    if not _TRACE.fullmatch(trace_number):
        raise RequestError("1-50 letters/digits/dashes", field="trace_number")
    if len(trace_assigner) != 10:
        raise RequestError("must be exactly 10 characters (TRN03)", field="trace_assigner")
    if not subscriber.member_id:
        raise RequestError("required for the subscriber", field="subscriber.member_id")


@dataclass(frozen=True, slots=True)
class Address:
    SHARED_FROM_JSON: ClassVar[bool] = True  # a batch repeats it; no patient data (jsonform)

    line1: str
    city: str
    state: str
    postal_code: str
    line2: str | None = None


@dataclass(frozen=True, slots=True)
class Payer:
    """The payer or utilization management organisation (2100A / 2010A)."""

    SHARED_FROM_JSON: ClassVar[bool] = True  # a batch repeats it; no patient data (jsonform)

    name: str
    id: str
    id_qualifier: Literal["PI", "XV", "FI", "NI", "24", "46"] = "PI"


@dataclass(frozen=True, slots=True)
class Provider:
    """A provider: information receiver, requester, servicing provider or facility.

    ``first_name`` set means a person (NM102 1), otherwise an organisation (NM102 2).
    """

    SHARED_FROM_JSON: ClassVar[bool] = True  # a batch repeats it; no patient data (jsonform)

    name: str
    npi: str
    first_name: str | None = None
    address: Address | None = None
    taxonomy: str | None = None
    contact_name: str | None = None
    contact_phone: str | None = None

    def __post_init__(self) -> None:
        _need(npi_is_valid(self.npi), "not a valid NPI (10 digits with a correct check digit)", "npi")
        _need(
            not self.contact_name or bool(self.contact_phone),
            "a contact name needs a contact phone",
            "contact_phone",
        )


@dataclass(frozen=True, slots=True)
class Person:
    """Subscriber or dependent. ``member_id`` is required for a subscriber."""

    last_name: str
    first_name: str
    member_id: str | None = None
    middle_name: str | None = None
    birth_date: date | None = None
    gender: Gender | None = None

    def __post_init__(self) -> None:
        # DMG carries gender only together with the birth date (DMG01/DMG02 are required in it).
        if self.gender is not None and self.birth_date is None:
            raise RequestError("gender needs birth_date", field="gender")


@dataclass(frozen=True, slots=True)
class DateRange:
    SHARED_FROM_JSON: ClassVar[bool] = True  # a batch repeats it; no one's identity (jsonform)

    start: date
    end: date | None = None

    def __post_init__(self) -> None:
        _need(self.end is None or self.end >= self.start, "end is before start", "end")
        if self.end == self.start:  # a one-day range is written as a single D8 date: keep one form
            object.__setattr__(self, "end", None)


@dataclass(frozen=True, slots=True)
class Procedure:
    """A CPT/HCPCS procedure (qualifier HC) with up to four modifiers."""

    SHARED_FROM_JSON: ClassVar[bool] = True  # a batch repeats it; no patient data (jsonform)

    code: str
    modifiers: tuple[str, ...] = ()
    qualifier: Literal["HC", "IV", "N4", "ZZ", "AD", "CJ", "ID"] = "HC"

    def __post_init__(self) -> None:
        _need(bool(_CODE.match(self.code)), "procedure code must be 1-8 letters/digits", "code")
        _need(len(self.modifiers) <= 4, "at most four modifiers", "modifiers")
        for m in self.modifiers:
            _need(bool(_MODIFIER.fullmatch(m)), "modifiers are two letters/digits", "modifiers")


@dataclass(frozen=True, slots=True)
class EligibilityInquiry:
    """One 270 inquiry: one patient, one or more service types or one procedure."""

    trace_number: str
    payer: Payer
    provider: Provider
    subscriber: Person
    dependent: Person | None = None
    service_types: tuple[str, ...] = ()
    procedure: Procedure | None = None
    service_date: DateRange | None = None
    trace_assigner: str = "9999999999"

    def __post_init__(self) -> None:
        _check_request(self.trace_number, self.trace_assigner, self.subscriber)
        types = self.service_types
        if not types and self.procedure is None:
            raise RequestError("give service_types or procedure", field="service_types")
        if len(types) > 99:
            raise RequestError("at most 99 service types", field="service_types")
        if not all(map(_SERVICE_TYPE.fullmatch, types)):
            raise RequestError("service type codes are 1-2 letters/digits", field="service_types")

    @property
    def patient(self) -> Person:
        return self.dependent or self.subscriber


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """An ICD-10-CM code (with or without the dot); the first one given is the principal diagnosis."""

    SHARED_FROM_JSON: ClassVar[bool] = True  # a batch repeats it; no one's identity (jsonform)

    code: str
    admitting: bool = False

    def __post_init__(self) -> None:
        _need(bool(_ICD10.match(self.code)), "not an ICD-10-CM code", "code")
        object.__setattr__(self, "code", self.code.replace(".", ""))  # X12 carries codes without the dot

    @property
    def x12_code(self) -> str:
        return self.code


@dataclass(frozen=True, slots=True)
class Attachment:
    """PWK: documentation the provider holds (report type, how it is sent, attachment control number)."""

    report_type: str
    transmission: Literal["AA", "BM", "EL", "EM", "FX", "VO"]
    control_number: str | None = None


@dataclass(frozen=True, slots=True)
class ServiceLine:
    """One requested service (2000F): a procedure (SV1) or revenue code + procedure (SV2)."""

    procedure: Procedure | None = None
    revenue_code: str | None = None
    quantity: Decimal = Decimal(1)
    unit: Literal["UN", "MJ", "DA", "F2"] = "UN"
    service_date: DateRange | None = None
    visits: int | None = None
    trace_number: str | None = None

    def __post_init__(self) -> None:
        if self.procedure is None and self.revenue_code is None:
            raise RequestError("give procedure or revenue_code", field="procedure")
        if not self.quantity > 0:
            raise RequestError("must be positive", field="quantity")
        # SV1 (professional) takes UN, MJ or F2; SV2 (institutional, with a revenue code) UN, DA or F2.
        allowed = ("UN", "DA", "F2") if self.revenue_code else ("UN", "MJ", "F2")
        if self.unit not in allowed:
            reason = f"unit must be one of {', '.join(allowed)} for this kind of line"
            raise RequestError(reason, field="unit")


RequestCategory = Literal["AR", "HS", "IN", "SC"]
CertificationType = Literal["I", "R", "S", "3", "4"]


@dataclass(frozen=True, slots=True)
class ServiceReviewRequest:
    """One 278 request for review: one patient event (2000E) with zero or more service lines (2000F)."""

    trace_number: str
    payer: Payer
    requester: Provider
    subscriber: Person
    request_category: RequestCategory
    certification_type: CertificationType
    service_type: str
    facility_code: str
    facility_code_qualifier: Literal["A", "B"] = "B"
    level_of_service: Literal["E", "U", "03"] | None = None
    dependent: Person | None = None
    diagnoses: tuple[Diagnosis, ...] = ()
    admission_date: date | None = None
    discharge_date: date | None = None
    event_dates: DateRange | None = None
    days: int | None = None
    servicing_provider: Provider | None = None
    facility: Provider | None = None
    lines: tuple[ServiceLine, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    previous_certification: str | None = None
    trace_assigner: str = "9999999999"

    def __post_init__(self) -> None:
        _check_request(self.trace_number, self.trace_assigner, self.subscriber)
        # HI is situational in 2000E (the guide's own home-care and office-visit examples carry none)
        dx = self.diagnoses
        if len(dx) > 12:
            raise RequestError("at most 12 diagnoses", field="diagnoses")
        admitting = [d for d in dx[1:] if d.admitting]
        if len(admitting) > 1:
            raise RequestError("at most one admitting diagnosis", field="diagnoses")
        if dx and dx[0].admitting:
            reason = "the first (principal) diagnosis cannot be the admitting one"
            raise RequestError(reason, field="diagnoses")
        if admitting:  # the guide allows the admitting diagnosis (ABJ) only in HI02: keep one canonical order
            others = tuple(d for d in dx[1:] if not d.admitting)
            object.__setattr__(self, "diagnoses", (dx[0], admitting[0], *others))
        if len(self.attachments) > 10:
            raise RequestError("at most 10 attachments", field="attachments")
        if self.certification_type in ("S", "3", "4", "R") and not self.previous_certification:
            raise RequestError(
                "revision, renewal, extension and cancel need the previous certification number",
                field="previous_certification",
            )
        if self.request_category == "AR" and self.admission_date is None:
            raise RequestError("an admission review needs admission_date", field="admission_date")

    @property
    def patient(self) -> Person:
        return self.dependent or self.subscriber
