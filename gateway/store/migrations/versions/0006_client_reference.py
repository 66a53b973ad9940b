"""A keyed hash of each request's client reference, so operators find a request by the billing system's
own reference although the request JSON is sealed.

Revision ID: 0006
Revises: 0005

The column stays empty for requests stored before this revision (their reference sits only inside the
sealed payload, which a migration cannot open); they are still found by tracking number.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("client_reference_hash", sa.String(64), nullable=True))
        batch.create_index("ix_requests_client_reference_hash", ["client_reference_hash"])


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_index("ix_requests_client_reference_hash")
        batch.drop_column("client_reference_hash")
