"""Migration 0008 (conversation logs and spans) matches schema.py, leaves existing index
rows valid as they are, starts every membership merged up to its conversation's last
position, and goes down cleanly."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from chinwag.server.storage.database import Database, _alembic_config
from chinwag.server.storage.events import read_stream
from chinwag.server.storage.schema import metadata
from chinwag.server.storage.spans import merge_user, pending_conversations

_ROWS = [
    "INSERT INTO apps (id, name, environment, session_lifetime, require_nonce,"
    " max_token_age, allow_anonymous, created_at, updated_at)"
    " VALUES ('a1', 'app', 'staging', 60, true, 60, false, 1.0, 1.0)",
    "INSERT INTO users (pk, app_id, user_id, anonymous, stream_head, created_at, updated_at)"
    " VALUES (1, 'a1', 'alice', false, 2, 1.0, 1.0)",
    'INSERT INTO conversations (id, app_id, public_id, "distinct", created_at, last_position,'
    " participant_count) VALUES ('c1', 'a1', 'p1', false, 1.0, 2, 1)",
    "INSERT INTO participants (conversation_id, user_pk, joined_at, sort_at)"
    " VALUES ('c1', 1, 1.0, 1.0)",
    "INSERT INTO events (id, app_id, type, conversation_id, payload, created_at) VALUES"
    " (10, 'a1', 'message.created', 'c1', '[1]', 1.0),"
    " (11, 'a1', 'message.created', 'c1', '[2]', 1.0)",
    "INSERT INTO user_events (user_pk, pos, event_id) VALUES (1, 1, 10), (1, 2, 11)",
]


async def test_existing_streams_stay_valid_and_memberships_start_merged(
    database_url: str,
) -> None:
    db = Database(database_url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(_alembic_config(sync), "0007"))
            for statement in _ROWS:
                await conn.execute(text(statement))
        await db.migrate()
        async with db.engine.connect() as conn:
            diffs = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
        touched = ("events", "user_events", "participants")
        assert [d for d in diffs if any(f"'{t}'" in repr(d) for t in touched)] == []
        async with db.engine.begin() as conn:
            stream = await read_stream(conn, 1, after=0, limit=10)
            assert [(e.pos, e.event_json) for e in stream] == [(1, b"[1]"), (2, b"[2]")]
            assert await pending_conversations(conn, 1) == []
            assert await merge_user(conn, 1) == []
            merged = await conn.execute(text("SELECT streamed_position FROM participants"))
            assert merged.scalar_one() == 2
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda sync: command.downgrade(_alembic_config(sync), "0007"))
            columns = await conn.run_sync(
                lambda sync: [c["name"] for c in inspect(sync).get_columns("user_events")]
            )
        assert columns == ["user_pk", "pos", "event_id"]
    finally:
        await db.close()
