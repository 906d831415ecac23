"""The doorbell on the wire (cursors only, namespaced, distrusted) and the Redis broker's
repairs: lost subscriptions, lost publishes, Redis down at start-up."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from chinwag.core.typing import TypingState
from chinwag.server.broker import (
    Broker,
    ConversationAdvanced,
    Doorbell,
    EventsAppended,
    Resync,
    RevocationHint,
    SessionsRevoked,
    Signal,
    StreamsAdvanced,
    open_broker,
)
from chinwag.server.broker.redis import RedisBroker
from chinwag.server.broker.wire import COALESCED_TARGETS, WireError, decode, encode, encode_all
from tests.redis_server import redis_server
from tests.support import free_port

REDIS_URL = "redis://127.0.0.1:6379/0"
SECRET_BODY = b'{"type":"message.created","data":{"body":"very private"}}'

WIRE: list[tuple[Doorbell, Doorbell]] = [
    (EventsAppended(SECRET_BODY, ((3, 9), (7, 1))), StreamsAdvanced(((3, 9), (7, 1)))),
    (StreamsAdvanced(((3, 9),), removed_from="c1"), StreamsAdvanced(((3, 9),), "c1")),
    (
        Signal((1, 2), "c1", "bob", TypingState.STARTED, exclude_session="s1"),
        Signal((1, 2), "c1", "bob", TypingState.STARTED, exclude_session="s1"),
    ),
    (SessionsRevoked(("a", "b"), "revoked", wipe=True), RevocationHint(("a", "b"))),
    (ConversationAdvanced("c1", 7), ConversationAdvanced("c1", 7)),
    (Resync(), Resync()),
]


def _prefix() -> str:
    return f"chinwag_test_{secrets.token_hex(6)}"


@pytest.mark.parametrize(("sent", "heard"), WIRE)
def test_the_wire_carries_positions_and_ids_never_bodies_or_verdicts(
    sent: Doorbell, heard: Doorbell
) -> None:
    raw = encode(sent, deployment="d1", node="n1")
    assert b"private" not in raw
    assert b"revoked" not in raw
    assert b"wipe" not in raw
    assert decode(raw, deployment="d1") == ("n1", heard)


def test_a_removal_names_its_conversation_for_the_typing_relays() -> None:
    event = b'{"type":"conversation.participants_removed","data":{"conversation_id":"c9"}}'
    raw = encode(EventsAppended(event, ((4, 2),)), deployment="d", node="n")
    assert decode(raw, deployment="d")[1] == StreamsAdvanced(((4, 2),), removed_from="c9")


def test_queued_hints_travel_as_one_doorbell_each_users_highest_position_in_order() -> None:
    """A run of plain stream hints is one wire message (each user's highest position);
    anything else keeps its place, so nothing overtakes what was rung before it."""
    queued: list[Doorbell] = [
        StreamsAdvanced(((1, 3),)),
        EventsAppended(SECRET_BODY, ((2, 5), (1, 4))),
        StreamsAdvanced(((1, 2),)),
        RevocationHint(("s1",)),
        StreamsAdvanced(((1, 9),)),
        StreamsAdvanced(((4, 1),), removed_from="c1"),
    ]
    raws = encode_all(queued, deployment="d", node="n")
    assert all(b"private" not in raw for raw in raws)
    assert [decode(raw, deployment="d")[1] for raw in raws] == [
        StreamsAdvanced(((1, 4), (2, 5))),
        RevocationHint(("s1",)),
        StreamsAdvanced(((1, 9),)),
        StreamsAdvanced(((4, 1),), removed_from="c1"),
    ]


def test_a_coalesced_doorbell_has_at_most_coalesced_targets() -> None:
    queued: list[Doorbell] = [StreamsAdvanced(((pk, 1),)) for pk in range(1, COALESCED_TARGETS + 2)]
    heard = [decode(raw, deployment="d")[1] for raw in encode_all(queued, deployment="d", node="n")]
    assert [len(h.targets) for h in heard if isinstance(h, StreamsAdvanced)] == [
        COALESCED_TARGETS,
        1,
    ]


FORGERIES = [
    b"not json",
    b"[]",
    b'{"v":1,"d":"other","n":"x","k":"y"}',  # another deployment
    b'{"v":2,"d":"d1","n":"x","k":"y"}',
    b'{"v":1,"d":"d1","n":"x","k":"e","j":"{}","t":[[1,2]]}',  # the old event-carrying kind
    b'{"v":1,"d":"d1","n":"x","k":"a","t":[[true,2]]}',
    b'{"v":1,"d":"d1","n":"x","k":"a","t":[[1,-2]]}',
    b'{"v":1,"d":"d1","n":"x","k":"a","t":[[1,2,3]]}',
    b'{"v":1,"d":"d1","n":"x","k":"a","t":[[1,1e3]]}',
    b'{"v":1,"d":"d1","n":"x","k":"s","u":[1],"c":"c","i":"u","s":"hacked","x":null}',
    b'{"v":1,"d":"d1","n":"x","k":"s","u":[1],"c":"' + b"c" * 200 + b'","i":"u","s":"paused"}',
    b'{"v":1,"d":"d1","n":"x","k":"r","s":"abc"}',
    b'{"v":1,"d":"d1","n":"x","k":"r","s":[1]}',
    b'{"v":1,"d":"d1","n":"","k":"y"}',
    b'{"v":1,"d":"d1","n":"x","k":"c","c":"c1","p":0}',
    b'{"v":1,"d":"d1","n":"x","k":"c","c":"c1","p":true}',
    b'{"v":1,"d":"d1","n":"x","k":"c","c":"","p":3}',
    b'{"v":1,"d":"d1","n":"x","k":"c","c":"' + b"c" * 200 + b'","p":3}',
    orjson.dumps({"v": 1, "d": "d1", "n": "x", "k": "a", "t": [[1, 1]] * 50_001}),
]


@pytest.mark.parametrize("raw", FORGERIES)
def test_malformed_foreign_or_oversized_doorbells_are_refused(raw: bytes) -> None:
    with pytest.raises(WireError):
        decode(raw, deployment="d1")


def test_unknown_scheme_is_refused_with_a_hint() -> None:
    with pytest.raises(ValueError, match="use memory:// or redis://"):
        open_broker("kafka://localhost")


async def _started(
    url: str, prefix: str, deployment: str
) -> tuple[Broker, asyncio.Queue[Doorbell]]:
    broker = open_broker(url, prefix=prefix, deployment_id=deployment)
    heard: asyncio.Queue[Doorbell] = asyncio.Queue()
    await broker.start(heard.put_nowait)
    return broker, heard


def _redis(broker: Broker) -> RedisBroker:
    """``broker`` as the Redis broker it is, for its channel and connection names."""
    assert isinstance(broker, RedisBroker)
    return broker


async def _until_connected(*brokers: Broker, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not all(b.connected for b in brokers):
            await asyncio.sleep(0.01)


async def _next(heard: asyncio.Queue[Doorbell], timeout: float = 5) -> Doorbell:
    return await asyncio.wait_for(heard.get(), timeout)


async def _next_besides_resyncs(heard: asyncio.Queue[Doorbell], timeout: float) -> Doorbell:
    """The next doorbell that is not a local Resync (a node hands those out while deaf)."""
    async with asyncio.timeout(timeout):
        while (got := await heard.get()) == Resync():
            pass
    return got


@pytest.fixture
async def three_nodes() -> AsyncIterator[list[tuple[Broker, asyncio.Queue[Doorbell]]]]:
    """Nodes a and b of one deployment and a stranger of another, on one Redis and prefix."""
    prefix = _prefix()
    nodes = [
        await _started(REDIS_URL, prefix, "dep1"),
        await _started(REDIS_URL, prefix, "dep1"),
        await _started(REDIS_URL, prefix, "dep2"),
    ]
    await _until_connected(*(broker for broker, _ in nodes))
    yield nodes
    for broker, _ in nodes:
        await broker.close()


@pytest.mark.redis
async def test_nodes_of_a_deployment_hear_each_other_not_themselves_nor_strangers(
    three_nodes: list[tuple[Broker, asyncio.Queue[Doorbell]]],
) -> None:
    (a, heard_a), (_, heard_b), (_, heard_stranger) = three_nodes
    for sent, _ in WIRE:
        a.publish(sent)
    assert [await _next(heard_b) for _ in WIRE] == [heard for _, heard in WIRE]
    await asyncio.sleep(0.2)
    assert heard_a.empty()
    assert heard_stranger.empty()


@pytest.mark.redis
async def test_hints_queued_together_reach_the_other_node_in_fewer_doorbells(
    three_nodes: list[tuple[Broker, asyncio.Queue[Doorbell]]],
) -> None:
    """Rung in one turn of the loop (a group commit's sends), 1,000 users' hints are
    published together and heard as few doorbells, every user's position in them."""
    (a, _), (_, heard_b), _ = three_nodes
    for pk in range(1, 1001):
        a.publish(StreamsAdvanced(((pk, pk + 1),)))
    targets: dict[int, int] = {}
    doorbells = 0
    while len(targets) < 1000:
        heard = await _next(heard_b)
        assert isinstance(heard, StreamsAdvanced)
        targets.update(heard.targets)
        doorbells += 1
    assert targets == {pk: pk + 1 for pk in range(1, 1001)}
    assert doorbells < 10


@pytest.mark.redis
async def test_a_forged_doorbell_on_the_channel_is_dropped(
    three_nodes: list[tuple[Broker, asyncio.Queue[Doorbell]]],
) -> None:
    import redis.asyncio as aioredis

    (a, _), (b, heard_b), _ = three_nodes
    channel = _redis(b).channel
    forger = aioredis.from_url(REDIS_URL)
    try:
        for raw in FORGERIES:
            await forger.publish(channel, raw)
    finally:
        await forger.aclose()
    a.publish(Resync())  # a real one after the forgeries: only it arrives
    assert await _next(heard_b) == Resync()
    assert heard_b.empty()


def test_the_memory_broker_has_no_other_node_to_ring() -> None:
    assert open_broker("memory://").connected


async def _kill_subscribers(name: str) -> int:
    """Cut this broker's Redis subscriber connection (and only that), as an outage would."""
    import redis.asyncio as aioredis

    admin = aioredis.from_url(REDIS_URL)
    try:
        killed = 0
        for client in await admin.client_list():
            if client.get("name") == name and int(client.get("sub", 0)) > 0:
                await admin.client_kill_filter(_id=client["id"])
                killed += 1
        return killed
    finally:
        await admin.aclose()


@pytest.mark.redis
async def test_redis_resubscribes_after_losing_the_connection_and_asks_for_a_resync() -> None:
    prefix = _prefix()
    broker, heard = await _started(REDIS_URL, prefix, "dep")
    peer, _ = await _started(REDIS_URL, prefix, "dep")
    try:
        await _until_connected(broker, peer)
        assert await _kill_subscribers(_redis(broker).client_name) == 1
        assert await _next(heard, 10) == Resync()
        await _until_connected(broker)
        peer.publish(StreamsAdvanced(((1, 2),)))
        # A subscription cut this young is retried after a poll (another Resync), not at once.
        assert await _next_besides_resyncs(heard, 5) == StreamsAdvanced(((1, 2),))
    finally:
        await peer.close()
        await broker.close()


@pytest.mark.redis
async def test_a_node_starts_deaf_polls_the_store_and_hears_once_redis_is_up(
    tmp_path: Path,
) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    node, heard = await _started(url, "p", "dep")
    try:
        assert not node.connected
        assert await _next(heard, 5) == Resync()  # the poll while deaf
        assert await _next(heard, 5) == Resync()
        with redis_server(tmp_path, port=port):
            peer, _ = await _started(url, "p", "dep")
            try:
                await _until_connected(node, peer)
                peer.publish(StreamsAdvanced(((5, 6),)))
                assert await _next_besides_resyncs(heard, 5) == StreamsAdvanced(((5, 6),))
            finally:
                await peer.close()
    finally:
        await node.close()


@pytest.mark.redis
async def test_a_publish_lost_while_redis_is_down_becomes_a_resync_for_the_others(
    tmp_path: Path,
) -> None:
    import redis.asyncio as aioredis

    with redis_server(tmp_path) as redis:
        publisher, _ = await _started(redis.url, "p", "dep")
        try:
            await _until_connected(publisher)
            redis.stop()
            publisher.publish(StreamsAdvanced(((1, 1),)))  # lost
            async with asyncio.timeout(5):
                while not _redis(publisher)._lost:
                    await asyncio.sleep(0.01)
            publisher.publish(StreamsAdvanced(((1, 2),)))  # covered by the coming resync
            redis.start()
            other_node = aioredis.from_url(redis.url).pubsub()
            await asyncio.wait_for(other_node.subscribe(_redis(publisher).channel), 10)
            heard: list[Doorbell] = []
            async with asyncio.timeout(10):
                while len(heard) < 2:
                    item = await other_node.get_message(timeout=1)
                    if item and item["type"] == "message":
                        heard.append(decode(item["data"], deployment="dep")[1])
                        publisher.publish(StreamsAdvanced(((1, 3),)))
            assert heard == [Resync(), StreamsAdvanced(((1, 3),))]
            await other_node.aclose()  # type: ignore[no-untyped-call]  # unannotated in redis-py
        finally:
            await publisher.close()


@pytest.mark.redis
async def test_a_redis_idle_timeout_loses_no_doorbell(tmp_path: Path) -> None:
    """Redis closes connections idle for ``timeout`` seconds; the next doorbell still
    arrives, as itself or as the resync that repairs it."""
    with redis_server(tmp_path, "--timeout", "1") as redis:
        publisher, _ = await _started(redis.url, "p", "dep")
        listener, heard = await _started(redis.url, "p", "dep")
        try:
            await _until_connected(publisher, listener)
            publisher.publish(StreamsAdvanced(((1, 1),)))
            assert await _next(heard) == StreamsAdvanced(((1, 1),))
            await asyncio.sleep(2.5)  # idle past the server's timeout
            publisher.publish(StreamsAdvanced(((1, 2),)))
            assert await _next(heard) in (StreamsAdvanced(((1, 2),)), Resync())
        finally:
            await publisher.close()
            await listener.close()


@pytest.mark.redis
async def test_a_hung_redis_makes_the_node_deaf_until_it_answers_again(tmp_path: Path) -> None:
    """A stopped redis-server keeps its connections open and says nothing: the node must
    notice (``/readyz`` reports ``state``), poll the store meanwhile, and recover."""
    with redis_server(tmp_path) as redis:
        assert redis.process is not None
        node = _redis(open_broker(redis.url, prefix="p", deployment_id="dep"))
        node.health_interval = node.health_timeout = 0.3
        heard: asyncio.Queue[Doorbell] = asyncio.Queue()
        await node.start(heard.put_nowait)
        peer, _ = await _started(redis.url, "p", "dep")
        try:
            await _until_connected(node, peer)
            os.kill(redis.process.pid, signal.SIGSTOP)
            try:
                async with asyncio.timeout(10):
                    while node.state == "connected":
                        await asyncio.sleep(0.02)
                assert node.state == "deaf"
                assert await _next(heard, 10) == Resync()  # the store polls while deaf
            finally:
                os.kill(redis.process.pid, signal.SIGCONT)
            await _until_connected(node)
            peer.publish(StreamsAdvanced(((4, 2),)))
            assert await _next_besides_resyncs(heard, 10) == StreamsAdvanced(((4, 2),))
        finally:
            await peer.close()
            await node.close()


async def _drop_every_subscribe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A Redis endpoint that takes a connection's set-up (CLIENT SETNAME and the like: +OK)
    and hangs up on SUBSCRIBE, before confirming it: a subscription that never starts."""
    try:
        while True:
            header = await reader.readline()
            if not header.startswith(b"*"):
                break
            words = []
            for _ in range(int(header[1:])):
                length = int((await reader.readline())[1:])
                words.append((await reader.readexactly(length + 2))[:-2])
            if words[0].upper() == b"SUBSCRIBE":
                break
            writer.write(b"+OK\r\n")
            await writer.drain()
    except (OSError, ValueError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def test_subscriptions_that_fail_before_confirming_are_one_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One warning per outage: a SUBSCRIBE that goes out and fails before Redis confirms it
    does not end the outage, so it is not a new one. A fault test saw "subscription lost"
    twice in one 10 s outage; here every attempt fails that way, many times over."""
    server = await asyncio.start_server(_drop_every_subscribe, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    node = _redis(open_broker(f"redis://127.0.0.1:{port}/0", prefix="p", deployment_id="d"))
    node.poll_interval = 0.05
    heard: asyncio.Queue[Doorbell] = asyncio.Queue()
    caplog.set_level("WARNING", logger="chinwag.server.broker.redis")
    try:
        await node.start(heard.put_nowait)
        for _ in range(10):  # each a poll of the store after a failed attempt
            assert await _next(heard, 5) == Resync()
        assert not node.connected
    finally:
        await node.close()
        server.close()
    warnings = [r.getMessage() for r in caplog.records if r.name.endswith("broker.redis")]
    assert len(warnings) == 1, warnings
    assert "lost" in warnings[0] or "unreachable" in warnings[0]
