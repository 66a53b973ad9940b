"""Remote file versions taken or refused, so a reused remote name is not mistaken for a file we had.

Revision ID: 0009
Revises: 0007

A clearinghouse may call every response ``271.x12``. Known by name and size alone, a new file was
taken as already downloaded and deleted unread (or, leaving files on the server, never fetched).
``remote_files`` records each version by name, size and modification time, with the content hash
and the file row it went to, or the reason it was refused (too large). (Numbered 0009 on its branch;
the merge re-chains it.)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "remote_files",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("partner", sa.String(64), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("file_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_remote_files")),
    )
    op.create_index(op.f("ix_remote_files_partner_name"), "remote_files", ["partner", "name"])
    op.create_index(op.f("ix_remote_files_file_id"), "remote_files", ["file_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_remote_files_file_id"), table_name="remote_files")
    op.drop_index(op.f("ix_remote_files_partner_name"), table_name="remote_files")
    op.drop_table("remote_files")
