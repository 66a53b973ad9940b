"""A kept payload can live as long as another: ``payload_blobs.companion_of``.

Revision ID: 0013
Revises: 0012

A real-time answer's CORE envelope is named by no ``files`` row (the answer's row names the X12 it
carried; the envelope's hash is in that row's state-change detail), so ``x12gw purge`` removed it at
the payload cutoff while the answer's row, and ``log show``'s view of the HTTP exchange, were kept.
The envelope's blob now names the payload it travels with: it is kept while a ``files`` row names
either. Existing rows keep NULL (their link is only in state-change details).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision: str | None = "0012"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("payload_blobs") as batch:
        batch.add_column(sa.Column("companion_of", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payload_blobs") as batch:
        batch.drop_column("companion_of")
