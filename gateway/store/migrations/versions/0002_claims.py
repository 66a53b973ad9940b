"""Units billed against authorizations (claim checks with ``--commit``).

Revision ID: 0002
Revises: 0001

Written out in full, like 0001, so the revision keeps creating exactly this table whatever
``schema.py`` becomes later.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TABLE = "authorization_units"


def upgrade() -> None:
    """Create ``authorization_units``: one row per claim line and authorization it used up units of."""
    op.create_table(
        TABLE,
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{TABLE}")),
        sa.Column(
            "authorization_id",
            ID,
            sa.ForeignKey("authorizations.id", name=op.f(f"fk_{TABLE}_authorization_id_authorizations")),
            nullable=False,
        ),
        sa.Column("service_index", sa.Integer(), nullable=False),
        sa.Column("claim_hash", sa.String(64), nullable=False),
        sa.Column("line_number", sa.Integer(), nullable=False),
        sa.Column("procedure_code", sa.String(48), nullable=True),
        sa.Column("units_thousandths", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint(
            "authorization_id",
            "claim_hash",
            "line_number",
            name=op.f(f"uq_{TABLE}_authorization_id_claim_hash_line_number"),
        ),
        sa.CheckConstraint("units_thousandths > 0", name=op.f(f"ck_{TABLE}_units")),
    )


def downgrade() -> None:
    """Drop the table (units recorded so far are lost)."""
    op.drop_table(TABLE)
