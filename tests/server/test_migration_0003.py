"""Migration 0003 on a database with data: existing ids become the public ids, apps stay
``open``, nobody is an agent, and a former participant's snapshot is empty (not the present)."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

from chinwag.server.storage.database import Database, _alembic_config

ROWS = [
    "INSERT INTO apps VALUES ('a1', 'app', 'staging', 60, true, 60, false, 1.0, 1.0)",
    "INSERT INTO users (pk, app_id, user_id, anonymous, stream_head, created_at, updated_at)"
    " VALUES (1, 'a1', 'alice', false, 0, 1.0, 1.0)",
    'INSERT INTO conversations (id, app_id, "distinct", metadata, created_at, last_position,'
    " participant_count) VALUES ('c1', 'a1', false, '{}', 1.0, 1, 1)",
    "INSERT INTO participants (conversation_id, user_pk, joined_at, sort_at, left_at,"
    " left_position) VALUES ('c1', 1, 1.0, 1.0, 2.0, 1)",
    "INSERT INTO messages (id, app_id, conversation_id, position, sender_pk, parts, size,"
    " sent_at) VALUES ('m1', 'a1', 'c1', 1, 1, '[]', 0, 1.0)",
]


async def test_existing_rows_keep_their_ids_as_public_ids(database_url: str) -> None:
    db = Database(database_url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(_alembic_config(sync), "0001"))
            for statement in ROWS:
                await conn.execute(text(statement))
        await db.migrate()
        async with db.engine.connect() as conn:
            conv = (await conn.execute(text("SELECT public_id FROM conversations"))).one()
            message = (await conn.execute(text("SELECT public_id FROM messages"))).one()
            policy = (await conn.execute(text("SELECT conversation_policy FROM apps"))).one()
            agent = (await conn.execute(text("SELECT agent FROM users"))).one()
            snapshot = (await conn.execute(text("SELECT left_snapshot FROM participants"))).one()
        assert (conv[0], message[0], policy[0]) == ("c1", "m1", "open")
        assert not agent[0]
        assert snapshot[0] is None
    finally:
        await db.engine.dispose()
