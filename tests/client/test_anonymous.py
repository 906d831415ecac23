"""Kustomer-style log-in, anonymous users, their upgrade, and the login-request message."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from chinwag.client import LOGIN_REQUEST_MIME_TYPE, AnonymousData, Client, Message
from tests.client.conftest import Tokens
from tests.client.test_sync import eventually, signed_in
from tests.support import AppFixture, RunningServer, make_app


@pytest.fixture
async def open_app(server: RunningServer) -> AppFixture:
    """An app whose backend signs log-in JWTs without nonces, and allows anonymous users."""
    return await make_app(server.services, require_nonce=False, allow_anonymous=True)


async def test_log_in_is_logged_in_log_out(
    server: RunningServer, open_app: AppFixture, make_client: Callable[..., Client]
) -> None:
    tokens = Tokens(server, open_app)
    async with make_client(app_id=open_app.app_id) as client:
        assert not client.is_logged_in()
        user = await client.log_in(tokens.sign("cust-1", email="c@example.com"))
        assert user.user_id == "cust-1"
        assert client.is_logged_in()
        assert client.is_logged_in(email="c@example.com")
        assert client.is_logged_in(user_id="cust-1")
        assert not client.is_logged_in(user_id="cust-2")
        assert not client.is_logged_in(email="x@example.com", user_id="cust-1")  # email wins
        await client.log_out()
        assert not client.is_logged_in()


async def start_chat(client: Client) -> str:
    await client.start_anonymous()
    await client.wait_until_synced()
    conv = await client.create_conversation([client.user.user_id, "agent"])  # type: ignore[union-attr]
    await client.send_message(conv.id, "hello, I'm anonymous")
    await client.flush_outbox()
    return conv.id


@pytest.mark.parametrize("choice", [AnonymousData.KEEP, AnonymousData.DISCARD])
async def test_anonymous_then_log_in(
    server: RunningServer,
    open_app: AppFixture,
    make_client: Callable[..., Client],
    choice: AnonymousData,
) -> None:
    tokens = Tokens(server, open_app)
    async with make_client(app_id=open_app.app_id) as client:
        cid = await start_chat(client)
        anonymous = client.user
        assert anonymous is not None
        assert anonymous.anonymous
        assert not client.is_logged_in()
        user = await client.log_in(tokens.sign("dora"), anonymous_data=choice)
        assert user.user_id == "dora"
        assert not user.anonymous
        await client.wait_until_synced()
        await client.sync_now()
        ids = [c.id for c in await client.conversations()]
        if choice is AnonymousData.KEEP:
            assert ids == [cid]
            assert [m.text for m in await client.messages(cid)] == ["hello, I'm anonymous"]
        else:
            assert ids == []
    async with make_client("dora-laptop", app_id=open_app.app_id) as other:
        await other.log_in(tokens.sign("dora"))
        await other.wait_until_synced()
        expected = [cid] if choice is AnonymousData.KEEP else []
        assert [c.id for c in await other.conversations()] == expected


async def test_challenge_style_upgrade_keeps_by_default(
    server: RunningServer, app: AppFixture, make_client: Callable[..., Client], tokens: Tokens
) -> None:
    async with make_client(identity_token_provider=tokens.provider("erin")) as client:
        cid = await start_chat(client)
        assert await client.request_nonce() is not None  # anonymous users may still sign in
        user = await client.authenticate()
        assert user.user_id == "erin"
        await client.wait_until_synced()
        await client.sync_now()
        assert [c.id for c in await client.conversations()] == [cid]


async def test_login_request_message_raises_login_requested(
    server: RunningServer, make_client: Callable[..., Client], tokens: Tokens
) -> None:
    async with make_client("visitor") as visitor:
        await visitor.start_anonymous()
        await visitor.wait_until_synced()
        asked: asyncio.Queue[Message] = asyncio.Queue()
        visitor.on("login_requested", asked.put_nowait)
        assert visitor.user is not None
        agent = await signed_in(make_client, tokens, "agent")
        try:
            conv = await agent.create_conversation(["agent", visitor.user.user_id])
            await agent.send_message(
                conv.id,
                parts=[
                    {"mime_type": "text/plain", "body": "Please sign in to continue."},
                    {"mime_type": LOGIN_REQUEST_MIME_TYPE, "body": '{"reason": "account"}'},
                ],
            )
            message = await asyncio.wait_for(asked.get(), 10)
            assert message.requests_login
            assert message.sender_id == "agent"

            async def stored() -> bool:
                return len(await visitor.messages(conv.id)) == 1

            await eventually(stored)
        finally:
            await agent.close()
