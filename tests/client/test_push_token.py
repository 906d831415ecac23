"""``Client.register_push_token``: the token reaches the server bound to the device's
session, follows the user into a renewed session, and signing out forgets it."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from chinwag.client import Client
from chinwag.server.handlers.sessions import revoke_user_sessions
from chinwag.server.storage.schema import push_tokens
from tests.client.conftest import Tokens
from tests.client.test_sync import signed_in
from tests.support import RunningServer, eventually


async def _stored(server: RunningServer) -> list[tuple[str, str]]:
    async with server.services.db.read() as conn:
        rows = await conn.execute(select(push_tokens.c.kind, push_tokens.c.token))
        return [(kind, token) for kind, token in rows]


async def test_a_registered_push_token_lives_as_long_as_the_session(
    server: RunningServer, make_client: Callable[..., Client], tokens: Tokens
) -> None:
    phone = await signed_in(make_client, tokens, "alice")
    try:
        await phone.register_push_token("apns", "f00d")
        assert await _stored(server) == [("apns", "f00d")]
        await phone.register_push_token("apns", "beef")
        assert await _stored(server) == [("apns", "beef")]
        await phone.log_out()
        assert await _stored(server) == []
    finally:
        await phone.close()


async def test_the_token_follows_the_user_into_a_renewed_session(
    server: RunningServer, make_client: Callable[..., Client], tokens: Tokens
) -> None:
    phone = await signed_in(make_client, tokens, "alice")
    try:
        await phone.register_push_token("fcm", "cafe")
        (before,) = await _sessions(server)
        await revoke_user_sessions(server.services, tokens.app.app_id, "alice")
        assert await _sessions(server) == []

        async def registered_again() -> bool:
            return len(await _sessions(server)) == 1

        await eventually(registered_again)
        (after,) = await _sessions(server)
        assert after != before
        assert await _stored(server) == [("fcm", "cafe")]
    finally:
        await phone.close()


async def _sessions(server: RunningServer) -> list[str]:
    async with server.services.db.read() as conn:
        return [str(r[0]) for r in await conn.execute(select(push_tokens.c.session_id))]
