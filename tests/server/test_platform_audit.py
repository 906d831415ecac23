"""The audit log: every platform action, with caller, target, time and address; never a
secret or a token; read with an admin key, per app, since a time, a page at a time."""

from __future__ import annotations

import httpx
import pytest

from chinwag.server.settings import Settings
from tests.support import (
    AppFixture,
    Receiver,
    RunningServer,
    bearer,
    hook_settings,
    platform_key,
    start,
)


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Loopback receivers are allowed, for the webhook and push gateway entries."""
    return hook_settings(database_url)


async def _entries(
    client: httpx.AsyncClient, admin: dict[str, str], **params: str | int | float
) -> list[dict[str, object]]:
    answer = await client.get("/v1/platform/audit", params=params, headers=admin)
    assert answer.status_code == 200, answer.text
    entries: list[dict[str, object]] = answer.json()["entries"]
    return entries


async def test_actions_are_recorded_with_caller_target_and_address(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    admin = await platform_key(server.services)
    mine = await platform_key(server.services, "app", app.app_id)
    key_id = mine["Authorization"].split("_")[1]
    url = f"/v1/platform/apps/{app.app_id}"
    await client.patch(url, json={"session_lifetime": 600}, headers=mine)
    await client.post(f"{url}/keys/{app.kid}/disable", headers=mine)
    [disabled, updated] = await _entries(client, admin, app_id=app.app_id)
    assert updated["action"] == "app.update"
    assert updated["caller"] == f"api_key:{key_id}"
    assert updated["target"] == f"apps/{app.app_id}"
    assert updated["address"] == "127.0.0.1"
    assert updated["at"] == server.clock.now()
    assert updated["data"] == {"session_lifetime": 600}
    assert disabled["action"] == "key.disable"
    assert disabled["target"] == f"apps/{app.app_id}/keys/{app.kid}"


async def test_no_secret_or_token_reaches_the_log(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    admin = await platform_key(server.services)
    keys = f"/v1/platform/apps/{app.app_id}/keys"
    made = (
        await client.post(f"{keys}/generate", json={"kind": "hmac_secret"}, headers=admin)
    ).json()
    pair = (await client.post(f"{keys}/generate", json={}, headers=admin)).json()
    shown = await client.get(f"{keys}/{made['kid']}/secret", headers=admin)
    assert shown.status_code == 200
    created = (await client.post("/v1/platform/apps", json={"name": "n"}, headers=admin)).json()
    entries = await _entries(client, admin)
    assert [e["action"] for e in entries][:4] == [
        "app.create",
        "key.secret_read",
        "key.generate.key_pair",
        "key.generate.hmac_secret",
    ]
    text = str(entries)
    assert made["secret"] not in text
    assert pair["private_key_pem"] not in text
    assert created["development_key"]["private_key_pem"] not in text
    assert admin["Authorization"].removeprefix("Bearer ") not in text


async def test_filter_by_app_and_time_and_page_through(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    admin = await platform_key(server.services)
    url = f"/v1/platform/apps/{app.app_id}"
    for lifetime in (600, 700, 800):
        await client.patch(url, json={"session_lifetime": lifetime}, headers=admin)
        server.clock.advance(10)
    await client.post("/v1/platform/apps", json={"name": "elsewhere"}, headers=admin)
    mine = await _entries(client, admin, app_id=app.app_id)
    assert [e["data"] for e in mine] == [{"session_lifetime": n} for n in (800, 700, 600)]
    recent = await _entries(client, admin, app_id=app.app_id, since=server.clock.now() - 15)
    assert [e["data"] for e in recent] == [{"session_lifetime": 800}]
    page = (await client.get("/v1/platform/audit", params={"limit": 2}, headers=admin)).json()
    assert len(page["entries"]) == 2
    rest = await _entries(client, admin, before=page["next_before"], limit=2)
    assert [e["id"] for e in rest] == [page["next_before"] - 1, page["next_before"] - 2]


async def test_webhook_and_push_gateway_changes_are_filed_under_their_app(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    """With an admin key the caller names no app: the entry must take it from the target,
    as key and agent changes do, or ``?app_id=`` hides who changed where events go."""
    admin = await platform_key(server.services)
    url = f"/v1/platform/apps/{app.app_id}"
    alice = await bearer(client, app, "alice", server.clock.now())
    async with Receiver() as receiver:
        body = {"url": receiver.url, "event_types": ["conversation.created"]}
        made = await client.post(f"{url}/webhooks", json=body, headers=admin)
        assert made.status_code == 201, made.text
        hook = f"{url}/webhooks/{made.json()['id']}"
        await start(client, alice)
        await receiver.wait_for(lambda: receiver.answered)
        sent = await client.get(f"{hook}/deliveries", headers=admin)
        [delivery] = sent.json()["deliveries"]
        assert (await client.patch(hook, json={"description": "d"}, headers=admin)).is_success
        assert (await client.post(f"{hook}/rotate-secret", headers=admin)).is_success
        replay = f"{hook}/deliveries/{delivery['id']}/replay"
        assert (await client.post(replay, headers=admin)).is_success
        assert (await client.delete(hook, headers=admin)).is_success
        gateway = {"url": receiver.url, "include_body": False, "enabled": True}
        assert (await client.put(f"{url}/push-gateway", json=gateway, headers=admin)).is_success
        assert (await client.post(f"{url}/push-gateway/rotate-secret", headers=admin)).is_success
        assert (await client.delete(f"{url}/push-gateway", headers=admin)).is_success
    entries = await _entries(client, admin, app_id=app.app_id)
    assert [e["action"] for e in entries][::-1] == [
        "webhook.create",
        "webhook.update",
        "webhook.rotate_secret",
        "webhook.replay",
        "webhook.delete",
        "push_gateway.put",
        "push_gateway.rotate_secret",
        "push_gateway.delete",
    ]
    assert all(str(e["target"]).startswith(f"apps/{app.app_id}/") for e in entries)
