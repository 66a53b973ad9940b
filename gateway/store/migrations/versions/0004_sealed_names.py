"""Room for sealed file names: ``files.name`` grows from 255 to 512 characters.

Revision ID: 0004
Revises: 0003

File names are PHI (billing systems name files after patients), so the store keeps them encrypted
(AES-SIV, see ``gateway.store.sealing``); a 255-byte name takes up to about 390 characters sealed.
Existing rows keep their plain names until ``x12gw keys rotate`` seals them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.alter_column(
            "name", existing_type=sa.String(255), type_=sa.String(512), existing_nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.alter_column(
            "name", existing_type=sa.String(512), type_=sa.String(255), existing_nullable=False
        )
