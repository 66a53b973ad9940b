"""X12 codes as people read them: ``code (meaning)``, for the operators' human output (``log show``,
``auth show``, the web console). Pure data and one lookup; the tables were written for the gateway from
the code lists as the 5010 guides use them (999 and TA1 codes in ``transactions.findings``, payer
decisions in ``mappings.codes``). An unknown code is shown as itself, never guessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from mappings import codes
from transactions import findings

# IK501 (set), AK901 (group), TA104 (interchange): the verdict codes (element 717 / 715 / I17).
ACK_CODES = {
    "A": "accepted",
    "E": "accepted, errors noted",
    "M": "rejected, message authentication failed",
    "P": "partially accepted, at least one set rejected",
    "R": "rejected",
    "W": "rejected, assurance failed",
    "X": "rejected, content could not be decrypted",
}

# TA105 (I18): the codes ``transactions.findings`` does not raise itself are read from partners' TA1s.
TA1_NOTES = {
    **findings.TA1_CODES,
    "002": "standard in the control standards identifier is not supported",
    "006": "invalid interchange sender id",
    "008": "invalid interchange receiver id",
    "010": "invalid authorization information qualifier",
    "011": "invalid authorization information value",
    "012": "invalid security information qualifier",
    "013": "invalid security information value",
    "016": "invalid interchange standards identifier value",
    "022": "invalid control characters",
    "028": "invalid date in the deferred delivery request",
    "029": "invalid time in the deferred delivery request",
    "030": "invalid delivery time code in the deferred delivery request",
    "031": "invalid grade of service code",
}

# IK502-IK506 (718): set-level codes, with the security codes a partner may send.
SET_ERRORS = {
    **findings.SET_CODES,
    "8": "authentication key name unknown",
    "9": "encryption key name unknown",
    "10": "requested service (authentication or encryption) not available",
    "11": "unknown security recipient",
    "12": "incorrect message length (encryption only)",
    "13": "message authentication code failed",
    "15": "unknown security originator",
    "16": "syntax error in decrypted text",
    "17": "security not supported",
    "I5": "implementation: one or more segments in error",
}

# AK905-AK909 (716): group-level codes.
GROUP_ERRORS = {**findings.GROUP_CODES}

# Element 1365, the service types of EQ01, EB03 and UM03 (the ones 5010 eligibility and review use).
SERVICE_TYPES = {
    "1": "medical care",
    "2": "surgical",
    "3": "consultation",
    "4": "diagnostic x-ray",
    "5": "diagnostic lab",
    "6": "radiation therapy",
    "7": "anesthesia",
    "8": "surgical assistance",
    "9": "other medical",
    "10": "blood charges",
    "11": "used durable medical equipment",
    "12": "durable medical equipment purchase",
    "13": "ambulatory service center facility",
    "14": "renal supplies in the home",
    "15": "alternate method dialysis",
    "16": "chronic renal disease equipment",
    "17": "pre-admission testing",
    "18": "durable medical equipment rental",
    "19": "pneumonia vaccine",
    "20": "second surgical opinion",
    "21": "third surgical opinion",
    "22": "social work",
    "23": "diagnostic dental",
    "24": "periodontics",
    "25": "restorative",
    "26": "endodontics",
    "27": "maxillofacial prosthetics",
    "28": "adjunctive dental services",
    "30": "health benefit plan coverage",
    "32": "plan waiting period",
    "33": "chiropractic",
    "34": "chiropractic office visits",
    "35": "dental care",
    "36": "dental crowns",
    "37": "dental accident",
    "38": "orthodontics",
    "39": "prosthodontics",
    "40": "oral surgery",
    "41": "routine (preventive) dental",
    "42": "home health care",
    "43": "home health prescriptions",
    "44": "home health visits",
    "45": "hospice",
    "46": "respite care",
    "47": "hospital",
    "48": "hospital - inpatient",
    "49": "hospital - room and board",
    "50": "hospital - outpatient",
    "51": "hospital - emergency accident",
    "52": "hospital - emergency medical",
    "53": "hospital - ambulatory surgical",
    "54": "long term care",
    "55": "major medical",
    "56": "medically related transportation",
    "57": "air transportation",
    "58": "cabulance",
    "59": "licensed ambulance",
    "60": "general benefits",
    "61": "in-vitro fertilization",
    "62": "MRI/CAT scan",
    "63": "donor procedures",
    "64": "acupuncture",
    "65": "newborn care",
    "66": "pathology",
    "67": "smoking cessation",
    "68": "well baby care",
    "69": "maternity",
    "70": "transplants",
    "71": "audiology exam",
    "72": "inhalation therapy",
    "73": "diagnostic medical",
    "74": "private duty nursing",
    "75": "prosthetic device",
    "76": "dialysis",
    "77": "otological exam",
    "78": "chemotherapy",
    "79": "allergy testing",
    "80": "immunizations",
    "81": "routine physical",
    "82": "family planning",
    "83": "infertility",
    "84": "abortion",
    "85": "AIDS",
    "86": "emergency services",
    "87": "cancer",
    "88": "pharmacy",
    "89": "free standing prescription drug",
    "90": "mail order prescription drug",
    "91": "brand name prescription drug",
    "92": "generic prescription drug",
    "93": "podiatry",
    "94": "podiatry - office visits",
    "95": "podiatry - nursing home visits",
    "96": "professional (physician)",
    "97": "anesthesiologist",
    "98": "professional (physician) visit - office",
    "99": "professional (physician) visit - inpatient",
    "A0": "professional (physician) visit - outpatient",
    "A1": "professional (physician) visit - nursing home",
    "A2": "professional (physician) visit - skilled nursing facility",
    "A3": "professional (physician) visit - home",
    "A4": "psychiatric",
    "A5": "psychiatric - room and board",
    "A6": "psychotherapy",
    "A7": "psychiatric - inpatient",
    "A8": "psychiatric - outpatient",
    "A9": "rehabilitation",
    "AA": "rehabilitation - room and board",
    "AB": "rehabilitation - inpatient",
    "AC": "rehabilitation - outpatient",
    "AD": "occupational therapy",
    "AE": "physical medicine",
    "AF": "speech therapy",
    "AG": "skilled nursing care",
    "AH": "skilled nursing care - room and board",
    "AI": "substance abuse",
    "AJ": "alcoholism",
    "AK": "drug addiction",
    "AL": "vision (optometry)",
    "AM": "frames",
    "AN": "routine exam",
    "AO": "lenses",
    "AQ": "nonmedically necessary physical",
    "AR": "experimental drug therapy",
    "B1": "burn care",
    "B2": "brand name prescription drug - formulary",
    "B3": "brand name prescription drug - non-formulary",
    "BA": "independent medical evaluation",
    "BB": "partial hospitalization (psychiatric)",
    "BC": "day care (psychiatric)",
    "BD": "cognitive therapy",
    "BE": "massage therapy",
    "BF": "pulmonary rehabilitation",
    "BG": "cardiac rehabilitation",
    "BH": "pediatric",
    "BI": "nursery",
    "BJ": "skin",
    "BK": "orthopedic",
    "BL": "cardiac",
    "BM": "lymphatic",
    "BN": "gastrointestinal",
    "BP": "endocrine",
    "BQ": "neurology",
    "BR": "eye",
    "BS": "invasive procedures",
    "BY": "physician visit - office: sick",
    "BZ": "physician visit - office: well",
    "CF": "mental health provider - outpatient",
    "DM": "durable medical equipment",
    "IC": "intensive care",
    "MH": "mental health",
    "PT": "physical therapy",
    "UC": "urgent care",
}

TABLES: Mapping[str, Mapping[str, str]] = {
    "ack": ACK_CODES,  # IK501, AK901, TA104
    "ta1_note": TA1_NOTES,  # TA105
    "segment_error": findings.SEGMENT_CODES,  # IK304
    "element_error": findings.ELEMENT_CODES,  # IK403
    "set_error": SET_ERRORS,  # IK502-IK506
    "group_error": GROUP_ERRORS,  # AK905-AK909
    "action": {code: text for code, (_status, text) in codes.HCR_ACTIONS.items()},  # HCR01
    "decision_reason": codes.DECISION_REASONS,  # HCR03 (code source 886)
    "reject_reason": codes.REJECT_REASONS,  # AAA03
    "follow_up": codes.FOLLOW_UP,  # AAA04
    "eligibility": codes.ELIGIBILITY,  # EB01
    "service_type": SERVICE_TYPES,  # EQ01, EB03, UM03
}


def meaning(table: str, code: str | None) -> str | None:
    """What ``code`` means in ``table`` (a key of TABLES), or None when the table does not list it."""
    if not code:
        return None
    return TABLES[table].get(code.strip())


def describe(table: str, code: str | None) -> str | None:
    """``code (meaning)``, the code alone when the table does not list it, None for no code."""
    if not code:
        return None
    text = meaning(table, code)
    return f"{code} ({text})" if text else code


def describe_all(table: str, values: Iterable[str | None]) -> str:
    """Several codes of one table, comma-separated (``30 (health benefit plan coverage), 98 (...)``)."""
    return ", ".join(d for d in (describe(table, v) for v in values) if d)


def decision_summary(record: Mapping[str, object]) -> str | None:
    """Why a response is not a plain yes, for the result file's top-level ``reason``: the HCR01 action,
    the HCR03 reason and any AAA rejections, decoded (``A3 (not certified); reason 0U (...)``). None
    when the record carries none of them."""
    parts = [describe("action", _text(record.get("action_code")))]
    reason = describe("decision_reason", _text(record.get("reason_code")))
    parts.append(f"reason {reason}" if reason else None)
    rejections = record.get("rejections")
    for r in rejections if isinstance(rejections, list | tuple) else ():
        if isinstance(r, Mapping):
            parts.append(f"rejected {describe('reject_reason', _text(r.get('reason_code'))) or ''}".strip())
            follow = describe("follow_up", _text(r.get("follow_up_code")))
            parts.append(f"follow-up {follow}" if follow else None)
    shown = [p for p in parts if p]
    return "; ".join(shown) if shown else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
