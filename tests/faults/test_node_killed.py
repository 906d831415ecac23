"""``kill -9`` of one node during a send storm: its devices reconnect to the other node."""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.conftest import PAIRS, Cluster
from tests.faults.harness import until

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


async def test_a_node_killed_mid_storm_loses_and_doubles_nothing(cluster: Cluster) -> None:
    node_a, node_b = cluster.nodes
    async with asyncio.timeout(90):
        storm = asyncio.create_task(cluster.storm(per_device=15))
        # Kill once the storm is well under way: a share acknowledged, most still to come.
        await until(lambda: sum(len(d.acknowledged) for d in cluster.devices) >= 60, "storm")
        node_a.kill()
        cluster.proxies[0].retarget(node_b.port)  # the load balancer notices
        sent = await storm
        await cluster.assert_delivered_once(sent)
    assert sum(len(ids) for ids in sent) == 2 * PAIRS * 15
