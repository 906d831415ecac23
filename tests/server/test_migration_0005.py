"""Migration 0005 adds ``app_jwks`` as schema.py declares it, cascades with its app, and
goes down cleanly."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from chinwag.server.storage import jwks as jwks_store
from chinwag.server.storage.database import Database, _alembic_config
from chinwag.server.storage.schema import metadata


async def test_app_jwks_matches_the_schema_and_follows_its_app(database_url: str) -> None:
    db = Database(database_url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(_alembic_config(sync), "0003"))
            await conn.execute(
                text(
                    "INSERT INTO apps (id, name, environment, session_lifetime, require_nonce,"
                    " max_token_age, allow_anonymous, created_at, updated_at)"
                    " VALUES ('a1', 'app', 'staging', 60, true, 60, false, 1.0, 1.0)"
                )
            )
        await db.migrate()
        async with db.engine.connect() as conn:
            diffs = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
        assert [d for d in diffs if "app_jwks" in repr(d)] == []
        async with db.engine.begin() as conn:
            await jwks_store.set_jwks_url(conn, "a1", "https://a.example/jwks", 2.0)
            await jwks_store.set_jwks_url(conn, "a1", "https://b.example/jwks", 3.0)
            assert await jwks_store.get_jwks_url(conn, "a1") == "https://b.example/jwks"
            await conn.execute(text("DELETE FROM apps WHERE id = 'a1'"))
            assert await jwks_store.get_jwks_url(conn, "a1") is None
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda sync: command.downgrade(_alembic_config(sync), "0003"))
            tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        assert "app_jwks" not in tables
    finally:
        await db.close()
