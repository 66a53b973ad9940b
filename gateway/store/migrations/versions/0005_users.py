"""Console users and login sessions, for ``x12gw serve``.

Revision ID: 0005
Revises: 0004

``users``: local console accounts (viewer or operator) with scrypt password hashes.
``web_sessions``: one row per logged-in browser, keyed by the SHA-256 of the cookie token, with the
session's CSRF token and its expiry.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# frozen copies, as in 0001: a migration never imports the live schema
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def UtcDateTime() -> sa.DateTime:  # noqa: N802 - reads like the schema's column type
    return sa.DateTime(timezone=True)


revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", ID, nullable=False, autoincrement=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.Column("name", sa.String(64), nullable=False),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("role IN ('viewer', 'operator')", name=op.f("ck_users_role")),
    )
    op.create_table(
        "web_sessions",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_web_sessions")),
        sa.Column("user_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_web_sessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
    )
    op.create_index(op.f("ix_web_sessions_user_id"), "web_sessions", ["user_id"])
    op.create_index(op.f("ix_web_sessions_expires_at"), "web_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_table("web_sessions")
    op.drop_table("users")
