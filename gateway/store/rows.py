"""What the store hands back: frozen rows, one dataclass per table, built from result mappings.

Fields that hold PHI (request payloads, parsed result records) are left out of ``repr`` so a row that
ends up in a log line or an assertion message does not print a member's name or birth date.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy import Row

T = TypeVar("T")


def from_mapping(cls: type[T], row: Row[Any], **extra: Any) -> T:
    """Build ``cls`` from a result row, taking the columns the dataclass names."""
    keys = row._fields
    if len(keys) != len(row):  # a column without a name (none in this store's statements)
        return _by_mapping(cls, row, **extra)
    picks = _PICKS.get((cls, keys))
    if picks is None:
        picks = _picks(cls, keys)
    # the fields' columns by position: no dict of the whole row per row (rows are built while the
    # writer lock is held)
    return cls(**{name: row[i] for name, i in picks}, **extra)


def _picks(cls: type[Any], keys: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    """Where each field ``cls`` names sits in rows with these column keys, every column named (the
    last column of a name, as a dict of the row keeps it), found once per class and keys."""
    names = _FIELD_NAMES.get(cls)
    if names is None:  # ``fields`` per row was a visible share of every read
        names = _FIELD_NAMES.setdefault(cls, tuple(f.name for f in fields(cls)))
    index = {key: i for i, key in enumerate(keys)}
    picks = tuple((name, index[name]) for name in names if name in index)
    return _PICKS.setdefault((cls, keys), picks)


def _by_mapping(cls: type[T], row: Row[Any], **extra: Any) -> T:
    """``from_mapping`` for a row with a column without a name: through ``RowMapping``."""
    names = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
    mapping: Any = row._mapping
    values = {name: mapping[name] for name in names if name in mapping}
    return cls(**values, **extra)


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}  # a row class's field names, found once
_PICKS: dict[tuple[type, tuple[str, ...]], tuple[tuple[str, int], ...]] = {}  # see ``_picks``


@dataclass(frozen=True)
class FileRow:
    """A file received from or sent to a partner; the bytes themselves live at ``payload_path``."""

    id: int
    direction: str
    partner: str
    name: str
    sha256: str
    size: int
    state: str
    payload_path: str | None
    reason: str | None
    created_at: datetime
    updated_at: datetime
    lease_owner: str | None
    lease_until: datetime | None


@dataclass(frozen=True)
class RequestRow:
    """A 270 or 278 request from a billing system, followed by its tracking number."""

    id: int
    tracking_number: str
    kind: str
    payer_id: str
    partner: str
    source_file_id: int | None
    state: str
    due_at: datetime | None
    member_id_hash: str
    payload: dict[str, Any] = field(repr=False)
    reason: str | None
    created_at: datetime
    updated_at: datetime
    lease_owner: str | None
    lease_until: datetime | None


@dataclass(frozen=True)
class RequestHead:
    """What moving or matching a request needs of its row: no payload, so nothing to unseal."""

    id: int
    tracking_number: str
    kind: str
    state: str


@dataclass(frozen=True)
class InterchangeRow:
    """One ISA..IEA envelope seen in a file (in or out)."""

    id: int
    file_id: int
    control_number: int
    sender: str
    receiver: str
    interchange_at: datetime | None
    ack_status: str | None
    created_at: datetime


@dataclass(frozen=True)
class GroupRow:
    """One GS..GE functional group inside an interchange."""

    id: int
    interchange_id: int
    control_number: int
    functional_id: str
    version: str
    ack_status: str | None
    created_at: datetime


@dataclass(frozen=True)
class TransactionSetRow:
    """One ST..SE transaction set (or a TA1, which has no group) and its TRN trace numbers."""

    id: int
    interchange_id: int
    group_id: int | None
    control_number: str
    set_id: str
    bht03: str | None
    ack_status: str | None
    state: str
    request_id: int | None
    created_at: datetime
    updated_at: datetime
    trace_numbers: tuple[str, ...] = ()


@dataclass(frozen=True)
class EligibilityRow:
    """The latest 271 outcome for one tracking number."""

    id: int
    tracking_number: str
    request_id: int | None
    status: str
    effective_from: date | None
    effective_to: date | None
    source_set_id: int | None
    record: dict[str, Any] = field(repr=False)
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class AuthorizationRow:
    """The latest 278 outcome for one tracking number; its history is in ``authorization_events``."""

    id: int
    tracking_number: str
    request_id: int | None
    status: str
    certification_number: str | None
    effective_from: date | None
    effective_to: date | None
    source_set_id: int | None
    record: dict[str, Any] = field(repr=False)
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class AuthorizationEvent:
    """One change of an authorization's status or certification number, and the set that caused it."""

    id: int
    authorization_id: int
    old_status: str | None
    new_status: str
    certification_number: str | None
    source_set_id: int | None
    at: datetime


@dataclass(frozen=True)
class StateChange:
    """One row of the audit/event log: an entity moved from one state to another (or a side effect ran)."""

    id: int
    entity_type: str
    entity_id: int
    old_state: str | None
    new_state: str
    at: datetime
    detail: dict[str, Any] | None


@dataclass(frozen=True)
class QuarantineRow:
    """A file set aside, with the structured (PHI-free) reason."""

    id: int
    file_id: int
    reason: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class AuditRow:
    """One reveal of PHI to a person: who (OS user), when, what action on which subject."""

    id: int
    os_user: str
    at: datetime
    action: str
    subject: str
    detail: dict[str, Any] | None
