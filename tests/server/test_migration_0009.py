"""Migration 0009 (signing key ids per app) keeps every key, matches schema.py, lets a
second app use a kid the first has, and goes down only while no kid is shared."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from chinwag.server.storage import apps as app_store
from chinwag.server.storage.database import Database, _alembic_config
from chinwag.server.storage.schema import metadata

_APP = (
    "INSERT INTO apps (id, name, environment, session_lifetime, require_nonce,"
    " max_token_age, allow_anonymous, created_at, updated_at)"
    " VALUES ('{id}', 'app', 'staging', 60, true, 60, false, 1.0, 1.0)"
)
_KEY = (
    "INSERT INTO app_keys (kid, app_id, alg, secret, development, enabled, created_at)"
    " VALUES ('{kid}', '{app}', 'HS256', 'secret-{app}', false, {enabled}, 1.0)"
)


async def test_keys_survive_and_a_kid_is_then_per_app(database_url: str) -> None:
    db = Database(database_url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(_alembic_config(sync), "0008"))
            for app in ("a1", "a2"):
                await conn.execute(text(_APP.format(id=app)))
            await conn.execute(text(_KEY.format(kid="key-2024", app="a1", enabled="true")))
            await conn.execute(text(_KEY.format(kid="other", app="a1", enabled="false")))
        await db.migrate()
        async with db.engine.connect() as conn:
            diffs = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
            primary = await conn.run_sync(lambda sync: inspect(sync).get_pk_constraint("app_keys"))
        assert [d for d in diffs if "app_keys" in repr(d)] == []
        assert primary["constrained_columns"] == ["app_id", "kid"]
        async with db.engine.begin() as conn:
            kept = await app_store.list_keys(conn, "a1")
            assert [(k.kid, k.secret, k.enabled) for k in kept] == [
                ("key-2024", "secret-a1", True),
                ("other", "secret-a1", False),
            ]
            await conn.execute(text(_KEY.format(kid="key-2024", app="a2", enabled="true")))
            mine = await app_store.get_key(conn, "a2", "key-2024")
            assert mine is not None
            assert mine.secret == "secret-a2"
        with pytest.raises(RuntimeError, match="key-2024"):
            async with db.engine.begin() as conn:
                await conn.run_sync(lambda sync: command.downgrade(_alembic_config(sync), "0008"))
        async with db.engine.begin() as conn:
            assert await app_store.delete_key(conn, "a2", "key-2024")
            await conn.run_sync(lambda sync: command.downgrade(_alembic_config(sync), "0008"))
            primary = await conn.run_sync(lambda sync: inspect(sync).get_pk_constraint("app_keys"))
            indexes = await conn.run_sync(lambda sync: inspect(sync).get_indexes("app_keys"))
            count = await conn.scalar(text("SELECT COUNT(*) FROM app_keys"))
        assert primary["constrained_columns"] == ["kid"]
        assert [i["name"] for i in indexes] == ["ix_app_keys_app_id"]
        assert count == 2
    finally:
        await db.close()
