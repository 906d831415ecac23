"""The delivery workers are woken by the commits that wrote rows for them, and only by
those: an app without webhooks or a push gateway costs them no pass per message."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from chinwag.server.settings import Settings
from chinwag.server.webhooks.runner import Delivery
from tests.server.test_webhooks import add_webhook, verified
from tests.support import AppFixture, Receiver, RunningServer, hook_settings, send, start

Headers = dict[str, str]

pytestmark = pytest.mark.usefixtures("platform_admin")


@pytest.fixture
def settings(database_url: str) -> Settings:
    # Polling alone would take a minute: anything sooner came from a wake.
    return hook_settings(database_url, webhook_poll_interval=60)


def _delivery(server: RunningServer) -> Delivery:
    delivery: Delivery = server.app.state.delivery
    return delivery


async def test_messages_of_an_app_without_webhooks_wake_no_worker(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: Headers
) -> None:
    delivery = _delivery(server)
    conv = await start(client, alice, "bob")
    before = (delivery.webhooks.passes, delivery.push.passes)
    for n in range(20):
        await send(client, alice, conv, f"m{n}")
    assert (delivery.webhooks.passes, delivery.push.passes) == before


async def test_a_message_for_a_webhook_wakes_the_worker_at_once(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: Headers
) -> None:
    async with Receiver() as receiver:
        hook = await add_webhook(client, app.app_id, receiver.url, ["message.created"])
        conv = await start(client, alice, "bob")
        await send(client, alice, conv, "now")
        await receiver.wait_for(lambda: len(receiver.answered) >= 1, timeout=10)
    payloads: list[dict[str, Any]] = verified(hook["secret"], receiver)
    assert [p["data"]["message"]["parts"][0]["body"] for p in payloads] == ["now"]
