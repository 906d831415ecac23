"""Alembic environment: always run with a connection handed in by Database.migrate()."""

from alembic import context

from chinwag.server.storage.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only via `alembic` CLI, which we don't ship
    raise RuntimeError("Run migrations through chinwag (Database.migrate), not the alembic CLI.")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
