"""The initial store schema: files, envelopes, requests, results, history, sequences, audit.

Revision ID: 0001
Revises: (none)

Written out in full rather than generated from ``gateway.store.schema`` at run time: a revision must keep
creating exactly this schema even after ``schema.py`` moves on (later changes are later revisions).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSONDOC = sa.JSON().with_variant(JSONB(), "postgresql")


def _ts(name: str, *, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _id(table: str) -> tuple[sa.Column[int], sa.PrimaryKeyConstraint]:
    """The surrogate key, with the constraint named explicitly (names are part of the frozen schema)."""
    return sa.Column("id", ID, autoincrement=True, nullable=False), sa.PrimaryKeyConstraint(
        "id", name=op.f(f"pk_{table}")
    )


def _fk(table: str, name: str, target: str, *, nullable: bool) -> sa.Column[int]:
    referred = target.split(".", maxsplit=1)[0]
    return sa.Column(
        name, ID, sa.ForeignKey(target, name=op.f(f"fk_{table}_{name}_{referred}")), nullable=nullable
    )


def _unique(table: str, column: str) -> sa.UniqueConstraint:
    return sa.UniqueConstraint(column, name=op.f(f"uq_{table}_{column}"))


def _check(table: str, name: str, sql: str) -> sa.CheckConstraint:
    return sa.CheckConstraint(sql, name=op.f(f"ck_{table}_{name}"))


def _create_files_and_requests() -> None:
    op.create_table(
        "store_meta",
        sa.Column("key", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_store_meta")),
        sa.Column("value", sa.String(255), nullable=False),
    )
    op.create_table(
        "files",
        *_id("files"),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("partner", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("payload_path", sa.String(1024), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        _ts("lease_until", nullable=True),
        _check("files", "direction", "direction IN ('in', 'out')"),
        _check("files", "size", "size >= 0"),
    )
    op.create_index(op.f("ix_files_sha256_created_at"), "files", ["sha256", "created_at"])
    op.create_index(op.f("ix_files_state_lease_until"), "files", ["state", "lease_until"])
    op.create_index(op.f("ix_files_created_at"), "files", ["created_at"])
    op.create_index(op.f("ix_files_partner_name"), "files", ["partner", "name"])

    op.create_table(
        "requests",
        *_id("requests"),
        sa.Column("tracking_number", sa.String(50), nullable=False),
        _unique("requests", "tracking_number"),
        sa.Column("kind", sa.String(3), nullable=False),
        sa.Column("payer_id", sa.String(80), nullable=False),
        sa.Column("partner", sa.String(64), nullable=False),
        _fk("requests", "source_file_id", "files.id", nullable=True),
        sa.Column("state", sa.String(32), nullable=False),
        _ts("due_at", nullable=True),
        sa.Column("member_id_hash", sa.String(64), nullable=False),
        sa.Column("payload", JSONDOC, nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.Column("lease_owner", sa.String(128), nullable=True),
        _ts("lease_until", nullable=True),
        _check("requests", "kind", "kind IN ('270', '278')"),
    )
    op.create_index(op.f("ix_requests_state_lease_until"), "requests", ["state", "lease_until"])
    op.create_index(op.f("ix_requests_state_due_at"), "requests", ["state", "due_at"])
    op.create_index(op.f("ix_requests_created_at"), "requests", ["created_at"])
    op.create_index(op.f("ix_requests_member_id_hash"), "requests", ["member_id_hash"])
    op.create_index(op.f("ix_requests_source_file_id"), "requests", ["source_file_id"])


def _create_envelopes() -> None:
    op.create_table(
        "interchanges",
        *_id("interchanges"),
        _fk("interchanges", "file_id", "files.id", nullable=False),
        sa.Column("control_number", sa.Integer(), nullable=False),
        sa.Column("sender", sa.String(64), nullable=False),
        sa.Column("receiver", sa.String(64), nullable=False),
        _ts("interchange_at", nullable=True),
        sa.Column("ack_status", sa.String(8), nullable=True),
        _ts("created_at"),
    )
    op.create_index(
        op.f("ix_interchanges_control_number_sender_receiver"),
        "interchanges",
        ["control_number", "sender", "receiver"],
    )
    op.create_index(op.f("ix_interchanges_file_id"), "interchanges", ["file_id"])

    op.create_table(
        "functional_groups",
        *_id("functional_groups"),
        _fk("functional_groups", "interchange_id", "interchanges.id", nullable=False),
        sa.Column("control_number", sa.Integer(), nullable=False),
        sa.Column("functional_id", sa.String(2), nullable=False),
        sa.Column("version", sa.String(12), nullable=False),
        sa.Column("ack_status", sa.String(8), nullable=True),
        _ts("created_at"),
    )
    op.create_index(op.f("ix_functional_groups_control_number"), "functional_groups", ["control_number"])
    op.create_index(op.f("ix_functional_groups_interchange_id"), "functional_groups", ["interchange_id"])

    op.create_table(
        "transaction_sets",
        *_id("transaction_sets"),
        _fk("transaction_sets", "interchange_id", "interchanges.id", nullable=False),
        _fk("transaction_sets", "group_id", "functional_groups.id", nullable=True),
        sa.Column("control_number", sa.String(9), nullable=False),
        sa.Column("set_id", sa.String(3), nullable=False),
        sa.Column("bht03", sa.String(50), nullable=True),
        sa.Column("ack_status", sa.String(8), nullable=True),
        sa.Column("state", sa.String(32), nullable=False),
        _fk("transaction_sets", "request_id", "requests.id", nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
    )
    for cols in (
        ["control_number"],
        ["interchange_id"],
        ["group_id"],
        ["bht03"],
        ["request_id"],
        ["state", "created_at"],
        ["created_at"],
    ):
        op.create_index(op.f(f"ix_transaction_sets_{'_'.join(cols)}"), "transaction_sets", cols)

    op.create_table(
        "trace_numbers",
        *_id("trace_numbers"),
        _fk("trace_numbers", "transaction_set_id", "transaction_sets.id", nullable=False),
        sa.Column("trace_number", sa.String(50), nullable=False),
    )
    op.create_index(op.f("ix_trace_numbers_trace_number"), "trace_numbers", ["trace_number"])
    op.create_index(op.f("ix_trace_numbers_transaction_set_id"), "trace_numbers", ["transaction_set_id"])


def _create_results() -> None:
    op.create_table(
        "eligibility_results",
        *_id("eligibility_results"),
        sa.Column("tracking_number", sa.String(50), nullable=False),
        _unique("eligibility_results", "tracking_number"),
        _fk("eligibility_results", "request_id", "requests.id", nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=True),
        sa.Column("effective_to", sa.Date(), nullable=True),
        _fk("eligibility_results", "source_set_id", "transaction_sets.id", nullable=True),
        sa.Column("record", JSONDOC, nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
    )
    op.create_index(
        op.f("ix_eligibility_results_status_updated_at"), "eligibility_results", ["status", "updated_at"]
    )
    op.create_index(op.f("ix_eligibility_results_request_id"), "eligibility_results", ["request_id"])

    op.create_table(
        "authorizations",
        *_id("authorizations"),
        sa.Column("tracking_number", sa.String(50), nullable=False),
        _unique("authorizations", "tracking_number"),
        _fk("authorizations", "request_id", "requests.id", nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("certification_number", sa.String(50), nullable=True),
        sa.Column("effective_from", sa.Date(), nullable=True),
        sa.Column("effective_to", sa.Date(), nullable=True),
        _fk("authorizations", "source_set_id", "transaction_sets.id", nullable=True),
        sa.Column("record", JSONDOC, nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
    )
    op.create_index(
        op.f("ix_authorizations_certification_number"), "authorizations", ["certification_number"]
    )
    op.create_index(op.f("ix_authorizations_status_updated_at"), "authorizations", ["status", "updated_at"])
    op.create_index(op.f("ix_authorizations_request_id"), "authorizations", ["request_id"])

    op.create_table(
        "authorization_events",
        *_id("authorization_events"),
        _fk("authorization_events", "authorization_id", "authorizations.id", nullable=False),
        sa.Column("old_status", sa.String(16), nullable=True),
        sa.Column("new_status", sa.String(16), nullable=False),
        sa.Column("certification_number", sa.String(50), nullable=True),
        _fk("authorization_events", "source_set_id", "transaction_sets.id", nullable=True),
        _ts("at"),
    )
    op.create_index(
        op.f("ix_authorization_events_authorization_id_at"),
        "authorization_events",
        ["authorization_id", "at"],
    )


def _create_bookkeeping() -> None:
    op.create_table(
        "state_changes",
        *_id("state_changes"),
        sa.Column("entity_type", sa.String(32), nullable=False),
        sa.Column("entity_id", sa.BigInteger(), nullable=False),
        sa.Column("old_state", sa.String(32), nullable=True),
        sa.Column("new_state", sa.String(32), nullable=False),
        _ts("at"),
        sa.Column("detail", JSONDOC, nullable=True),
    )
    op.create_index(
        op.f("ix_state_changes_entity_type_entity_id"), "state_changes", ["entity_type", "entity_id"]
    )
    op.create_index(op.f("ix_state_changes_at"), "state_changes", ["at"])

    op.create_table(
        "control_sequences",
        sa.Column("sender", sa.String(64), nullable=False),
        sa.Column("receiver", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("next_value", sa.BigInteger(), nullable=False),
        sa.Column("wraps", sa.Integer(), nullable=False),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("sender", "receiver", "kind", name=op.f("pk_control_sequences")),
        _check("control_sequences", "kind", "kind IN ('ISA13', 'GS06', 'ST02', 'TRN')"),
        _check("control_sequences", "next_value", "next_value >= 1"),
    )

    op.create_table(
        "quarantine",
        *_id("quarantine"),
        _fk("quarantine", "file_id", "files.id", nullable=False),
        sa.Column("reason", JSONDOC, nullable=False),
        _ts("created_at"),
    )
    op.create_index(op.f("ix_quarantine_file_id"), "quarantine", ["file_id"])
    op.create_index(op.f("ix_quarantine_created_at"), "quarantine", ["created_at"])

    op.create_table(
        "phi_audit",
        *_id("phi_audit"),
        sa.Column("os_user", sa.String(128), nullable=False),
        _ts("at"),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("detail", JSONDOC, nullable=True),
    )
    op.create_index(op.f("ix_phi_audit_at"), "phi_audit", ["at"])
    op.create_index(op.f("ix_phi_audit_os_user_at"), "phi_audit", ["os_user", "at"])


def upgrade() -> None:
    """Create every table of the first schema version."""
    _create_files_and_requests()
    _create_envelopes()
    _create_results()
    _create_bookkeeping()


TABLES = (
    "phi_audit",
    "quarantine",
    "control_sequences",
    "state_changes",
    "authorization_events",
    "authorizations",
    "eligibility_results",
    "trace_numbers",
    "transaction_sets",
    "functional_groups",
    "interchanges",
    "requests",
    "files",
    "store_meta",
)


def downgrade() -> None:
    """Drop everything (children first); only useful on a scratch database."""
    for name in TABLES:
        op.drop_table(name)
