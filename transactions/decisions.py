"""What a payer answers: the inputs of the 271 and 278 response builders.

These small frozen dataclasses let the clearinghouse simulator, the tests and the sample generator
say "active coverage, $25 office copay, MRI needs authorization" or "event modified: line 1
certified, line 2 not certified" in a line or two; the builders (``build271``, ``build278resp``) turn
them into implementation-guide segments. Only plain field types are used (str, int, Decimal, date,
tuples of dataclasses), so ``transactions.jsonform.from_dict`` can load them from JSON as well.

Rejections (AAA) are given per loop; the first rejected level ends the response there, as the guides
require ("lower loops are not sent"), so giving a rejection deeper than another one is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal

from transactions.errors import RequestError
from transactions.models import Attachment, DateRange, Procedure

YesNoUnknown = Literal["Y", "N", "U"]
# HCR01 (el. 306): A1 certified in total, A2 certified partial, A3 not certified, A4 pended,
# A6 modified, C cancelled, CT contact payer, NA no action required.
EventAction = Literal["A1", "A2", "A3", "A4", "A6", "C", "CT", "NA"]
LineAction = Literal["A1", "A3", "A4", "A6", "C", "CT", "NA"]  # A2 is not allowed at 2000F
CERTIFYING: frozenset[str] = frozenset({"A1", "A2", "A6"})

LEVELS_271 = ("2000A", "2100A", "2100B", "2100C", "2100D")
LEVELS_278 = ("2000A", "2010A", "2010B", "2010C", "2010D", "2000E")
# Reasons that mean "try again later": the follow-up defaults to "resubmit" rather than "correct".
_RETRY_REASONS = frozenset({"42", "80"})
_TOP_LEVELS = frozenset({"2000A", "2100A", "2010A"})


class DecisionError(RequestError):
    """A decision cannot be expressed for the request it answers (``field`` names the attribute)."""


def _need(cond: bool, message: str, name: str) -> None:
    if not cond:
        raise DecisionError(message, field=name)


@dataclass(frozen=True, slots=True)
class Rejection:
    """An AAA segment: the request could not be processed at ``level`` for ``reason`` (AAA03, el. 901).

    ``valid_request`` is AAA01 (``N``: the request or one of its values is invalid; ``Y``: the request
    was valid but still cannot be answered). ``follow_up`` is AAA04; left ``None`` it becomes ``P``
    (resubmit original) at the top levels or ``R`` (resubmission allowed) below for "try later"
    reasons 42/80, otherwise ``C`` (correct and resubmit), or ``N`` at 278 2010A, which allows no ``C``.
    """

    level: str
    reason: str
    follow_up: str | None = None
    valid_request: bool = False

    def __post_init__(self) -> None:
        _need(
            self.level in LEVELS_271 or self.level in LEVELS_278 or self.level == "2000F",
            "not a loop that carries a rejection",
            "level",
        )
        _need(1 <= len(self.reason) <= 3 and self.reason.isalnum(), "AAA03 is a 1-3 character code", "reason")

    @property
    def aaa01(self) -> str:
        return "Y" if self.valid_request else "N"

    @property
    def aaa04(self) -> str:
        if self.follow_up:
            return self.follow_up
        if self.reason in _RETRY_REASONS:
            return "P" if self.level in _TOP_LEVELS else "R"
        return "N" if self.level == "2010A" else "C"


@dataclass(frozen=True, slots=True)
class Contact:
    """A PER segment (PER01 IC): who to call, and how."""

    name: str | None = None
    phone: str | None = None
    fax: str | None = None
    email: str | None = None
    url: str | None = None

    def __post_init__(self) -> None:
        _need(
            any((self.phone, self.fax, self.email, self.url)),
            "give at least one way to reach the contact",
            "phone",
        )


@dataclass(frozen=True, slots=True)
class ServiceDelivery:
    """An HSD segment: quantity (HSD01/02), unit (HSD03), time period and count (HSD05/06).

    E.g. 20 visits per service year: ``ServiceDelivery("VS", 20, period="22")``.
    """

    qualifier: str
    quantity: Decimal
    unit: str | None = None
    period: str | None = None
    period_count: int | None = None

    def __post_init__(self) -> None:
        _need(
            self.period_count is None or self.period is not None,
            "a period count needs a period (C0605)",
            "period",
        )


@dataclass(frozen=True, slots=True)
class RelatedEntity:
    """A benefit-related entity (271 LS*2120 / 2120C-D NM1 / LE*2120): primary care provider (P3), other
    payer (PRP, SEP, TTP), ... ``first_name`` set means a person (NM102 1)."""

    entity: str
    name: str
    first_name: str | None = None
    id_qualifier: str | None = None
    id: str | None = None
    phone: str | None = None

    def __post_init__(self) -> None:
        _need(
            (self.id_qualifier is None) == (self.id is None),
            "give both id_qualifier and id, or neither (P0809)",
            "id",
        )


@dataclass(frozen=True, slots=True)
class Reference:
    """A REF segment: qualifier, value and (REF03) description such as a plan or group name."""

    qualifier: str
    value: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class BenefitDate:
    """A DTP in 2110C/D, e.g. ``BenefitDate("292", DateRange(...))`` for a benefit period."""

    qualifier: str
    dates: DateRange


def _money(value: Decimal | int | str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


@dataclass(frozen=True, slots=True)
class Benefit:
    """One EB segment (loop 2110C/2110D) with its HSD, REF, DTP, MSG and related entities.

    Field names follow EB01..EB13. Use the class methods for the common answers
    (:meth:`active`, :meth:`copay`, :meth:`deductible`, :meth:`authorization` ...).
    """

    code: str
    service_types: tuple[str, ...] = ()
    coverage_level: str | None = None
    insurance_type: str | None = None
    plan_name: str | None = None
    period: str | None = None
    amount: Decimal | None = None
    percent: Decimal | None = None
    quantity_qualifier: str | None = None
    quantity: Decimal | None = None
    authorization_required: YesNoUnknown | None = None
    in_network: Literal["Y", "N", "U", "W"] | None = None
    procedure: Procedure | None = None
    delivery: tuple[ServiceDelivery, ...] = ()
    references: tuple[Reference, ...] = ()
    dates: tuple[BenefitDate, ...] = ()
    messages: tuple[str, ...] = ()
    entities: tuple[RelatedEntity, ...] = ()

    def __post_init__(self) -> None:
        _need(len(self.service_types) <= 99, "at most 99 service types (EB03 repeats 99)", "service_types")
        _need(
            (self.quantity is None) == (self.quantity_qualifier is None),
            "EB09 and EB10 go together (P0910)",
            "quantity_qualifier",
        )
        _need(
            self.percent is None or 0 <= self.percent <= 1,
            "a percent is a fraction between 0 and 1",
            "percent",
        )
        _need(len(self.delivery) <= 9, "at most 9 HSD", "delivery")
        _need(len(self.references) <= 9, "at most 9 REF", "references")
        _need(len(self.dates) <= 20, "at most 20 DTP", "dates")
        _need(len(self.messages) <= 10, "at most 10 MSG", "messages")
        _need(all(1 <= len(m) <= 264 for m in self.messages), "MSG text is 1-264 characters", "messages")
        _need(len(self.entities) <= 23, "at most 23 related entities", "entities")

    @classmethod
    def active(
        cls,
        plan_name: str | None = None,
        service_types: tuple[str, ...] = ("30",),
        *,
        insurance_type: str | None = None,
        coverage_level: str | None = "IND",
    ) -> Benefit:
        """EB*1: active coverage (EB03 30 = health benefit plan coverage by default)."""
        return cls("1", service_types, coverage_level, insurance_type, plan_name)

    @classmethod
    def inactive(cls, service_types: tuple[str, ...] = ("30",)) -> Benefit:
        """EB*6: inactive coverage."""
        return cls("6", service_types)

    @classmethod
    def copay(
        cls,
        amount: Decimal | int | str,
        service_types: tuple[str, ...],
        *,
        in_network: bool = True,
        period: str = "27",
        coverage_level: str | None = "IND",
    ) -> Benefit:
        """EB*B: a co-payment of ``amount`` per ``period`` (27 = visit), in or out of network (EB12)."""
        return cls(
            "B",
            service_types,
            coverage_level,
            period=period,
            amount=_money(amount),
            in_network="Y" if in_network else "N",
        )

    @classmethod
    def coinsurance(
        cls,
        percent: Decimal | str,
        service_types: tuple[str, ...],
        *,
        in_network: bool = True,
        coverage_level: str | None = "IND",
    ) -> Benefit:
        """EB*A: co-insurance as a fraction (EB08 ``.2`` = the patient pays 20 %)."""
        return cls(
            "A",
            service_types,
            coverage_level,
            percent=Decimal(percent),
            in_network="Y" if in_network else "N",
        )

    @classmethod
    def deductible(
        cls,
        amount: Decimal | int | str,
        *,
        remaining: bool = False,
        coverage_level: str = "IND",
        service_types: tuple[str, ...] = ("30",),
        in_network: bool = True,
    ) -> Benefit:
        """EB*C: the calendar-year deductible (EB06 23) or what remains of it (EB06 29)."""
        return cls(
            "C",
            service_types,
            coverage_level,
            period="29" if remaining else "23",
            amount=_money(amount),
            in_network="Y" if in_network else "N",
        )

    @classmethod
    def out_of_pocket(
        cls,
        amount: Decimal | int | str,
        *,
        remaining: bool = False,
        coverage_level: str = "IND",
        service_types: tuple[str, ...] = ("30",),
        in_network: bool = True,
    ) -> Benefit:
        """EB*G: the out-of-pocket (stop loss) maximum per calendar year (23) or what remains (29)."""
        return cls(
            "G",
            service_types,
            coverage_level,
            period="29" if remaining else "23",
            amount=_money(amount),
            in_network="Y" if in_network else "N",
        )

    @classmethod
    def limitation(
        cls,
        service_types: tuple[str, ...],
        visits: int,
        *,
        period: str = "23",
        coverage_level: str | None = "IND",
    ) -> Benefit:
        """EB*F: at most ``visits`` visits per ``period`` (EB09 VS / EB10, plus the same as HSD)."""
        return cls(
            "F",
            service_types,
            coverage_level,
            period=period,
            quantity_qualifier="VS",
            quantity=Decimal(visits),
            delivery=(ServiceDelivery("VS", Decimal(visits), period=period),),
        )

    @classmethod
    def non_covered(cls, service_types: tuple[str, ...], message: str | None = None) -> Benefit:
        """EB*I: the service types are not covered."""
        return cls("I", service_types, messages=(message,) if message else ())

    @classmethod
    def authorization(
        cls,
        procedure: Procedure | None = None,
        *,
        required: YesNoUnknown = "Y",
        service_types: tuple[str, ...] = (),
        in_network: Literal["Y", "N", "U", "W"] | None = "Y",
        message: str | None = None,
    ) -> Benefit:
        """EB*1 with EB11 (Y required, N not required, U unknown) for a procedure (EB13) or service types."""
        return cls(
            "1",
            service_types,
            authorization_required=required,
            in_network=in_network,
            procedure=procedure,
            messages=(message,) if message else (),
        )

    @classmethod
    def primary_care_provider(
        cls, provider: RelatedEntity, service_types: tuple[str, ...] = ("30",)
    ) -> Benefit:
        """EB*L with the PCP in LS*2120 / NM1*P3 / LE*2120."""
        return cls("L", service_types, entities=(provider,))


@dataclass(frozen=True, slots=True)
class EligibilityAnswer:
    """What the information source answers to one 270 inquiry (one 271 patient).

    ``plan`` / ``group`` become REF*18 / REF*6P with the name in REF03; ``plan_dates`` DTP*346 (begin)
    and DTP*347 (end); ``eligibility_dates`` DTP*356 (begin) and DTP*357 (end).
    """

    benefits: tuple[Benefit, ...] = ()
    rejections: tuple[Rejection, ...] = ()
    plan: Reference | None = None
    group: Reference | None = None
    plan_dates: DateRange | None = None
    eligibility_dates: DateRange | None = None
    payer_contact: Contact | None = None

    def __post_init__(self) -> None:
        for r in self.rejections:
            _need(r.level in LEVELS_271, "a 271 rejects at 2000A, 2100A, 2100B, 2100C or 2100D", "rejections")
        _need(self.plan is None or self.plan.qualifier == "18", "the plan reference is REF*18", "plan")
        _need(self.group is None or self.group.qualifier == "6P", "the group reference is REF*6P", "group")
        _stop(self.rejections, LEVELS_271)

    @classmethod
    def reject(cls, level: str, reason: str, follow_up: str | None = None) -> EligibilityAnswer:
        """A 271 that only says why the inquiry cannot be answered (AAA at ``level``)."""
        return cls(rejections=(Rejection(level, reason, follow_up),))

    @classmethod
    def subscriber_not_found(cls) -> EligibilityAnswer:
        """AAA*N**75*C at 2100C: subscriber/insured not found."""
        return cls.reject("2100C", "75")

    @property
    def stop_level(self) -> str | None:
        """The first (highest) rejected loop: the response ends there."""
        return _stop(self.rejections, LEVELS_271)


@dataclass(frozen=True, slots=True)
class LineDecision:
    """The UMO's decision on one requested service line (one 2000F).

    ``quantity`` is the approved quantity (HSD; ``None`` = as requested when certified) and
    ``visits`` the approved visits; ``certification_number`` defaults to the event's for certified
    lines. ``rejection`` (level 2000F) sends AAA instead of HCR.
    """

    action: LineAction | None = "A1"
    quantity: Decimal | None = None
    certification_number: str | None = None
    reason: str | None = None
    visits: int | None = None
    effective: DateRange | None = None
    expiration: date | None = None
    documentation: tuple[Attachment, ...] = ()
    message: str | None = None
    rejection: Rejection | None = None

    def __post_init__(self) -> None:
        _need(
            self.action is not None or self.rejection is not None, "give an action or a rejection", "action"
        )
        _need(
            self.rejection is None or self.rejection.level == "2000F",
            "a line rejection is at 2000F",
            "rejection",
        )
        _need(
            self.quantity is None or self.quantity >= 0,
            "the approved quantity cannot be negative",
            "quantity",
        )
        _need(len(self.documentation) <= 10, "at most 10 PWK", "documentation")
        _need(
            all(a.transmission != "AA" for a in self.documentation),
            "a response PWK02 is BM, EL, EM, FX or VO",
            "documentation",
        )


AuthPlacement = Literal["HCR02", "REF_BB", "REF_NT"]


@dataclass(frozen=True, slots=True)
class ReviewDecision:
    """The UMO's answer to one 278 request (the 2000E patient event and its 2000F lines).

    ``certification_number`` is HCR02 (the authorization number); ``certification_in`` moves it to
    REF*BB or REF*NT for payers that send it there instead (a per-payer mapping override downstream).
    ``effective`` / ``expiration`` / ``issued`` are DTP*007 (RD8 for a range) / 036 / 102 (``issued``
    defaults to the response date for certified decisions). ``approved_days`` is HSD*DY (admissions).
    ``documentation`` (PWK) says what a pended review needs. ``lines``: one per request line, in order,
    or empty to apply the event action to every line. ``further_updates`` sets BHT06 (19 vs 18);
    ``None`` means "19 when anything is pended".
    """

    action: EventAction | None = "A1"
    certification_number: str | None = None
    reason: str | None = None
    second_opinion: Literal["Y", "N"] | None = None
    admin_reference: str | None = None
    effective: DateRange | None = None
    expiration: date | None = None
    issued: date | None = None
    approved_days: int | None = None
    documentation: tuple[Attachment, ...] = ()
    message: str | None = None
    lines: tuple[LineDecision, ...] = ()
    rejections: tuple[Rejection, ...] = ()
    payer_contact: Contact | None = None
    certification_in: AuthPlacement = "HCR02"
    further_updates: bool | None = None

    def __post_init__(self) -> None:
        _need(self.action is not None or bool(self.rejections), "give an action or a rejection", "action")
        for r in self.rejections:
            _need(
                r.level in LEVELS_278,
                "a 278 rejects at 2000A, 2010A, 2010B, 2010C, 2010D or 2000E",
                "rejections",
            )
        _need(len(self.documentation) <= 10, "at most 10 PWK", "documentation")
        _need(
            all(a.transmission != "AA" for a in self.documentation),
            "a response PWK02 is BM, EL, EM, FX or VO",
            "documentation",
        )
        _need(
            self.message is None or 1 <= len(self.message) <= 264, "MSG text is 1-264 characters", "message"
        )
        _need(
            not (self.certification_in == "REF_NT" and self.admin_reference),
            "REF*NT holds either the admin reference or the certification number",
            "admin_reference",
        )
        _stop(self.rejections, LEVELS_278)

    @classmethod
    def reject(cls, level: str, reason: str, follow_up: str | None = None) -> ReviewDecision:
        """A 278 response that only says why the request cannot be reviewed (AAA at ``level``)."""
        return cls(action=None, rejections=(Rejection(level, reason, follow_up),))

    @property
    def stop_level(self) -> str | None:
        """The first (highest) rejected loop: the response ends there."""
        return _stop(self.rejections, LEVELS_278)

    @property
    def pended(self) -> bool:
        return self.action == "A4" or any(line.action == "A4" for line in self.lines)


def _stop(rejections: tuple[Rejection, ...], order: tuple[str, ...]) -> str | None:
    if not rejections:
        return None
    levels = sorted({r.level for r in rejections}, key=order.index)
    _need(len(levels) == 1, "rejections at two levels: the first one ends the response", "rejections")
    return levels[0]
