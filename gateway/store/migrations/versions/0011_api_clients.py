"""API clients of ``x12gw serve`` and the Idempotency-Key records of their POSTs.

Revision ID: 0011
Revises: 0007

``api_clients``: one row per billing system allowed to call ``/api/v1``: an API key (only its SHA-256
is kept) or a mutual-TLS client certificate subject, with the scopes it may use; revoked rows stay
(``revoked_at``) so the history of who could call is kept.
``api_requests``: each request a client made through the API (a client reads only its own), with its
``Idempotency-Key``, the SHA-256 of the body first sent and the response it got, so a retried POST is
answered again without a second request. (Numbered 0011 on its branch; the merge re-chains it.)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

# frozen copies, as in 0001: a migration never imports the live schema
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSONDOC = sa.JSON().with_variant(JSONB(), "postgresql")

revision = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None


def UtcDateTime() -> sa.DateTime:  # noqa: N802 - reads like the schema's column type
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_clients",
        sa.Column("id", ID, nullable=False, autoincrement=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_clients")),
        sa.Column("name", sa.String(64), nullable=False),
        sa.UniqueConstraint("name", name=op.f("uq_api_clients_name")),
        sa.Column("key_hash", sa.String(64), nullable=True),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_clients_key_hash")),
        sa.Column("key_hint", sa.String(16), nullable=True),
        sa.Column("cert_subject", sa.String(512), nullable=True),
        sa.UniqueConstraint("cert_subject", name=op.f("uq_api_clients_cert_subject")),
        sa.Column("scopes", sa.String(255), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
        sa.CheckConstraint(
            "key_hash IS NOT NULL OR cert_subject IS NOT NULL", name=op.f("ck_api_clients_credential")
        ),
    )
    op.create_table(
        "api_requests",
        sa.Column("id", ID, nullable=False, autoincrement=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_requests")),
        sa.Column("client_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["api_clients.id"], name=op.f("fk_api_requests_client_id_api_clients")
        ),
        sa.Column("tracking_number", sa.String(50), nullable=False),
        sa.UniqueConstraint("tracking_number", name=op.f("uq_api_requests_tracking_number")),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", JSONDOC, nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.UniqueConstraint(
            "client_id", "idempotency_key", name=op.f("uq_api_requests_client_id_idempotency_key")
        ),
    )
    op.create_index(op.f("ix_api_requests_created_at"), "api_requests", ["created_at"])


def downgrade() -> None:
    op.drop_table("api_requests")
    op.drop_table("api_clients")
