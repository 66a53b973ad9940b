"""The store's tables as SQLAlchemy Core metadata: the single description the code queries against.

The migrations in ``gateway/store/migrations`` create the same schema step by step; ``tests/test_store.py``
compares the migrated database with this metadata so the two cannot drift apart.

Design rules the columns follow:

* No raw PHI at rest when the gateway runs with its payload key: request JSON, result records and file
  names are sealed (AES-GCM / AES-SIV, ``gateway.store.sealing``) by their column types.
* No raw PHI in any indexed column. Members are found by ``member_id_hash`` (a keyed HMAC-SHA256), never
  by member id or name. The request JSON and the parsed result records (which do contain PHI) sit in
  unindexed JSON columns that only the reveal path reads (and ``phi_audit`` records who did).
* Every time is stored in UTC (``UtcDateTime``); SQLite keeps naive ISO text, PostgreSQL ``timestamptz``.
* Rows are never deleted by the store itself: the history (``state_changes``, ``authorization_events``,
  ``phi_audit``) is the point. Retention is a separate, explicit job.
* ``files`` and ``requests`` carry ``lease_owner``/``lease_until`` now so that scale-out (several nodes
  claiming work from one PostgreSQL) needs no schema change, only a ``claim_work`` query.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import processors

from gateway.store import sealing

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


# the last UTC datetime any UtcDateTime column bound on SQLite, and its text: a transaction binds its
# one ``now`` to a dozen columns of several tables (a datetime is immutable, so the same object has the
# same text; the pair is replaced as one tuple, so threads racing here only miss)
_LAST_SQLITE_TEXT: list[tuple[datetime | None, str | None]] = [(None, None)]


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime in and out, whatever the backend keeps (SQLite has no time zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes (their zone is a guess) and store UTC, naive on SQLite so text sorts."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("the store takes time-zone aware datetimes only")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """On SQLite, ``process_bind_param`` and the dialect's text format in one step (the two
        processors SQLAlchemy chains cost more than the conversion: a dozen datetimes per statement
        on the hot path); the same text as the chain (``tests/test_store_datetime.py``)."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        convert = self.process_bind_param
        last = _LAST_SQLITE_TEXT

        def process(value: datetime | None) -> str | None:
            if value is not None and value.tzinfo is UTC:  # the store's clocks: no conversion to make
                seen, text = last[0]
                if seen is value:
                    return text
                text = value.isoformat(" ", "microseconds")[:-6]  # less its "+00:00"
                last[0] = (value, text)
                return text
            utc = convert(value, dialect)
            return None if utc is None else utc.isoformat(" ", "microseconds")

        return process

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        """On SQLite, the dialect's text parsing (``datetime.fromisoformat``) and
        ``process_result_value`` in one step, as for binding: a row of the hot path carries four
        datetimes; the same values as the chain (``tests/test_store_datetime.py``)."""
        chained = super().result_processor(dialect, coltype)
        impl = self.impl_instance.dialect_impl(dialect).result_processor(dialect, coltype)
        if dialect.name != "sqlite" or impl is not processors.str_to_datetime:
            return chained  # another text format or backend: SQLAlchemy's chain
        parse = datetime.fromisoformat

        def process(value: str | None) -> datetime | None:
            if value is None:
                return None
            moment = parse(value)
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

        return process

    def process_result_value(self, value: datetime | None, _dialect: Dialect) -> datetime | None:
        """Hand back aware UTC datetimes on every backend."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class SealedJSON(TypeDecorator[Any]):
    """A JSON column whose documents are encrypted at rest when the engine has a key ring.

    See ``gateway.store.sealing``: the stored value is a JSON string token; rows from before sealing
    (plain documents) read as they are until ``x12gw keys rotate`` seals them.
    """

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        return dialect.type_descriptor(JSONB() if dialect.name == "postgresql" else JSON())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        ring = sealing.ring_of(dialect)
        if value is None or ring is None or sealing.is_sealed_doc(value):
            return value
        return ring.seal_doc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if not sealing.is_sealed_doc(value):
            return value
        ring = sealing.ring_of(dialect)
        if ring is None:
            sealing.unseal_without_ring(value)
            return value
        return ring.unseal_doc(value)


class SealedName(TypeDecorator[str]):
    """A file name, encrypted deterministically (equal names, equal tokens) when there is a key ring."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        ring = sealing.ring_of(dialect)
        if value is None or ring is None or sealing.is_sealed_name(value):
            return value
        return ring.seal_name(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None or not sealing.is_sealed_name(value):
            return value
        ring = sealing.ring_of(dialect)
        if ring is None:
            sealing.unseal_without_ring(value)
            return value
        return ring.unseal_name(value)


class SealedBytes(TypeDecorator[bytes]):
    """Raw bytes encrypted at rest when the engine has a key ring (``KeyRing.seal_bytes``).

    Every stored value starts with a tag byte (``P`` plain, ``S`` sealed), so a payload whose own bytes
    happen to look sealed is never taken for one; the tagged plain form is what an engine without a
    key ring writes (library use, tests) and what ``x12gw keys rotate`` seals."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: bytes | None, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        if type(value) is sealing.StoredBytes:  # made before the transaction (``stored_bytes``)
            return bytes(value)
        ring = sealing.ring_of(dialect)
        return sealing.BYTES_PLAIN + value if ring is None else ring.seal_bytes(value)

    def process_result_value(self, value: bytes | None, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        stored = bytes(value)
        if not sealing.is_sealed_bytes(stored):
            return stored[1:]
        ring = sealing.ring_of(dialect)
        if ring is None:
            sealing.unseal_without_ring(stored)
            return stored
        return ring.unseal_bytes(stored)


# SQLite only auto-increments an ``INTEGER PRIMARY KEY``; PostgreSQL gets 64-bit identities.
ID = BigInteger().with_variant(Integer(), "sqlite")
JSONDOC = JSON().with_variant(JSONB(), "postgresql")

STATE = 32
PARTNER = 64
PARTY = 64  # "qualifier:id" of an ISA/GS sender or receiver
TRACKING = 50  # TRN02 is AN 1..50
HASH = 64  # sha256 / HMAC-SHA256 hex digest
FILE_NAME = 512  # a 255-byte name sealed (nonce-free AES-SIV + base64) fits


def _pk() -> Column[Any]:
    return Column("id", ID, primary_key=True, autoincrement=True)


def _created() -> Column[datetime]:
    return Column("created_at", UtcDateTime(), nullable=False)


def _updated() -> Column[datetime]:
    return Column("updated_at", UtcDateTime(), nullable=False)


store_meta = Table(
    "store_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
)

files = Table(
    "files",
    metadata,
    _pk(),
    Column("direction", String(3), nullable=False),
    Column("partner", String(PARTNER), nullable=False),
    Column("name", SealedName(FILE_NAME), nullable=False),  # PHI (billing systems name files by patient)
    Column("sha256", String(HASH), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("state", String(STATE), nullable=False),
    Column("payload_path", String(1024), nullable=True),
    Column("reason", Text, nullable=True),
    _created(),
    _updated(),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_until", UtcDateTime(), nullable=True),
    CheckConstraint("direction IN ('in', 'out')", name="direction"),
    CheckConstraint("size >= 0", name="size"),
    Index(None, "sha256", "created_at"),
    Index(None, "state", "lease_until"),
    Index(None, "created_at"),
    Index(None, "partner", "name"),
)

# Raw payloads small enough to keep in the store (``gateway.store.payloads``): written in the
# transaction that records the row naming them, so a real-time call creates no payload file; larger
# payloads stay files in ``folders.payloads``. Content-addressed like the files (one row per SHA-256).
payload_blobs = Table(
    "payload_blobs",
    metadata,
    _pk(),
    Column("sha256", String(HASH), nullable=False, unique=True),
    Column("size", BigInteger, nullable=False),
    Column("data", SealedBytes(), nullable=False),  # PHI: sealed like the JSON columns
    # the payload this one travels with (a real-time answer's CORE envelope: its X12): kept while a
    # ``files`` row names either, since no row names the envelope itself
    Column("companion_of", String(HASH), nullable=True),
    _created(),
    Index(None, "created_at"),
)

requests = Table(
    "requests",
    metadata,
    _pk(),
    Column("tracking_number", String(TRACKING), nullable=False, unique=True),
    Column("kind", String(3), nullable=False),
    Column("payer_id", String(80), nullable=False),
    Column("partner", String(PARTNER), nullable=False),
    Column("source_file_id", ID, ForeignKey("files.id"), nullable=True),
    Column("state", String(STATE), nullable=False),
    Column("due_at", UtcDateTime(), nullable=True),
    Column("member_id_hash", String(HASH), nullable=False),
    Column("payload", SealedJSON(), nullable=False),
    Column("reason", Text, nullable=True),
    _created(),
    _updated(),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_until", UtcDateTime(), nullable=True),
    # keyed hash (hash_member_id) of the billing system's reference: searchable, never readable
    Column("client_reference_hash", String(HASH), nullable=True),
    # keyed hash (hash_patient) of the patient's last name and birth date: searchable, never readable
    Column("patient_hash", String(HASH), nullable=True),
    CheckConstraint("kind IN ('270', '278')", name="kind"),
    Index(None, "state", "lease_until"),
    Index(None, "state", "due_at"),
    Index(None, "created_at"),
    Index(None, "member_id_hash"),
    Index(None, "client_reference_hash"),
    Index(None, "patient_hash"),
    Index(None, "source_file_id"),
)

interchanges = Table(
    "interchanges",
    metadata,
    _pk(),
    Column("file_id", ID, ForeignKey("files.id"), nullable=False),
    Column("control_number", Integer, nullable=False),
    Column("sender", String(PARTY), nullable=False),
    Column("receiver", String(PARTY), nullable=False),
    Column("interchange_at", UtcDateTime(), nullable=True),
    Column("ack_status", String(8), nullable=True),
    _created(),
    Index(None, "control_number", "sender", "receiver"),
    Index(None, "file_id"),
)

functional_groups = Table(
    "functional_groups",
    metadata,
    _pk(),
    Column("interchange_id", ID, ForeignKey("interchanges.id"), nullable=False),
    Column("control_number", Integer, nullable=False),
    Column("functional_id", String(2), nullable=False),
    Column("version", String(12), nullable=False),
    Column("ack_status", String(8), nullable=True),
    _created(),
    Index(None, "control_number"),
    Index(None, "interchange_id"),
)

transaction_sets = Table(
    "transaction_sets",
    metadata,
    _pk(),
    Column("interchange_id", ID, ForeignKey("interchanges.id"), nullable=False),
    Column("group_id", ID, ForeignKey("functional_groups.id"), nullable=True),  # NULL for TA1
    Column("control_number", String(9), nullable=False),  # ST02 is AN 4..9: kept as received
    Column("set_id", String(3), nullable=False),
    Column("bht03", String(50), nullable=True),
    Column("ack_status", String(8), nullable=True),
    Column("state", String(STATE), nullable=False),
    Column("request_id", ID, ForeignKey("requests.id"), nullable=True),
    _created(),
    _updated(),
    Index(None, "control_number"),
    Index(None, "interchange_id"),
    Index(None, "group_id"),
    Index(None, "bht03"),
    Index(None, "request_id"),
    Index(None, "state", "created_at"),
    Index(None, "created_at"),
)

trace_numbers = Table(
    "trace_numbers",
    metadata,
    _pk(),
    Column("transaction_set_id", ID, ForeignKey("transaction_sets.id"), nullable=False),
    Column("trace_number", String(50), nullable=False),
    Index(None, "trace_number"),
    Index(None, "transaction_set_id"),
)

eligibility_results = Table(
    "eligibility_results",
    metadata,
    _pk(),
    Column("tracking_number", String(TRACKING), nullable=False, unique=True),
    Column("request_id", ID, ForeignKey("requests.id"), nullable=True),
    Column("status", String(16), nullable=False),
    Column("effective_from", Date, nullable=True),
    Column("effective_to", Date, nullable=True),
    Column("source_set_id", ID, ForeignKey("transaction_sets.id"), nullable=True),
    Column("record", SealedJSON(), nullable=False),
    _created(),
    _updated(),
    Index(None, "status", "updated_at"),
    Index(None, "request_id"),
)

authorizations = Table(
    "authorizations",
    metadata,
    _pk(),
    Column("tracking_number", String(TRACKING), nullable=False, unique=True),
    Column("request_id", ID, ForeignKey("requests.id"), nullable=True),
    Column("status", String(16), nullable=False),
    Column("certification_number", String(50), nullable=True),
    Column("effective_from", Date, nullable=True),
    Column("effective_to", Date, nullable=True),
    Column("source_set_id", ID, ForeignKey("transaction_sets.id"), nullable=True),
    Column("record", SealedJSON(), nullable=False),
    _created(),
    _updated(),
    Index(None, "certification_number"),
    Index(None, "status", "updated_at"),
    Index(None, "request_id"),
)

authorization_events = Table(
    "authorization_events",
    metadata,
    _pk(),
    Column("authorization_id", ID, ForeignKey("authorizations.id"), nullable=False),
    Column("old_status", String(16), nullable=True),
    Column("new_status", String(16), nullable=False),
    Column("certification_number", String(50), nullable=True),
    Column("source_set_id", ID, ForeignKey("transaction_sets.id"), nullable=True),
    Column("at", UtcDateTime(), nullable=False),
    Index(None, "authorization_id", "at"),
)

state_changes = Table(
    "state_changes",
    metadata,
    _pk(),
    Column("entity_type", String(32), nullable=False),
    Column("entity_id", BigInteger, nullable=False),
    Column("old_state", String(STATE), nullable=True),
    Column("new_state", String(STATE), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("detail", JSONDOC, nullable=True),
    Index(None, "entity_type", "entity_id"),
    Index(None, "at"),
)

control_sequences = Table(
    "control_sequences",
    metadata,
    Column("sender", String(PARTY), nullable=False),
    Column("receiver", String(PARTY), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("next_value", BigInteger, nullable=False),
    Column("wraps", Integer, nullable=False),
    _updated(),
    PrimaryKeyConstraint("sender", "receiver", "kind"),
    CheckConstraint("kind IN ('ISA13', 'GS06', 'ST02', 'TRN')", name="kind"),
    CheckConstraint("next_value >= 1", name="next_value"),
)

quarantine = Table(
    "quarantine",
    metadata,
    _pk(),
    Column("file_id", ID, ForeignKey("files.id"), nullable=False),
    Column("reason", JSONDOC, nullable=False),
    _created(),
    Index(None, "file_id"),
    Index(None, "created_at"),
)

phi_audit = Table(
    "phi_audit",
    metadata,
    _pk(),
    Column("os_user", String(128), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("detail", JSONDOC, nullable=True),
    Index(None, "at"),
    Index(None, "os_user", "at"),
)

# Units billed against an authorization, recorded by ``x12gw claims check --commit``. One row per claim
# line and authorization: committing the same claim again adds nothing. ``claim_hash`` is a keyed
# HMAC of the billing provider and CLM01 (an account number, so PHI is never stored raw);
# ``service_index`` is the position of the service in the authorization record (-1: the whole event).
authorization_units = Table(
    "authorization_units",
    metadata,
    _pk(),
    Column("authorization_id", ID, ForeignKey("authorizations.id"), nullable=False),
    Column("service_index", Integer, nullable=False),
    Column("claim_hash", String(HASH), nullable=False),
    Column("line_number", Integer, nullable=False),
    Column("procedure_code", String(48), nullable=True),
    Column("units_thousandths", BigInteger, nullable=False),  # 1.5 units = 1500: exact on every backend
    _created(),
    UniqueConstraint("authorization_id", "claim_hash", "line_number"),
    CheckConstraint("units_thousandths > 0", name="units"),
)


# Running gateway nodes (``x12gw nodes``) and named expiring leases (one partner exchange at a time).
nodes = Table(
    "nodes",
    metadata,
    Column("node_id", String(128), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("last_seen", UtcDateTime(), nullable=False),
    Column("stopped_at", UtcDateTime(), nullable=True),
)

leases = Table(
    "leases",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("until", UtcDateTime(), nullable=False),
    Column("acquired_at", UtcDateTime(), nullable=False),
)

# Console users (``x12gw users``) and their login sessions (``x12gw serve``). A password is kept only as
# an scrypt hash with its own salt; a session only as the SHA-256 of its cookie token, so neither a
# database dump nor a backup lets anyone log in.
users = Table(
    "users",
    metadata,
    _pk(),
    Column("name", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", String(255), nullable=False),
    _created(),
    _updated(),
    CheckConstraint("role IN ('viewer', 'operator')", name="role"),
)

web_sessions = Table(
    "web_sessions",
    metadata,
    Column("token_hash", String(HASH), primary_key=True),
    Column("user_id", ID, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    _created(),
    Column("expires_at", UtcDateTime(), nullable=False),
    Index(None, "user_id"),
    Index(None, "expires_at"),
)

# Each partner's last remote listing (``tx.listings``): a remote file is taken once two listings agree
# on its size and time, and that must hold across processes (``x12gw run --once`` from cron).
remote_listings = Table(
    "remote_listings",
    metadata,
    Column("partner", String(PARTNER), nullable=False),
    Column("name", String(255), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("mtime", BigInteger, nullable=True),
    Column("listed_at", UtcDateTime(), nullable=False),
    PrimaryKeyConstraint("partner", "name"),
)

# Billing systems allowed to call ``/api/v1`` (``x12gw api-keys``): an API key kept only as its SHA-256
# (the key is 256 random bits, so a plain digest cannot be reversed), or a client certificate subject
# for mutual TLS; ``scopes`` is a space-separated list. Revoked clients keep their row.
api_clients = Table(
    "api_clients",
    metadata,
    _pk(),
    Column("name", String(64), nullable=False, unique=True),
    Column("key_hash", String(HASH), nullable=True, unique=True),
    Column("key_hint", String(16), nullable=True),  # the key's first characters, to tell keys apart
    Column("cert_subject", String(512), nullable=True, unique=True),
    Column("scopes", String(255), nullable=False),
    _created(),
    Column("revoked_at", UtcDateTime(), nullable=True),
    CheckConstraint("key_hash IS NOT NULL OR cert_subject IS NOT NULL", name="credential"),
)

# One row per request a client made through the API: who made it (a client reads only its own), its
# Idempotency-Key (if sent) with the SHA-256 of the body first sent, and the response that was given
# (sealed: a real-time answer holds PHI), replayed to a retried POST with the same key.
api_requests = Table(
    "api_requests",
    metadata,
    _pk(),
    Column("client_id", ID, ForeignKey("api_clients.id"), nullable=False),
    Column("tracking_number", String(TRACKING), nullable=False, unique=True),
    Column("idempotency_key", String(255), nullable=True),
    Column("body_sha256", String(HASH), nullable=False),
    Column("response_status", Integer, nullable=True),
    Column("response_body", SealedJSON(), nullable=True),
    _created(),
    _updated(),
    UniqueConstraint("client_id", "idempotency_key"),
    Index(None, "created_at"),
)

# Every remote file version we took or refused (``tx.listings``): a partner may reuse a name for a new
# file, so a remote file is known by name, size and modification time, and once downloaded by its
# content (``outcome``: new, duplicate, refused). Names sealed like ``files.name``.
remote_files = Table(
    "remote_files",
    metadata,
    _pk(),
    Column("partner", String(PARTNER), nullable=False),
    Column("name", SealedName(FILE_NAME), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("mtime", BigInteger, nullable=True),
    Column("sha256", String(HASH), nullable=True),  # None when refused without downloading
    Column("file_id", ID, nullable=True),  # the files row holding the content (none when refused)
    Column("outcome", String(16), nullable=False),
    Column("reason", Text, nullable=True),
    _created(),
    Index(None, "partner", "name"),
    Index(None, "file_id"),
)
