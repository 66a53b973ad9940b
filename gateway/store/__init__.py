"""The durable store (SQLite by default, PostgreSQL by URL): see ``gateway.store.store`` for the design."""

from gateway.store.errors import (
    ConstraintError,
    DuplicateKeyError,
    NotFoundError,
    StaleStateError,
    StoreDatabaseError,
    StoreUnavailableError,
)
from gateway.store.rows import (
    AuditRow,
    AuthorizationEvent,
    AuthorizationRow,
    EligibilityRow,
    FileRow,
    GroupRow,
    InterchangeRow,
    QuarantineRow,
    RequestRow,
    StateChange,
    TransactionSetRow,
)
from gateway.store.store import (
    CONTROL_MAX,
    Store,
    Tx,
    hash_member_id,
    make_engine,
    sqlite_url,
    upgrade,
)

__all__ = [
    "CONTROL_MAX",
    "AuditRow",
    "AuthorizationEvent",
    "AuthorizationRow",
    "ConstraintError",
    "DuplicateKeyError",
    "EligibilityRow",
    "FileRow",
    "GroupRow",
    "InterchangeRow",
    "NotFoundError",
    "QuarantineRow",
    "RequestRow",
    "StaleStateError",
    "StateChange",
    "Store",
    "StoreDatabaseError",
    "StoreUnavailableError",
    "TransactionSetRow",
    "Tx",
    "hash_member_id",
    "make_engine",
    "sqlite_url",
    "upgrade",
]
