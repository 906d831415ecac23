"""Two ``chinwag serve`` nodes on one fresh PostgreSQL database and the test's own Redis,
20 SDK devices spread over them through proxies, and the checks every fault test ends with:
every acknowledged message stored once and delivered to every participant device once."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chinwag.server.context import open_services
from chinwag.server.settings import Settings
from tests.faults.harness import Device, Node, Proxy, acknowledged, received, until
from tests.redis_server import RedisServer
from tests.support import AppFixture, make_app, pg_connect, postgres_database

PAIRS = 10
"""Conversations of two: user i on node A, user i + PAIRS on node B (20 devices)."""


@dataclass
class Cluster:
    database_url: str
    redis: RedisServer
    nodes: list[Node]
    proxies: list[Proxy]
    app: AppFixture
    devices: list[Device]
    conversations: list[str]
    """``conversations[i]``: devices i and i + PAIRS."""

    def partner(self, index: int) -> Device:
        return self.devices[(index + PAIRS) % (2 * PAIRS)]

    async def storm(self, per_device: int, pause: float = 0.05) -> list[list[str]]:
        """Every device sends ``per_device`` messages to its partner, paced by ``pause``;
        the ids each queued (queued is not yet acknowledged)."""

        async def one(index: int) -> list[str]:
            device, sent = self.devices[index], []
            for n in range(per_device):
                conversation = self.conversations[index % PAIRS]
                message = await device.client.send_message(conversation, f"{index}:{n}")
                sent.append(message.id)
                await asyncio.sleep(pause * random.uniform(0.5, 1.5))
            return sent

        return list(await asyncio.gather(*(one(i) for i in range(2 * PAIRS))))

    async def assert_delivered_once(self, sent: list[list[str]], timeout: float = 45) -> None:
        """Each message acknowledged, stored once, and applied once on both devices."""
        every = {m for ids in sent for m in ids}
        for index, ids in enumerate(sent):
            device, partner = self.devices[index], self.partner(index)
            await until(acknowledged(device, ids), "acks", timeout)
            await until(
                received(partner, ids),
                f"delivery of device {index}'s messages to its partner",
                timeout,
            )
        for device in self.devices:
            doubled = {m: n for m, n in device.received.items() if n > 1}
            assert not doubled, f"{device.user_id} applied messages twice: {doubled}"
        stored = await self.stored_counts()
        assert {m: stored.get(m, 0) for m in every} == dict.fromkeys(every, 1)
        for index in range(PAIRS):
            local = await self.devices[index].client.messages(self.conversations[index])
            ids = [m.id for m in local]
            assert len(ids) == len(set(ids))

    async def stored_counts(self) -> dict[str, int]:
        conn = await pg_connect(self.database_url)
        try:
            rows = await conn.fetch("SELECT public_id, count(*) AS n FROM messages GROUP BY 1")
        finally:
            await conn.close()
        return {r["public_id"]: r["n"] for r in rows}


async def make_app_in(database_url: str) -> AppFixture:
    async with open_services(Settings(database_url=database_url)) as services:
        return await make_app(services)


async def start_nodes(nodes: list[Node]) -> None:
    for node in nodes:
        node.launch()
    await asyncio.gather(*(node.wait_healthy() for node in nodes))


async def start_devices(
    urls: list[str], app: AppFixture, workdir: Path, count: int, prefix: str = "u"
) -> list[Device]:
    """``count`` devices, the first half through ``urls[0]``, the rest through the last."""
    devices = [
        Device.create(urls[0 if i < count // 2 else -1], app, f"{prefix}{i}", workdir / f"d{i}")
        for i in range(count)
    ]
    await asyncio.wait_for(asyncio.gather(*(d.start() for d in devices)), 60)
    return devices


async def pair_up(devices: list[Device]) -> list[str]:
    """A conversation for device i and device i + half each (created by the first)."""
    half = len(devices) // 2
    made = [
        await devices[i].client.create_conversation(
            [devices[i].user_id, devices[i + half].user_id], distinct=True
        )
        for i in range(half)
    ]
    return [c.id for c in made]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    redis = RedisServer(tmp_path)
    redis.start()
    nodes: list[Node] = []
    proxies: list[Proxy] = []
    devices: list[Device] = []
    try:
        async with postgres_database() as database_url:
            app = await make_app_in(database_url)
            nodes = [Node(n, database_url, redis.url, tmp_path) for n in "ab"]
            await start_nodes(nodes)
            proxies = [Proxy(node.port) for node in nodes]
            for proxy in proxies:
                await proxy.start()
            urls = [p.url for p in proxies]
            devices = await start_devices(urls, app, tmp_path, 2 * PAIRS)
            conversations = await pair_up(devices)
            yield Cluster(database_url, redis, nodes, proxies, app, devices, conversations)
            for device in devices:
                await device.stop()
            devices = []
            for node in nodes:
                node.stop()
    finally:
        for device in devices:
            await device.stop()
        for proxy in proxies:
            await proxy.close()
        for node in nodes:
            node.stop()
        redis.stop()
