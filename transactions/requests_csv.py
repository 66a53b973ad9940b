"""The documented CSV form of eligibility batches (one 270 per row).

Columns (header row required, names case-insensitive, order free): ``payer_id``, ``payer_name``,
``provider_name``, ``provider_npi``, ``member_id``, ``last_name``, ``first_name``, ``birth_date``
(YYYY-MM-DD), ``gender`` (M/F/U), ``service_types`` (codes separated by spaces or ``;``, default 30),
``service_date`` (YYYY-MM-DD), optional ``reference`` (the billing system's own id, echoed in the
result), ``procedure_code``, ``dependent_last_name``, ``dependent_first_name``,
``dependent_birth_date``, ``dependent_gender``. Errors name the row and column, never the value.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

from transactions.errors import RequestError
from transactions.jsonform import from_dict
from transactions.models import EligibilityInquiry

REQUIRED = ("payer_id", "payer_name", "provider_name", "provider_npi", "member_id", "last_name", "first_name")
OPTIONAL = (
    "birth_date",
    "gender",
    "service_types",
    "service_date",
    "reference",
    "procedure_code",
    "dependent_last_name",
    "dependent_first_name",
    "dependent_birth_date",
    "dependent_gender",
)


def _person(row: dict[str, str], prefix: str) -> dict[str, Any] | None:
    last, first = row.get(f"{prefix}last_name", ""), row.get(f"{prefix}first_name", "")
    if not last and not first:
        return None
    person: dict[str, Any] = {"last_name": last, "first_name": first}
    if prefix == "":
        person["member_id"] = row["member_id"]
    if row.get(f"{prefix}birth_date"):
        person["birth_date"] = row[f"{prefix}birth_date"]
    if row.get(f"{prefix}gender"):
        person["gender"] = row[f"{prefix}gender"].upper()
    return person


def row_to_obj(row: dict[str, str]) -> dict[str, Any]:
    """One CSV row as the JSON form of an eligibility inquiry (``trace_number`` is the reference)."""
    obj: dict[str, Any] = {
        "trace_number": row.get("reference") or "PENDING",
        "payer": {"name": row["payer_name"], "id": row["payer_id"]},
        "provider": {"name": row["provider_name"], "npi": row["provider_npi"]},
        "subscriber": _person(row, ""),
    }
    dependent = _person(row, "dependent_")
    if dependent:
        obj["dependent"] = dependent
    if row.get("procedure_code"):
        obj["procedure"] = {"code": row["procedure_code"]}
    else:
        types = (row.get("service_types") or "30").replace(";", " ").split()
        obj["service_types"] = types
    if row.get("service_date"):
        obj["service_date"] = {"start": row["service_date"]}
    return obj


def parse_csv(text: str) -> Iterator[EligibilityInquiry | RequestError]:
    """Each data row as an inquiry, or as the RequestError that says which row and column is wrong."""
    reader = csv.DictReader(text.splitlines())
    header = {h.strip().lower() for h in (reader.fieldnames or [])}
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise RequestError(f"CSV header lacks column(s) {', '.join(missing)}", field="header")
    unknown = sorted(header - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise RequestError(f"CSV header has unknown column(s) {', '.join(unknown)}", field="header")
    for number, raw in enumerate(reader, start=2):
        row = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k}
        if not any(row.values()):
            continue
        try:
            yield from_dict(EligibilityInquiry, row_to_obj(row), f"row {number}")
        except RequestError as exc:
            yield exc
