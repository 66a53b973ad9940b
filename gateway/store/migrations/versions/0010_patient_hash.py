"""A keyed hash of each request's patient (last name and birth date), so operators find requests by
patient although the request JSON is sealed and no plain name is ever stored for search.

Revision ID: 0010
Revises: 0007

The column stays empty for requests stored before this revision: their names sit only inside the
sealed payload, which a migration cannot open (it runs without the payload key). Those requests are
still found by tracking number, client reference, member id or trace number. (Numbered 0010 on its
branch; the merge re-chains it.)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("patient_hash", sa.String(64), nullable=True))
        batch.create_index("ix_requests_patient_hash", ["patient_hash"])


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_index("ix_requests_patient_hash")
        batch.drop_column("patient_hash")
