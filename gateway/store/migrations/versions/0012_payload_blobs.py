"""Small raw payloads kept in the store: ``payload_blobs`` (SHA-256, size, sealed bytes, created_at).

Revision ID: 0012
Revises: 0011

A real-time call's payloads (the API body, our 270, the partner's 271 and its CORE envelope) are
written in the transaction that records the row naming them instead of as one file each (creating a
file costs an fsync of the file and of its folder, and on some file systems far more kernel time than
the row). Larger payloads, and everything the batch stages store, stay files in ``folders.payloads``;
existing files stay where they are. ``data`` starts with a tag byte (``P`` plain, ``S`` sealed with
the payload key, like the JSON columns).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# frozen copies, as in 0001: a migration never imports the live schema
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "payload_blobs",
        sa.Column("id", ID, nullable=False, autoincrement=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payload_blobs")),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.UniqueConstraint("sha256", name=op.f("uq_payload_blobs_sha256")),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(op.f("ix_payload_blobs_created_at"), "payload_blobs", ["created_at"])


def downgrade() -> None:
    op.drop_table("payload_blobs")
