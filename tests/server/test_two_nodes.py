"""Two nodes on one PostgreSQL database and one Redis: doorbells across, forgeries harmless."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from chinwag.server.settings import Settings
from tests.server.test_websocket import (
    SignedIn,
    create_conversation,
    open_device,
    send_rest,
    sign_in,
    user_pk_of,
)
from tests.support import AppFixture, RunningServer, make_app, postgres_database, run_server

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass
class Pair:
    a: RunningServer
    b: RunningServer
    app: AppFixture
    client_a: httpx.AsyncClient
    client_b: httpx.AsyncClient

    @property
    def channel(self) -> str:
        return f"{self.a.settings.broker_prefix}:{self.a.services.deployment_id}:doorbell"


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    async with postgres_database() as database_url:
        settings = Settings(
            database_url=database_url,
            broker_url=REDIS_URL,
            broker_prefix=f"chinwag_test_{secrets.token_hex(6)}",
            auth_rate_per_second=0,
        )
        async with run_server(settings) as node_a, run_server(settings) as node_b:
            async with asyncio.timeout(10):
                while not (node_a.services.broker.connected and node_b.services.broker.connected):
                    await asyncio.sleep(0.01)
            app = await make_app(node_a.services)
            async with (
                httpx.AsyncClient(base_url=node_a.url) as client_a,
                httpx.AsyncClient(base_url=node_b.url) as client_b,
            ):
                yield Pair(node_a, node_b, app, client_a, client_b)


async def forge(channel: str, *bodies: dict[str, object]) -> None:
    """Publish as anyone with access to Redis could."""
    writer = aioredis.from_url(REDIS_URL)
    try:
        for body in bodies:
            await writer.publish(channel, orjson.dumps(body))
    finally:
        await writer.aclose()


async def test_two_nodes_share_events_and_typing_through_redis(pair: Pair) -> None:
    """Alice is connected to node A; Bob writes through node B; Alice sees it live."""
    alice = await sign_in(pair.client_a, pair.app, "alice", pair.a.clock.now())
    bob = await sign_in(pair.client_b, pair.app, "bob", pair.b.clock.now())
    conversation_id = await create_conversation(pair.client_b, bob, ["alice"])
    on_a = await open_device(pair.a, alice.token, after=0)
    await on_a.until_caught_up()
    sent = await send_rest(pair.client_b, bob, conversation_id, "across nodes")
    await on_a.until_cursor(2)
    assert on_a.events[-1]["data"]["message"]["id"] == sent["id"]
    on_b = await open_device(pair.b, bob.token)
    typing = {"conversation_id": conversation_id, "state": "started"}
    assert (await on_b.request("typing.update", typing))["ok"]
    signal = await on_a.until_signal(1)
    assert signal["data"] == {**typing, "user_id": "bob"}
    for device in (on_a, on_b):
        await device.ws.close()


async def _alice_on_a(pair: Pair) -> tuple[SignedIn, int]:
    alice = await sign_in(pair.client_a, pair.app, "alice", pair.a.clock.now())
    return alice, await user_pk_of(pair.a, alice)


async def test_forged_doorbells_cause_no_event_and_no_close(pair: Pair) -> None:
    alice, alice_pk = await _alice_on_a(pair)
    device = await open_device(pair.a, alice.token, after=0)
    await device.until_caught_up()
    head = device.cursor
    deployment = pair.a.services.deployment_id
    session_id = alice.body["session_id"]
    base = {"v": 1, "d": deployment, "n": "forger"}
    await forge(
        pair.channel,
        {**base, "k": "a", "t": [[alice_pk, head + 1], [alice_pk, 10**9]]},
        {**base, "k": "r", "s": [session_id]},
        {**base, "k": "e", "j": '{"type":"message.created","data":{}}', "t": [[alice_pk, 1]]},
        {"k": "e", "j": '{"type":"message.created","data":{}}', "t": [[alice_pk, head + 1]]},
        {**base, "k": "y"},
    )
    pong = await device.request("ping", {})  # the socket is open, answering, and got nothing
    assert pong["ok"]
    await asyncio.sleep(1.0)  # room for a wrongful close (the store says: not revoked)
    assert (await device.request("ping", {}))["ok"]
    assert device.cursor == head
    assert not device.signals
    await device.ws.close()


async def test_a_revocation_on_one_node_closes_the_socket_on_the_other(pair: Pair) -> None:
    alice, _ = await _alice_on_a(pair)
    device = await open_device(pair.a, alice.token)
    headers = {"Authorization": f"Bearer {alice.token}"}
    ended = await pair.client_b.delete("/v1/sessions/current", headers=headers)
    assert ended.status_code == 204, ended.text
    code, _ = await device.closed(timeout=10)
    assert code == 4003
