"""Alembic environment: migrates the connection that ``gateway.store.upgrade`` hands over.

There is no alembic.ini and no offline (SQL script) mode: the gateway migrates its own database at
start-up, inside the transaction (and on PostgreSQL the advisory lock) that ``upgrade`` opened, so two
nodes starting together cannot both apply the same revision.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from gateway.errors import StoreError
from gateway.store.schema import metadata


def run_migrations() -> None:
    """Run the pending revisions on the connection passed in ``config.attributes['connection']``."""
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection) or context.is_offline_mode():
        raise StoreError("store migrations run only through gateway.store.upgrade() on a live connection")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things: future revisions use batch mode there.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
