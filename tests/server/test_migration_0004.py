"""Migration 0004 on a database with data: nobody is suspended, existing sessions have no
device details yet, and the schema after it is exactly ``storage/schema.py``'s; it also
downgrades cleanly."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from chinwag.server.storage.database import Database, _alembic_config
from chinwag.server.storage.schema import metadata

ROWS = [
    "INSERT INTO apps (id, name, environment, session_lifetime, require_nonce, max_token_age,"
    " allow_anonymous, created_at, updated_at) VALUES ('a1', 'app', 'staging', 60, true, 60,"
    " false, 1.0, 1.0)",
    "INSERT INTO users (pk, app_id, user_id, anonymous, stream_head, created_at, updated_at)"
    " VALUES (1, 'a1', 'alice', false, 0, 1.0, 1.0)",
    "INSERT INTO sessions (id, app_id, user_pk, secret_hash, created_at, expires_at)"
    " VALUES ('s1', 'a1', 1, :hash, 1.0, 2.0)",
]
NEW_TABLES = {"api_keys", "audit_log"}


async def test_existing_rows_are_unsuspended_and_schema_matches(database_url: str) -> None:
    db = Database(database_url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(_alembic_config(sync), "0003"))
            for statement in ROWS:
                await conn.execute(text(statement), {"hash": b"h" * 32})
        await db.migrate()
        async with db.engine.connect() as conn:
            app = (await conn.execute(text("SELECT suspended_at FROM apps"))).one()
            user = (await conn.execute(text("SELECT suspended_at FROM users"))).one()
            session = (
                await conn.execute(text("SELECT last_seen_at, address, device_label FROM sessions"))
            ).one()
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
        assert (app[0], user[0]) == (None, None)
        assert tuple(session) == (None, None, None)
        assert diff == []
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda sync: command.downgrade(_alembic_config(sync), "0003"))
            tables = await conn.run_sync(lambda sync: sync.dialect.get_table_names(sync))
        assert NEW_TABLES.isdisjoint(tables)
    finally:
        await db.engine.dispose()
