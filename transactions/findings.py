"""Validation findings as data: what the 999 and TA1 say, and what operators read.

Codes are the X12 ones (IK304 segment errors, IK403 element errors, IK502 set errors, AK905 group
errors, TA105 interchange notes). Messages are written here from the code and the map's names, never
from the data, so a finding can be logged without leaking PHI.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Envelope quirks seen in real traffic. Each is one finding with its 999/TA1 code; a partner's
# ``leniency`` lists those accepted with a warning instead of an error (default: strict).
QUIRKS = {
    "version": "another errata of a supported guide in GS08/ST03 (e.g. 005010X279 for 005010X279A1)",
    "gs01": "GS01 names another functional group than the set's own (e.g. a 271 in an HS group)",
    "gs08": "GS08 and ST03 name different guides",
    "isa12": "ISA12 is not 00501 around 5010 content",
}

SEGMENT_CODES = {
    "1": "unrecognized segment id",
    "2": "unexpected segment",
    "3": "required segment missing",
    "4": "loop occurs over maximum times",
    "5": "segment exceeds maximum use",
    "6": "segment not in defined transaction set",
    "7": "segment not in proper sequence",
    "8": "segment has data element errors",
    "I4": "implementation 'not used' segment present",
    "I6": "implementation dependent segment missing",
    "I7": "implementation loop occurs under minimum times",
    "I8": "implementation segment below minimum use",
    "I9": "implementation dependent 'not used' segment present",
}
ELEMENT_CODES = {
    "1": "required data element missing",
    "2": "conditional required data element missing",
    "3": "too many data elements",
    "4": "data element too short",
    "5": "data element too long",
    "6": "invalid character in data element",
    "7": "invalid code value",
    "8": "invalid date",
    "9": "invalid time",
    "10": "exclusion condition violated",
    "12": "too many repetitions",
    "13": "too many components",
    "I6": "code value not used in implementation",
    "I9": "implementation dependent data element missing",
    "I10": "implementation 'not used' data element present",
    "I11": "implementation too few repetitions",
    "I12": "implementation pattern match failure",
    "I13": "implementation dependent 'not used' data element present",
}
SET_CODES = {
    "1": "transaction set not supported",
    "2": "transaction set trailer missing",
    "3": "ST02 and SE02 control numbers do not match",
    "4": "SE01 segment count is wrong",
    "5": "one or more segments in error",
    "6": "missing or invalid transaction set identifier",
    "7": "missing or invalid transaction set control number",
    "18": "transaction set not in functional group",
    "19": "invalid implementation convention reference",
    "23": "transaction set control number not unique within the group",
    "I6": "implementation convention not supported",
}
GROUP_CODES = {
    "1": "functional group not supported",
    "2": "functional group version not supported",
    "3": "functional group trailer missing",
    "4": "GS06 and GE02 control numbers do not match",
    "5": "GE01 transaction set count is wrong",
    "6": "group control number violates syntax",
    "19": "group control number not unique within the interchange",
}
TA1_CODES = {
    "000": "no error",
    "001": "ISA13 and IEA02 control numbers do not match",
    "003": "version of the controls is not supported",
    "004": "segment terminator is invalid",
    "005": "invalid interchange id qualifier for sender",
    "007": "invalid interchange id qualifier for receiver",
    "009": "unknown interchange receiver id",
    "014": "invalid interchange date",
    "015": "invalid interchange time",
    "017": "invalid interchange version id",
    "018": "invalid interchange control number",
    "019": "invalid acknowledgment requested value",
    "020": "invalid test indicator value",
    "021": "invalid number of included groups",
    "023": "premature end of file",
    "024": "invalid interchange content",
    "025": "duplicate interchange control number",
    "026": "invalid data element separator",
    "027": "invalid component element separator",
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One error or warning inside a transaction set (a 999 IK3, optionally with its IK4)."""

    segment: str  # segment id (IK301)
    position: int  # segment position in the set, ST = 1 (IK302)
    loop: str | None  # loop id (IK303)
    code: str  # IK304 (segment level) or IK403 (element level)
    message: str
    element: str | None = None  # e.g. "NM109" or "SV101-02"
    element_position: tuple[int, int | None, int | None] | None = (
        None  # IK401: element, component, repetition
    )
    element_ref: str | None = None  # data element reference number (IK402)
    severity: str = "error"  # "error" or "warning"

    @property
    def is_element(self) -> bool:
        return self.element_position is not None


@dataclass(frozen=True, slots=True)
class SetReport:
    """Verdict for one transaction set (a 999 AK2 .. IK5)."""

    set_id: str
    control_number: str
    version: str
    ack_code: str  # IK501: A, E or R
    set_codes: tuple[str, ...]  # IK502..IK506
    findings: tuple[Finding, ...]
    map: str | None  # abbr of the map used (270, 271, 278req, 278resp, 999 ...)
    offset: int
    segment_count: int
    notes: tuple[str, ...] = ()  # what the envelope quirks behind set_codes were (plain language)

    @property
    def accepted(self) -> bool:
        return self.ack_code in ("A", "E")


@dataclass(frozen=True, slots=True)
class GroupReport:
    """Verdict for one functional group (a 999 AK1 .. AK9)."""

    functional_id: str
    control_number: str
    version: str
    ack_code: str  # AK901: A, E, P or R
    group_codes: tuple[str, ...]  # AK905..AK909
    declared_count: int | None  # GE01 as received
    sets: tuple[SetReport, ...]

    @property
    def accepted_count(self) -> int:
        return sum(1 for s in self.sets if s.accepted)


@dataclass(frozen=True, slots=True)
class Ta1Verdict:
    """Whether a TA1 is due for an interchange, and what it says."""

    ack_code: str  # TA104: A, E or R
    note_code: str  # TA105
    message: str


@dataclass(frozen=True, slots=True)
class InterchangeReport:
    control_number: str
    sender_qualifier: str
    sender: str
    receiver_qualifier: str
    receiver: str
    date: str  # ISA09 as received
    time: str  # ISA10 as received
    usage: str
    ack_requested: bool
    ta1: Ta1Verdict | None  # set when an envelope error was found or ISA14 asked for one
    groups: tuple[GroupReport, ...]
    offset: int
    warnings: tuple[str, ...] = ()  # envelope quirks accepted by leniency (validation.QUIRKS)
    misaddressed: str | None = None  # why the interchange is not for us (ISA08/GS03), if it is not

    @property
    def rejected(self) -> bool:
        return self.ta1 is not None and self.ta1.ack_code == "R"


@dataclass(frozen=True, slots=True)
class ValidationReport:
    interchanges: tuple[InterchangeReport, ...]
    fatal: str | None = None  # set when the data is not readable X12 at all
    warnings: tuple[str, ...] = field(default=())

    @property
    def all_accepted(self) -> bool:
        return (
            self.fatal is None
            and bool(self.interchanges)
            and not any(i.rejected for i in self.interchanges)
            and all(g.ack_code in ("A", "E") for i in self.interchanges for g in i.groups)
        )


def set_validation(ic: InterchangeReport, group: GroupReport, s: SetReport) -> str:
    """The acknowledgment verdict on one set as operators read it beside a mapped record:
    ``accepted`` (999 A), ``accepted_with_errors`` (999 E: warnings or errors noted) or ``rejected``
    (the set, its group or its interchange rejected). The business verdict, whether the payer's
    decision could be read, is separate: a rejected set is still mapped when it is readable."""
    if ic.rejected or group.ack_code == "R" or s.ack_code == "R":
        return "rejected"
    return "accepted" if s.ack_code == "A" and not s.findings else "accepted_with_errors"


def finding_json(f: Finding) -> dict[str, object]:
    return {
        "segment": f.segment,
        "position": f.position,
        "loop": f.loop,
        "element": f.element,
        "code": f.code,
        "message": f.message,
        "severity": f.severity,
    }


def set_json(s: SetReport) -> dict[str, object]:
    """One transaction set as it appears in ``x12gw validate --json`` (and alone in ``--jsonl``)."""
    return {
        "id": s.set_id,
        "control_number": s.control_number,
        "ack_code": s.ack_code,
        "map": s.map,
        "set_errors": [{"code": c, "message": SET_CODES.get(c, c)} for c in s.set_codes if c != "5"],
        "notes": list(s.notes),
        "errors": [finding_json(f) for f in s.findings if f.severity == "error"],
        "warnings": [finding_json(f) for f in s.findings if f.severity != "error"],
    }


def interchange_json(i: InterchangeReport) -> dict[str, object]:
    """The ``x12gw validate --json`` form of one interchange report."""
    return {
        "control_number": i.control_number,
        "sender": i.sender,
        "receiver": i.receiver,
        "warnings": list(i.warnings),
        "misaddressed": i.misaddressed,
        "ta1": None
        if i.ta1 is None
        else {"ack_code": i.ta1.ack_code, "note_code": i.ta1.note_code, "message": i.ta1.message},
        "groups": [
            {
                "control_number": g.control_number,
                "functional_id": g.functional_id,
                "version": g.version,
                "ack_code": g.ack_code,
                "group_errors": [{"code": c, "message": GROUP_CODES.get(c, c)} for c in g.group_codes],
                "transaction_sets": [set_json(s) for s in g.sets],
            }
            for g in i.groups
        ],
    }
