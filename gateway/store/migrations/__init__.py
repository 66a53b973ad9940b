"""Alembic migrations of the store, run programmatically by ``gateway.store.upgrade`` (no alembic.ini)."""
