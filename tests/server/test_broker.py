"""One contract for every broker backend, and two server nodes sharing Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import httpx
import pytest

from chinwag.server.broker import (
    Broker,
    Doorbell,
    EventsAppended,
    Resync,
    SessionsRevoked,
    Signal,
    open_broker,
)
from chinwag.server.broker.base import decode, encode
from chinwag.server.settings import Settings
from tests.server.test_websocket import create_conversation, open_device, send_rest, sign_in
from tests.support import make_app, postgres_database, run_server

REDIS_URL = "redis://127.0.0.1:6379/0"

DOORBELLS: list[Doorbell] = [
    EventsAppended(event_json=b'{"type":"receipt","at":1.5,"data":{}}', targets=((3, 9), (7, 1))),
    Signal(user_pks=(1, 2), frame=b'{"type":"signal"}', exclude_session="s1"),
    Signal(user_pks=(4,), frame=b'{"type":"signal","x":"\\u00e9"}'),
    SessionsRevoked(session_ids=("a", "b"), reason="logout"),
    SessionsRevoked(session_ids=("c",), reason="revoked", wipe=True),
]


def _prefix() -> str:
    return f"chinwag_test_{secrets.token_hex(6)}"


@pytest.fixture(params=["memory://", REDIS_URL])
async def broker_pair(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[Broker, asyncio.Queue[Doorbell]]]:
    broker = open_broker(request.param, prefix=_prefix())
    received: asyncio.Queue[Doorbell] = asyncio.Queue()
    await broker.start(received.put_nowait)
    yield broker, received
    await broker.close()


@pytest.mark.parametrize("doorbell", DOORBELLS)
def test_encode_decode_round_trip(doorbell: Doorbell) -> None:
    assert decode(encode(doorbell)) == doorbell


def test_a_revocation_doorbell_from_an_older_node_means_no_wipe() -> None:
    old = b'{"k":"r","s":["a"],"r":"revoked"}'
    assert decode(old) == SessionsRevoked(session_ids=("a",), reason="revoked", wipe=False)


async def test_published_doorbells_reach_the_listener_in_order(
    broker_pair: tuple[Broker, asyncio.Queue[Doorbell]],
) -> None:
    broker, received = broker_pair
    for doorbell in DOORBELLS:
        broker.publish(doorbell)
    got = [await asyncio.wait_for(received.get(), 5) for _ in DOORBELLS]
    assert got == DOORBELLS


async def test_a_closed_broker_delivers_nothing(
    broker_pair: tuple[Broker, asyncio.Queue[Doorbell]],
) -> None:
    broker, received = broker_pair
    await broker.close()
    broker.publish(DOORBELLS[0])
    await asyncio.sleep(0.2)
    assert received.empty()


async def test_redis_nodes_with_one_prefix_hear_each_other_and_no_one_else() -> None:
    prefix = _prefix()
    node_a, node_b = open_broker(REDIS_URL, prefix=prefix), open_broker(REDIS_URL, prefix=prefix)
    stranger = open_broker(REDIS_URL, prefix=_prefix())
    heard_a: asyncio.Queue[Doorbell] = asyncio.Queue()
    heard_b: asyncio.Queue[Doorbell] = asyncio.Queue()
    heard_stranger: asyncio.Queue[Doorbell] = asyncio.Queue()
    await node_a.start(heard_a.put_nowait)
    await node_b.start(heard_b.put_nowait)
    await stranger.start(heard_stranger.put_nowait)
    try:
        node_b.publish(DOORBELLS[3])
        assert await asyncio.wait_for(heard_a.get(), 5) == DOORBELLS[3]
        assert await asyncio.wait_for(heard_b.get(), 5) == DOORBELLS[3]
        await asyncio.sleep(0.2)
        assert heard_stranger.empty()
    finally:
        for broker in (node_a, node_b, stranger):
            await broker.close()


def test_unknown_scheme_is_refused_with_a_hint() -> None:
    with pytest.raises(ValueError, match="use memory:// or redis://"):
        open_broker("kafka://localhost")


async def test_two_nodes_share_events_and_typing_through_redis() -> None:
    """Alice is connected to node A; Bob writes through node B; Alice sees it live."""
    async with postgres_database() as database_url:
        settings = Settings(
            database_url=database_url,
            broker_url=REDIS_URL,
            broker_prefix=_prefix(),
            auth_rate_per_second=0,
        )
        async with run_server(settings) as node_a, run_server(settings) as node_b:
            app = await make_app(node_a.services)
            async with (
                httpx.AsyncClient(base_url=node_a.url) as client_a,
                httpx.AsyncClient(base_url=node_b.url) as client_b,
            ):
                alice = await sign_in(client_a, app, "alice", node_a.clock.now())
                bob = await sign_in(client_b, app, "bob", node_b.clock.now())
                conversation_id = await create_conversation(client_b, bob, ["alice"])
                on_a = await open_device(node_a, alice.token, after=0)
                await on_a.until_caught_up()
                sent = await send_rest(client_b, bob, conversation_id, "across nodes")
                await on_a.until_cursor(2)
                assert on_a.events[-1]["data"]["message"]["id"] == sent["id"]
                on_b = await open_device(node_b, bob.token)
                typing = {"conversation_id": conversation_id, "state": "started"}
                assert (await on_b.request("typing.update", typing))["ok"]
                signal = await on_a.until_signal(1)
                assert signal["data"]["user_id"] == "bob"
                for device in (on_a, on_b):
                    await device.ws.close()


async def _kill_subscribers(prefix: str) -> int:
    """Cut this test's Redis subscriber connections (and only those), as an outage would."""
    import redis.asyncio as aioredis

    admin = aioredis.from_url(REDIS_URL)
    try:
        killed = 0
        for client in await admin.client_list():
            if client.get("name") == f"{prefix}:doorbell" and int(client.get("sub", 0)) > 0:
                await admin.client_kill_filter(_id=client["id"])
                killed += 1
        return killed
    finally:
        await admin.aclose()


async def test_redis_resubscribes_after_losing_the_connection_and_asks_for_a_resync() -> None:
    prefix = _prefix()
    broker = open_broker(REDIS_URL, prefix=prefix)
    heard: asyncio.Queue[Doorbell] = asyncio.Queue()
    await broker.start(heard.put_nowait)
    try:
        assert await _kill_subscribers(prefix) == 1
        assert await asyncio.wait_for(heard.get(), 10) == Resync()
        broker.publish(DOORBELLS[0])
        assert await asyncio.wait_for(heard.get(), 5) == DOORBELLS[0]
    finally:
        await broker.close()


def test_resync_is_never_published() -> None:
    with pytest.raises(ValueError, match="never published"):
        encode(Resync())
