"""(Re)write the synthetic sample interchanges: sample_edi/requests/*.x12 and sample_edi/responses/*.

Every request JSON in sample_edi/requests/ becomes the 270/278 interchange the gateway would send
(``<stem>.x12``), and every payer-side scenario below becomes a 271 or 278 response answering one of
those requests by trace number (BHT03 and TRN*2). Control numbers and timestamps are fixed, so running
this twice writes identical bytes; ``--check`` only compares and exits 1 when a file is stale.
The data is synthetic (CANARYTEST names, ZZM member ids): no PHI.

Usage: .venv/bin/python tools/make_samples.py [--check]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from payersim.build_responses import (
    EligibilityResponse,
    Response,
    ReviewResponse,
    build_response_interchange,
)
from transactions.decisions import (
    AuthPlacement,
    Benefit,
    Contact,
    EligibilityAnswer,
    LineDecision,
    Reference,
    Rejection,
    RelatedEntity,
    ReviewDecision,
)
from transactions.envelope_writer import InterchangeHeader
from transactions.errors import RequestError
from transactions.models import (
    Attachment,
    DateRange,
    EligibilityInquiry,
    Payer,
    Person,
    Procedure,
    ServiceReviewRequest,
)
from transactions.outbound import Request, build_request_interchange
from transactions.requests_json import parse_request_document

ROOT = Path(__file__).resolve().parent.parent
REQUESTS = ROOT / "sample_edi" / "requests"
RESPONSES = ROOT / "sample_edi" / "responses"
GATEWAY, CLEARING = "X12GATEWAY", "CANARYCLEAR"
SENT = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
ANSWERED = datetime(2026, 11, 25, 9, 5, tzinfo=UTC)
LATER = datetime(2026, 11, 27, 10, 15, tzinfo=UTC)
NEWLINE = "\n"  # one segment per line: easier to read and diff; readers ignore it
NATO = [
    "ALPHA",
    "BRAVO",
    "CHARLIE",
    "DELTA",
    "ECHO",
    "FOXTROT",
    "GOLF",
    "HOTEL",
    "INDIA",
    "JULIET",
    "KILO",
    "LIMA",
    "MIKE",
    "NOVEMBER",
    "OSCAR",
    "PAPA",
    "QUEBEC",
    "ROMEO",
    "SIERRA",
    "TANGO",
    "UNIFORM",
    "VICTOR",
    "WHISKEY",
    "XRAY",
    "YANKEE",
    "ZULU",
]
ALT_PAYERS: tuple[tuple[str, str, AuthPlacement], ...] = (
    ("ALTPAYER1", "AU-0101", "REF_BB"),
    ("ALTPAYER2", "AU-0102", "REF_NT"),
)


@dataclass(frozen=True)
class Scenario:
    """One response file: what it answers (request file stem) and how."""

    name: str
    answers: str
    what: str
    responses: tuple[Response, ...]
    when: datetime = ANSWERED


def load_requests() -> dict[str, Request]:
    """The sample request JSONs by file stem (each file holds one request)."""
    out: dict[str, Request] = {}
    for path in sorted(REQUESTS.glob("*.json")):
        parsed = parse_request_document(path.read_text(encoding="utf-8"))
        first = parsed[0]
        if isinstance(first, RequestError):
            raise first
        out[path.stem] = first
    return out


def batch_inquiries(template: EligibilityInquiry, count: int = 100) -> tuple[EligibilityInquiry, ...]:
    """``count`` synthetic subscribers (CANARYTEST, ZZM2... ids) asking the template's question."""
    out = []
    for i in range(1, count + 1):
        person = Person(
            last_name="CANARYTEST",
            first_name=NATO[i % 26],
            middle_name=NATO[(i // 26) % 26][0],
            member_id=f"ZZM2{i:08d}",
            birth_date=date(1940 + i % 60, 1 + i % 12, 1 + i % 28),
            gender="F" if i % 2 else "M",
        )
        out.append(
            dataclasses.replace(template, trace_number=f"EL-B{i:03d}", subscriber=person, dependent=None)
        )
    return tuple(out)


def alt_payer_requests(template: ServiceReviewRequest) -> dict[str, ServiceReviewRequest]:
    """The outpatient MRI request sent to payers whose 278 puts the authorization number in a REF."""
    out = {}
    for payer_id, trace, _ in ALT_PAYERS:
        payer = Payer(f"{payer_id} HEALTH", payer_id)
        lines = tuple(dataclasses.replace(line, trace_number=f"{trace}-1") for line in template.lines)
        out[f"278-{payer_id.lower()}-outpatient-mri"] = dataclasses.replace(
            template, trace_number=trace, payer=payer, lines=lines
        )
    return out


def _inquiry(reqs: dict[str, Request], stem: str) -> EligibilityInquiry:
    req = reqs[stem]
    if not isinstance(req, EligibilityInquiry):
        raise TypeError(f"{stem} is not a 270 request")
    return req


def _review(reqs: dict[str, Request], stem: str) -> ServiceReviewRequest:
    req = reqs[stem]
    if not isinstance(req, ServiceReviewRequest):
        raise TypeError(f"{stem} is not a 278 request")
    return req


PLAN = Reference("18", "CANARYGOLD01", "CANARY GOLD PPO")
GROUP = Reference("6P", "GRP0042", "CANARYTEST EMPLOYER GROUP")
PAYER_DESK = Contact("PROVIDER SERVICES", phone="8005550100", url="WWW.CANARY-PAYER.EXAMPLE")
PCP = RelatedEntity("P3", "CANARYTEST", "PCPDOC", "XX", "1234567893", phone="5555550199")
YEAR = DateRange(date(2026, 1, 1), date(2026, 12, 31))


def active_answer(*service_types: str) -> EligibilityAnswer:
    """Active PPO coverage with the usual cost-share lines, plus one EB per asked-for service type."""
    asked = tuple(Benefit.active(service_types=(st,)) for st in service_types if st != "30")
    return EligibilityAnswer(
        benefits=(
            Benefit.active("CANARY GOLD PPO", insurance_type="PR"),
            *asked,
            Benefit.copay(25, ("98",)),
            Benefit.copay(60, ("98",), in_network=False),
            Benefit.coinsurance(Decimal(".2"), ("98",)),
            Benefit.deductible(1500),
            Benefit.deductible(640, remaining=True),
            Benefit.out_of_pocket(6000),
            Benefit.out_of_pocket(4200, remaining=True),
            Benefit.primary_care_provider(PCP),
        ),
        plan=PLAN,
        group=GROUP,
        plan_dates=YEAR,
        eligibility_dates=DateRange(date(2019, 3, 1)),
        payer_contact=PAYER_DESK,
    )


def imaging_answer() -> EligibilityAnswer:
    """Active coverage for 62, 2, 48, DM, PT with limits, and authorization required for 70551-70553."""
    base = active_answer("62", "2", "48", "DM", "PT")
    imaging = tuple(
        Benefit.authorization(Procedure(code), service_types=("62",), message="PRIOR AUTHORIZATION REQUIRED")
        for code in ("70551", "70552", "70553")
    )
    extra = (
        Benefit.limitation(("PT",), 20),
        Benefit.copay(40, ("PT",)),
        Benefit.coinsurance(Decimal(".3"), ("DM",)),
        Benefit.non_covered(("AL",), "ROUTINE VISION NOT COVERED"),
        Benefit.authorization(required="N", service_types=("2",)),
        Benefit(
            code="B",
            service_types=("1", "33", "35", "47", "86", "88", "98", "AL", "MH", "UC"),
            insurance_type="PR",
            plan_name="CANARY GOLD PPO",
            period="27",
            amount=Decimal(25),
            in_network="Y",
        ),
    )
    return dataclasses.replace(base, benefits=(*base.benefits, *imaging, *extra))


def batch_answer(i: int) -> EligibilityAnswer:
    """Mostly active; every 10th inactive, every 10th (offset) subscriber not found."""
    if i % 10 == 7:
        return EligibilityAnswer(
            benefits=(Benefit.inactive(),), plan_dates=DateRange(date(2025, 1, 1), date(2025, 12, 31))
        )
    if i % 10 == 9:
        return EligibilityAnswer.subscriber_not_found()
    return EligibilityAnswer(
        benefits=(
            Benefit.active("CANARY GOLD PPO", insurance_type="PR"),
            Benefit.copay(25, ("98",)),
            Benefit.deductible(1500),
            Benefit.deductible(1500 - 10 * i, remaining=True),
        ),
        plan=PLAN,
        plan_dates=YEAR,
    )


def eligibility_scenarios(reqs: dict[str, Request]) -> list[Scenario]:
    sub, dep = _inquiry(reqs, "270-subscriber"), _inquiry(reqs, "270-dependent")
    several = _inquiry(reqs, "270-several-service-types")
    batch = batch_inquiries(sub)

    def one(
        name: str, inquiry: EligibilityInquiry, stem: str, what: str, answer: EligibilityAnswer
    ) -> Scenario:
        return Scenario(
            name, stem, what, (EligibilityResponse(inquiry, answer, f"PT{inquiry.trace_number}"),)
        )

    retry = Rejection("2000A", "42", valid_request=True)
    return [
        one(
            "271-subscriber-active",
            sub,
            "270-subscriber",
            "active coverage, cost shares, PCP (LS/NM1*P3/LE)",
            active_answer("30"),
        ),
        one(
            "271-dependent-active",
            dep,
            "270-dependent",
            "dependent patient: TRN and EB at 2000D/2110D",
            active_answer("30"),
        ),
        one(
            "271-several-service-types-auth-required-imaging",
            several,
            "270-several-service-types",
            "EB per service type; EB11=Y with EB13 HC:70551-70553; limits, non-covered, EB03 repetition",
            imaging_answer(),
        ),
        one(
            "271-subscriber-inactive",
            sub,
            "270-subscriber",
            "EB*6 inactive coverage",
            EligibilityAnswer(
                benefits=(Benefit.inactive(),), plan_dates=DateRange(date(2025, 1, 1), date(2025, 12, 31))
            ),
        ),
        one(
            "271-reject-2000A-unable-to-respond",
            sub,
            "270-subscriber",
            "AAA*Y**42*P at 2000A; no lower loops",
            EligibilityAnswer(rejections=(retry,)),
        ),
        one(
            "271-reject-2100A-no-payer-response",
            sub,
            "270-subscriber",
            "AAA*Y**80*P at 2100A (payer timed out)",
            EligibilityAnswer(rejections=(Rejection("2100A", "80", valid_request=True),)),
        ),
        one(
            "271-reject-2100B-provider-not-on-file",
            sub,
            "270-subscriber",
            "AAA*N**51*C at 2100B",
            EligibilityAnswer.reject("2100B", "51"),
        ),
        one(
            "271-reject-2100C-subscriber-not-found",
            sub,
            "270-subscriber",
            "AAA*N**75*C at 2100C",
            EligibilityAnswer.subscriber_not_found(),
        ),
        one(
            "271-reject-2100C-dependent-inquiry-subscriber-not-found",
            dep,
            "270-dependent",
            "AAA at 2100C for a dependent inquiry: 2000D dropped, TRN returned at 2000C",
            EligibilityAnswer.subscriber_not_found(),
        ),
        one(
            "271-reject-2100D-patient-not-found",
            dep,
            "270-dependent",
            "AAA*N**67*C at 2100D",
            EligibilityAnswer.reject("2100D", "67"),
        ),
        Scenario(
            "271-batch-100",
            "270-batch-100",
            "100 transaction sets (one patient each); every 10th inactive (i%10=7) or not found (i%10=9)",
            tuple(EligibilityResponse(q, batch_answer(i), None) for i, q in enumerate(batch, 1)),
        ),
    ]


CERT_WINDOW = DateRange(date(2026, 12, 1), date(2027, 2, 28))
DOCS_FOR_MRI = (Attachment("09", "FX"), Attachment("M1", "EL", "PEND0001"))


def review_scenarios(reqs: dict[str, Request]) -> list[Scenario]:
    mri, admit, dme = (
        _review(reqs, "278-outpatient-mri"),
        _review(reqs, "278-inpatient-admission"),
        _review(reqs, "278-dme-rental"),
    )
    ext, cancel, dep = (
        _review(reqs, "278-extension"),
        _review(reqs, "278-cancel"),
        _review(reqs, "278-retroactive"),
    )

    def one(
        name: str,
        req: ServiceReviewRequest,
        stem: str,
        what: str,
        decision: ReviewDecision,
        *,
        when: datetime = ANSWERED,
    ) -> Scenario:
        return Scenario(name, stem, what, (ReviewResponse(req, decision, f"UM{req.trace_number}"),), when)

    out = [
        one(
            "278resp-A1-certified",
            mri,
            "278-outpatient-mri",
            "HCR*A1 with certification number, REF*NT, DTP*007 RD8/036/102, line TRN echo",
            ReviewDecision(
                "A1",
                "ACMEAUTH0001",
                admin_reference="ADM0001",
                effective=DateRange(date(2026, 12, 5), date(2027, 3, 5)),
                expiration=date(2027, 3, 5),
            ),
        ),
        one(
            "278resp-A2-partial-admission",
            admit,
            "278-inpatient-admission",
            "event A2 (2 of 4 days, HSD*DY*2); line 1 A6 quantity 2, line 2 A1",
            ReviewDecision(
                "A2",
                "ACMEAUTH0002",
                admin_reference="ADM0002",
                effective=DateRange(date(2026, 12, 2), date(2026, 12, 3)),
                approved_days=2,
                lines=(LineDecision("A6", Decimal(2)), LineDecision("A1")),
                message="CONCURRENT REVIEW REQUIRED FOR ADDITIONAL DAYS",
            ),
        ),
        one(
            "278resp-A3-not-certified",
            ext,
            "278-extension",
            "HCR*A3 with reason code, MSG; line A3",
            ReviewDecision(
                "A3",
                reason="0F",
                admin_reference="ADM0004",
                message="EXTENSION NOT CERTIFIED - GOALS MET PER PROGRESS NOTES",
            ),
        ),
        one(
            "278resp-A4-pended-documentation",
            mri,
            "278-outpatient-mri",
            "BHT06 19, HCR*A4**0U, PWK*09*FX and PWK*M1*EL (AC control no.); first of a pair",
            ReviewDecision(
                "A4",
                reason="0U",
                admin_reference="PEND0001",
                documentation=DOCS_FOR_MRI,
                message="SEND OFFICE NOTES AND CONSERVATIVE TREATMENT HISTORY",
            ),
        ),
        one(
            "278resp-A4-pended-then-A1-approved",
            mri,
            "278-outpatient-mri",
            "second response to the same request (same BHT03/TRN): A1 after the documentation arrived",
            ReviewDecision(
                "A1",
                "ACMEAUTH0005",
                admin_reference="PEND0001",
                effective=DateRange(date(2026, 12, 5), date(2027, 3, 5)),
            ),
            when=LATER,
        ),
        one(
            "278resp-A6-modified-lines-differ",
            dme,
            "278-dme-rental",
            "event A6; line 1 A1 (3 months), line 2 A3 not certified",
            ReviewDecision(
                "A6",
                "ACMEAUTH0003",
                admin_reference="ADM0003",
                effective=CERT_WINDOW,
                lines=(
                    LineDecision("A1", Decimal(3), effective=CERT_WINDOW),
                    LineDecision("A3", reason="0F"),
                ),
            ),
        ),
        one(
            "278resp-C-cancelled",
            cancel,
            "278-cancel",
            "HCR*C for the cancel request, REF*BB echo of the previous certification",
            ReviewDecision("C", "CERT123456", admin_reference="ADM0005"),
        ),
        one(
            "278resp-CT-contact-payer",
            admit,
            "278-inpatient-admission",
            "HCR*CT; payer contact in 2010A PER",
            ReviewDecision(
                "CT",
                admin_reference="ADM0006",
                payer_contact=Contact("UM NURSE LINE", phone="8005550111"),
                message="CALL THE UM NURSE LINE TO COMPLETE THIS REVIEW",
            ),
        ),
        one(
            "278resp-NA-no-action-required",
            dep,
            "278-retroactive",
            "emergency service: HCR*NA; dependent patient (2000D)",
            ReviewDecision("NA", admin_reference="ADM0007"),
        ),
        one(
            "278resp-reject-2000A-unable-to-respond",
            mri,
            "278-outpatient-mri",
            "AAA*Y**42*P at 2000A",
            ReviewDecision(action=None, rejections=(Rejection("2000A", "42", valid_request=True),)),
        ),
        one(
            "278resp-reject-2010A-no-umo-response",
            mri,
            "278-outpatient-mri",
            "AAA*N**80*P at 2010A",
            ReviewDecision.reject("2010A", "80"),
        ),
        one(
            "278resp-reject-2010B-provider-not-on-file",
            dme,
            "278-dme-rental",
            "AAA*N**51*C at 2010B",
            ReviewDecision.reject("2010B", "51"),
        ),
        one(
            "278resp-reject-2010C-subscriber-not-found",
            mri,
            "278-outpatient-mri",
            "AAA*N**75*C at 2010C",
            ReviewDecision.reject("2010C", "75"),
        ),
        one(
            "278resp-reject-2010D-patient-not-found",
            dep,
            "278-retroactive",
            "AAA*N**77*C at 2010D",
            ReviewDecision.reject("2010D", "77"),
        ),
        one(
            "278resp-reject-2000E-authorization-not-found",
            cancel,
            "278-cancel",
            "AAA*N**AA*C at 2000E (UM echoed, no HCR, no 2000F)",
            ReviewDecision.reject("2000E", "AA"),
        ),
    ]
    for payer_id, _, placement in ALT_PAYERS:
        stem = f"278-{payer_id.lower()}-outpatient-mri"
        where = "REF*BB" if placement == "REF_BB" else "REF*NT"
        out.append(
            one(
                f"278resp-{payer_id}-auth-in-{where.replace('*', '-')}",
                _review(reqs, stem),
                stem,
                f"payer {payer_id} sends the authorization number in {where}, not HCR02 (mapping override)",
                ReviewDecision(
                    "A1",
                    f"{payer_id}AUTH77",
                    certification_in=placement,
                    effective=DateRange(date(2026, 12, 5), date(2027, 3, 5)),
                ),
            )
        )
    return out


def _header(control: int, when: datetime, sender: str, receiver: str) -> InterchangeHeader:
    return InterchangeHeader("ZZ", sender, "ZZ", receiver, control, when, usage="T")


def request_files(reqs: dict[str, Request]) -> dict[str, bytes]:
    """``<stem>.x12`` per request (the batch file holds 100 270s, one transaction set each)."""
    out: dict[str, bytes] = {}
    for n, (stem, batch) in enumerate(sorted(_request_batches(reqs).items()), 1):
        batch_out = build_request_interchange(
            batch,
            _header(100 + n, SENT, GATEWAY, CLEARING),
            application_sender=GATEWAY,
            application_receiver=CLEARING,
            group_controls=[100 + n],
            set_controls=list(range(1, len(batch) + 1)),
            newline=NEWLINE,
        )
        out[f"requests/{stem}.x12"] = batch_out.data
    return out


def _request_batches(reqs: dict[str, Request]) -> dict[str, Sequence[Request]]:
    batches: dict[str, Sequence[Request]] = {stem: [req] for stem, req in reqs.items()}
    batches["270-batch-100"] = batch_inquiries(_inquiry(reqs, "270-subscriber"))
    for stem, req in alt_payer_requests(_review(reqs, "278-outpatient-mri")).items():
        batches[stem] = [req]
    return batches


def response_files(reqs: dict[str, Request]) -> dict[str, bytes]:
    """Every scenario's response interchange, plus the README that lists them."""
    everything: dict[str, Request] = {**reqs, **alt_payer_requests(_review(reqs, "278-outpatient-mri"))}
    scenarios = eligibility_scenarios(everything) + review_scenarios(everything)
    out: dict[str, bytes] = {}
    for n, s in enumerate(scenarios, 1):
        data = build_response_interchange(
            s.responses,
            _header(500 + n, s.when, CLEARING, GATEWAY),
            application_sender=CLEARING,
            application_receiver=GATEWAY,
            group_controls=[500 + n],
            set_controls=list(range(1, len(s.responses) + 1)),
            newline=NEWLINE,
        ).data
        out[f"responses/{s.name}.x12"] = data
    out["responses/README.md"] = _readme(scenarios).encode("utf-8")
    return out


def _readme(scenarios: Sequence[Scenario]) -> str:
    lines = [
        "# Synthetic payer responses",
        "",
        "Written by `tools/make_samples.py` (do not edit by hand; rerun it). Each file answers the request",
        "interchange `sample_edi/requests/<request>.x12` (built from `<request>.json`, or derived in the",
        "script for `270-batch-100` and `278-altpayer*`): BHT03 is the request's BHT03 and the request TRN",
        "comes back as TRN*2 unchanged. Files answering the same request are alternative outcomes, except",
        "the A4/A1 pair, which is one request answered twice (pended, then approved two days later).",
        "",
        "Real-time rule: one patient per 271 transaction set. The batch file holds 100 sets in one",
        "interchange (one per 270 set of `270-batch-100.x12`) rather than 100 2000C loops in one set, so",
        "each set can be matched, acknowledged and rejected on its own.",
        "",
        "| File | Answers | Scenario |",
        "|---|---|---|",
    ]
    lines += [f"| {s.name}.x12 | {s.answers} | {s.what} |" for s in scenarios]
    return "\n".join(lines) + "\n"


def generate() -> dict[str, bytes]:
    """Every sample file, by path relative to sample_edi/ (pure: nothing is written)."""
    reqs = load_requests()
    return {**request_files(reqs), **response_files(reqs)}


def main(argv: Sequence[str] | None = None, write: Callable[[str], object] = sys.stdout.write) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if any file differs")
    args = parser.parse_args(argv)
    base = ROOT / "sample_edi"
    stale = []
    for rel, data in sorted(generate().items()):
        path = base / rel
        if path.exists() and path.read_bytes() == data:
            continue
        stale.append(rel)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    verb = "stale" if args.check else "written"
    write(f"{len(stale)} file(s) {verb}{': ' + ', '.join(stale) if stale else ''}\n")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
