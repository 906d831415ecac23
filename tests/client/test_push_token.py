"""``Client.register_push_token``: the token reaches the server bound to the device's
session, and signing out forgets it."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from chinwag.client import Client
from chinwag.server.storage.schema import push_tokens
from tests.client.conftest import Tokens
from tests.client.test_sync import signed_in
from tests.support import RunningServer


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
