"""Two deployments (two databases) sharing one Redis and the default channel prefix see
nothing of each other, and doorbells forged with ``redis-cli`` deliver nothing and close
nothing: the store decides."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import orjson
import pytest
import pytest_asyncio

from tests.faults.conftest import make_app_in, pair_up, start_devices, start_nodes
from tests.faults.harness import Device, Node, until
from tests.redis_server import RedisServer
from tests.support import pg_connect, postgres_database

# One setup (three nodes, 20 devices) for both tests: the second adds forgeries to it.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.asyncio(loop_scope="module"),
]


@dataclass
class Deployment:
    database_url: str
    nodes: list[Node]
    devices: list[Device]
    conversations: list[str]

    async def fetch(self, sql: str) -> list[asyncpg.Record]:
        conn = await pg_connect(self.database_url)
        try:
            return list(await conn.fetch(sql))
        finally:
            await conn.close()

    async def deployment_id(self) -> str:
        (row,) = await self.fetch("SELECT value FROM server_secrets WHERE name = 'deployment_id'")
        return bytes(row["value"])[:8].hex()

    async def send_round(self, tag: str) -> set[str]:
        sent = set()
        for index, device in enumerate(self.devices):
            conversation = self.conversations[index % len(self.conversations)]
            sent.add((await device.client.send_message(conversation, f"{tag}{index}")).id)
        return sent

    async def until_delivered(self, ids: set[str]) -> None:
        await until(
            lambda: all(sum(d.received[m] for d in self.devices) == 2 for m in ids),
            "delivery to both participants",
        )


async def _deployment(
    stack: AsyncExitStack, redis: RedisServer, workdir: Path, name: str, nodes: int
) -> Deployment:
    database_url = await stack.enter_async_context(postgres_database())
    app = await make_app_in(database_url)
    started = [Node(f"{name}{n}", database_url, redis.url, workdir) for n in range(nodes)]

    def stop_all() -> None:
        for node in started:
            node.stop()

    stack.callback(stop_all)
    await start_nodes(started)
    folder = workdir / name
    devices = await start_devices([n.url for n in started], app, folder, 10)
    for device in devices:
        stack.push_async_callback(device.stop)
    return Deployment(database_url, started, devices, await pair_up(devices))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def two(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[Deployment, Deployment, RedisServer]]:
    tmp_path = tmp_path_factory.mktemp("deployments")
    redis = RedisServer(tmp_path)
    redis.start()
    try:
        async with AsyncExitStack() as stack:
            ours = await _deployment(stack, redis, tmp_path, "x", 2)
            theirs = await _deployment(stack, redis, tmp_path, "y", 1)
            yield ours, theirs, redis
    finally:
        redis.stop()


def redis_cli(redis: RedisServer, *args: str) -> str:
    done = subprocess.run(
        ["redis-cli", "-p", str(redis.port), *args], capture_output=True, text=True, check=True
    )
    return done.stdout


async def test_deployments_sharing_redis_see_nothing_of_each_other(
    two: tuple[Deployment, Deployment, RedisServer],
) -> None:
    x, y, redis = two
    async with asyncio.timeout(90):
        # Same user ids, same internal user numbers (fresh databases): the old global
        # channel delivered x's messages into y's sockets.
        x_sent, y_sent = set(), set()
        for n in range(3):
            x_sent |= await x.send_round(f"x{n}-")
            y_sent |= await y.send_round(f"y{n}-")
        await x.until_delivered(x_sent)
        await y.until_delivered(y_sent)
        for device in x.devices:
            assert set(device.received) <= x_sent
        for device in y.devices:
            assert set(device.received) <= y_sent
        channels = redis_cli(redis, "PUBSUB", "CHANNELS", "*").split()
        assert sorted(channels) == sorted(
            {
                f"chinwag:{await x.deployment_id()}:doorbell",
                f"chinwag:{await y.deployment_id()}:doorbell",
            }
        )


async def test_forged_doorbells_deliver_nothing_and_close_nothing(
    two: tuple[Deployment, Deployment, RedisServer],
) -> None:
    _, y, redis = two
    async with asyncio.timeout(90):
        deployment = await y.deployment_id()
        channel = f"chinwag:{deployment}:doorbell"
        sessions = [r["id"] for r in await y.fetch("SELECT id FROM sessions")]
        pks = [r["pk"] for r in await y.fetch("SELECT pk FROM users")]
        head = {"v": 1, "d": deployment, "n": "forger"}
        fake_event = {"type": "message.created", "data": {"message": {"id": "forged"}}}
        for body in (
            {**head, "k": "r", "s": sessions},  # "these sessions ended": the store says no
            {**head, "k": "a", "t": [[pk, 10**9] for pk in pks]},  # a re-read, nothing found
            {**head, "k": "y"},
            {**head, "k": "e", "j": orjson.dumps(fake_event).decode(), "t": [[pks[0], 1]]},
            {"k": "e", "j": orjson.dumps(fake_event).decode(), "t": [[pk, 1] for pk in pks]},
            {**head, "k": "s", "u": pks, "c": "c", "i": "mallory", "s": "exploded"},
        ):
            assert int(redis_cli(redis, "PUBLISH", channel, orjson.dumps(body).decode())) == 1
        # Traffic after the forgeries still flows, each message once, and nobody was
        # signed out (4003 would make a device wipe itself).
        sent = await y.send_round("after-")
        await y.until_delivered(sent)
        await asyncio.sleep(1.0)  # room for a wrongful close or a late forged frame
        for device in y.devices:
            assert device.deauthenticated == []
            assert device.client.is_authenticated
            assert "forged" not in device.received
            assert all(n == 1 for n in device.received.values())
        await until(lambda: "refused" in y.nodes[0].log(), "the node to log refused doorbells")
