"""Migration 0010 (message bodies last) keeps every message and every hidden message,
matches schema.py, and on SQLite leaves ``parts`` as the last column."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from chinwag.server.storage.database import Database, _alembic_config
from chinwag.server.storage.schema import metadata

_ROWS = [
    "INSERT INTO apps (id, name, environment, session_lifetime, require_nonce,"
    " max_token_age, allow_anonymous, created_at, updated_at)"
    " VALUES ('a1', 'app', 'staging', 60, true, 60, false, 1.0, 1.0)",
    "INSERT INTO users (pk, app_id, user_id, anonymous, stream_head, created_at, updated_at)"
    " VALUES (1, 'a1', 'alice', false, 0, 1.0, 1.0), (2, 'a1', 'bob', false, 0, 1.0, 1.0)",
    'INSERT INTO conversations (id, app_id, public_id, "distinct", created_at, last_position,'
    " participant_count) VALUES ('c1', 'a1', 'p1', false, 1.0, 2, 2)",
    "INSERT INTO messages (id, app_id, public_id, conversation_id, position, sender_pk,"
    " parts, size, sent_at, deleted_at) VALUES"
    " ('m1', 'a1', 'pm1', 'c1', 1, 1, '[\"one\"]', 3, 1.5, NULL),"
    " ('m2', 'a1', 'pm2', 'c1', 2, 2, '[\"two\"]', 3, 2.5, 3.5)",
    "INSERT INTO hidden_messages (user_pk, message_id) VALUES (1, 'm1'), (2, 'm2')",
]

_READ = (
    "SELECT id, app_id, public_id, conversation_id, position, sender_pk, parts, size,"
    " sent_at, deleted_at FROM messages ORDER BY position"
)


async def test_messages_and_hides_survive_and_bodies_come_last(database_url: str) -> None:
    db = Database(database_url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(_alembic_config(sync), "0009"))
            for statement in _ROWS:
                await conn.execute(text(statement))
            before = [tuple(row) for row in await conn.execute(text(_READ))]
        await db.migrate()
        async with db.engine.begin() as conn:
            diffs = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
            assert [d for d in diffs if "messages" in repr(d)] == []
            assert [tuple(row) for row in await conn.execute(text(_READ))] == before
            hidden = await conn.execute(
                text("SELECT user_pk, message_id FROM hidden_messages ORDER BY user_pk")
            )
            assert [tuple(row) for row in hidden] == [(1, "m1"), (2, "m2")]
            if not db.is_postgres:
                columns = await conn.run_sync(
                    lambda sync: [c["name"] for c in inspect(sync).get_columns("messages")]
                )
                assert columns[-1] == "parts"
            # The rebuilt table still enforces what the old one did.
            await conn.execute(text("DELETE FROM messages WHERE id = 'm1'"))
            left = await conn.execute(text("SELECT message_id FROM hidden_messages"))
            assert [row[0] for row in left] == ["m2"]
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda sync: command.downgrade(_alembic_config(sync), "0009"))
            assert [tuple(row) for row in await conn.execute(text(_READ))] == before[1:]
    finally:
        await db.close()
