"""Upgrading a database made by an earlier release keeps what it held working."""

from __future__ import annotations

import logging
import uuid

import jwt
import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import insert

from chinwag.core.keys import Alg, generate_hmac_secret, verifier_for
from chinwag.server.storage import announcements as announcement_store
from chinwag.server.storage import apps as app_store
from chinwag.server.storage import blocks as block_store
from chinwag.server.storage import sessions as session_store
from chinwag.server.storage import users as user_store
from chinwag.server.storage.database import Database, _alembic_config
from chinwag.server.storage.schema import app_keys, apps, sessions, users

APP = "4b7f1c1e-2f0a-4c53-9d3e-0a1b2c3d4e5f"
SESSION = "s" * 32


async def _fill_at_0001(db: Database, secret: str) -> None:
    """A 0001 database with one app, one HS256 key and one live session."""
    async with db.engine.begin() as conn:
        await conn.run_sync(lambda sync: command.upgrade(_alembic_config(sync), "0001"))
        app = {"id": APP, "name": "old", "environment": "staging", "session_lifetime": 3600}
        policy = {"require_nonce": True, "max_token_age": 900, "allow_anonymous": False}
        await conn.execute(insert(apps).values(**app, **policy, created_at=1.0, updated_at=1.0))
        key = {"kid": "key_old", "app_id": APP, "alg": "HS256", "secret": secret}
        await conn.execute(
            insert(app_keys).values(**key, development=False, enabled=True, created_at=1.0)
        )
        user = {"app_id": APP, "user_id": "alice", "anonymous": False}
        made = await conn.execute(
            insert(users).values(**user, created_at=1.0, updated_at=1.0).returning(users.c.pk)
        )
        await conn.execute(
            insert(sessions).values(
                id=SESSION,
                app_id=APP,
                user_pk=made.scalar_one(),
                secret_hash=b"\0" * 32,
                created_at=1.0,
                expires_at=2e9,
            )
        )


async def test_0002_leaves_sessions_unwiped_and_stored_secrets_work_as_printed(
    database_url: str,
) -> None:
    db = Database(database_url)
    secret = generate_hmac_secret(b"\x05" * 32)
    try:
        await _fill_at_0001(db, secret)
        await db.migrate()
        async with db.read() as conn:
            session = await session_store.get_session(conn, SESSION)
            key = await app_store.get_key(conn, APP, "key_old")
    finally:
        await db.close()
    assert session is not None
    assert session.wipe is False
    assert key is not None
    token = jwt.encode({"sub": "alice", "iat": 1}, secret, "HS256", headers={"kid": "key_old"})
    header, payload, signature = token.split(".")
    material = verifier_for(Alg.HS256, secret=key.secret)
    assert material.verify(f"{header}.{payload}".encode(), jwt.utils.base64url_decode(signature))


async def test_0007_keeps_existing_users_people_with_no_blocks(database_url: str) -> None:
    db = Database(database_url)
    try:
        await _fill_at_0001(db, generate_hmac_secret(b"\x07" * 32))
        await db.migrate()
        async with db.read() as conn:
            alice = await user_store.get_user(conn, APP, "alice")
            assert alice is not None
            assert alice.bot is False
            assert await block_store.list_blocked(conn, alice.pk) == []
            assert await announcement_store.get_announcement(conn, APP, str(uuid.uuid4())) is None
    finally:
        await db.close()


async def test_migrating_logs_one_line_when_the_schema_moves_and_none_when_current(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An operator sees what happened to the schema in one line, not Alembic's line per
    migration (those are silenced where logging is configured)."""
    caplog.set_level(logging.INFO, logger="chinwag.server.storage.database")
    db = Database(database_url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(_alembic_config(sync), "0006"))
        await db.migrate()
        moved = [r.getMessage() for r in caplog.records if r.name.startswith("chinwag")]
        caplog.clear()
        await db.migrate()
        again = [r.getMessage() for r in caplog.records if r.name.startswith("chinwag")]
    finally:
        await db.close()
    scripts = Config()
    scripts.set_main_option("script_location", "chinwag.server.storage:migrations")
    head = ScriptDirectory.from_config(scripts).get_current_head()
    assert moved == [f"database schema upgraded from revision 0006 to {head}"]
    assert again == []
