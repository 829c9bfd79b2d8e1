"""Alembic environment: runs on the connection handed over by `thresher.store.db.migrate`."""

from __future__ import annotations

from alembic import context

from thresher.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only when run through the alembic CLI
    raise RuntimeError("run migrations through thresher.store.db.migrate")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
