"""The test's Redis stopped for 10 s and restarted during traffic: the nodes keep serving
from the store (deaf nodes poll), catch up when it returns, and nothing is lost or doubled."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.faults.conftest import (
    PAIRS,
    Cluster,
    make_app_in,
    pair_up,
    start_devices,
    start_nodes,
)
from tests.faults.harness import Node, received, until
from tests.redis_server import RedisServer
from tests.support import postgres_database

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

OUTAGE = 10.0


async def test_redis_down_for_ten_seconds_during_traffic(cluster: Cluster) -> None:
    async with asyncio.timeout(90):
        sent = await cluster.storm(per_device=3)
        cluster.redis.stop()
        stopped = time.monotonic()
        during = await cluster.storm(per_device=3)
        # Delivered across nodes while Redis is still down: the nodes poll the store.
        for index, ids in enumerate(during):
            partner = cluster.partner(index)
            await until(
                received(partner, ids),
                "delivery while Redis is down",
                timeout=OUTAGE - 1,
            )
        assert time.monotonic() - stopped < OUTAGE
        await asyncio.sleep(OUTAGE - (time.monotonic() - stopped))
        cluster.redis.start()
        after = await cluster.storm(per_device=3)
        await cluster.assert_delivered_once(
            [a + b + c for a, b, c in zip(sent, during, after, strict=True)]
        )
        for node in cluster.nodes:

            def resubscribed(n: Node = node) -> bool:
                return "subscription restored" in n.log()

            await until(resubscribed, "resubscription")
            broker = [line for line in node.log().splitlines() if ".broker." in line]
            # one warning per outage
            assert sum("subscription lost" in line for line in broker) <= 1, "\n".join(broker)
        assert len(cluster.devices) == 2 * PAIRS


async def test_a_node_starts_and_serves_while_redis_is_down(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path)  # its port is free: nothing listens until started
    async with postgres_database() as database_url:
        app = await make_app_in(database_url)
        node = Node("deaf", database_url, redis.url, tmp_path)
        try:
            await start_nodes([node])
            devices = await start_devices([node.url], app, tmp_path, 2)
            try:
                async with asyncio.timeout(60):
                    (conversation,) = await pair_up(devices)
                    message = await devices[0].client.send_message(conversation, "no redis")
                    await until(lambda: devices[1].received[message.id] == 1, "delivery")
                    assert node.log().count("Redis unreachable") == 1
                    redis.start()
                    await until(lambda: "subscription restored" in node.log(), "subscribing")
                    message = await devices[1].client.send_message(conversation, "redis")
                    await until(lambda: devices[0].received[message.id] == 1, "delivery")
            finally:
                for device in devices:
                    await device.stop()
        finally:
            node.stop()
            redis.stop()
