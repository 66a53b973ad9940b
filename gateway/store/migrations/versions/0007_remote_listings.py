"""Each partner's last remote listing, so the download completeness check works across processes.

Revision ID: 0007
Revises: 0006

A remote file is downloaded once two listings in a row show the same size and time (a partner that
writes in place may still be writing it). Kept in memory, that check never passed for ``x12gw run
--once`` (one listing per process) nor on the first poll after a restart; ``remote_listings`` keeps
the previous listing in the store instead. (Numbered 0006 on its branch; the merge re-chains it.)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "remote_listings",
        sa.Column("partner", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime", sa.BigInteger(), nullable=True),
        sa.Column("listed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("partner", "name", name=op.f("pk_remote_listings")),
    )


def downgrade() -> None:
    op.drop_table("remote_listings")
