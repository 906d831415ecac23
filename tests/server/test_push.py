"""Push through the app's gateway, on SQLite and PostgreSQL: an offline device is woken
with a signed notification; a connected device and a signed-out device are not."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from chinwag.server.settings import Settings
from tests.server.test_webhooks import add_webhook, verified
from tests.support import (
    ADMIN,
    AppFixture,
    RawWebSocket,
    Receiver,
    RunningServer,
    eventually,
    hook_settings,
    login,
    send,
    start,
)

Headers = dict[str, str]


pytestmark = pytest.mark.usefixtures("platform_admin")


@pytest.fixture
def settings(database_url: str) -> Settings:
    return hook_settings(database_url)


async def put_gateway(
    client: httpx.AsyncClient, app_id: str, url: str, *, include_body: bool
) -> dict[str, Any]:
    answer = await client.put(
        f"/v1/platform/apps/{app_id}/push-gateway",
        json={"url": url, "include_body": include_body},
        headers=ADMIN,
    )
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


async def device(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, user: str, token: str
) -> tuple[Headers, str]:
    """A new session of ``user`` with push token ``token``: its headers and session token."""
    session = await login(client, app, user, server.clock.now())
    headers = {"Authorization": f"Bearer {session['session_token']}"}
    answer = await client.post(
        "/v1/push_tokens", json={"kind": "apns", "token": token}, headers=headers
    )
    assert answer.status_code == 204, answer.text
    return headers, str(session["session_token"])


def notes(secret: str, receiver: Receiver) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for request in receiver.answered:
        found += Webhook(secret).verify(request.body, request.headers)["notifications"]
    return found


def tokens(found: list[dict[str, Any]]) -> set[str]:
    return {d["token"] for n in found for d in n["devices"]}


async def test_only_offline_signed_in_devices_are_woken(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: Headers
) -> None:
    async with Receiver() as gateway:
        made = await put_gateway(client, app.app_id, gateway.url, include_body=True)
        online, online_token = await device(server, client, app, "bob", "tok-online")
        offline, _ = await device(server, client, app, "bob", "tok-offline")
        gone, _ = await device(server, client, app, "bob", "tok-gone")
        await device(server, client, app, "carol", "tok-carol")
        socket = await RawWebSocket.open(f"{server.ws_url}/v1/websocket", online_token)
        again = await client.post(
            "/v1/push_tokens", json={"kind": "apns", "token": "tok-online"}, headers=online
        )
        assert again.status_code == 204
        assert (await client.delete("/v1/sessions/current", headers=gone)).status_code == 204
        conv = await start(client, alice, "bob", "carol")
        await send(client, alice, conv, "first")
        await gateway.wait_for(lambda: tokens(notes(made["secret"], gateway)) >= {"tok-carol"})
        await gateway.wait_for(lambda: "tok-offline" in tokens(notes(made["secret"], gateway)))
        first = notes(made["secret"], gateway)
        assert (await client.delete("/v1/sessions/current", headers=offline)).status_code == 204
        await send(client, alice, conv, "second")
        await gateway.wait_for(lambda: len(notes(made["secret"], gateway)) > len(first))
        second = notes(made["secret"], gateway)[len(first) :]
        socket.writer.close()
    assert tokens(first) == {"tok-offline", "tok-carol"}
    bob_note = next(n for n in first if n["devices"][0]["token"] == "tok-offline")
    assert bob_note["conversation_id"] == conv
    assert bob_note["sender_id"] == "alice"
    assert bob_note["unread_count"] == 1
    assert bob_note["parts"] == [{"mime_type": "text/plain", "body": "first"}]
    assert tokens(second) == {"tok-carol"}
    assert second[0]["unread_count"] == 2


async def test_without_the_opt_in_notifications_carry_no_body(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: Headers
) -> None:
    async with Receiver() as gateway:
        made = await put_gateway(client, app.app_id, gateway.url, include_body=False)
        await device(server, client, app, "bob", "tok-bob")
        conv = await start(client, alice, "bob")
        await send(client, alice, conv, "secret plans")
        await gateway.wait_for(lambda: len(gateway.answered) >= 1)
    (note,) = notes(made["secret"], gateway)
    assert "parts" not in note
    assert b"secret plans" not in gateway.answered[0].body


async def test_the_gateway_secret_is_shown_once_and_urls_are_checked(
    client: httpx.AsyncClient, app: AppFixture
) -> None:
    path = f"/v1/platform/apps/{app.app_id}/push-gateway"
    assert (await client.get(path, headers=ADMIN)).status_code == 404
    made = await put_gateway(client, app.app_id, "https://push.example.com/", include_body=False)
    assert made["secret"].startswith("whsec_")
    changed = await put_gateway(
        client, app.app_id, "https://push.example.com/v2", include_body=True
    )
    assert changed["secret"] is None
    assert "secret" not in (await client.get(path, headers=ADMIN)).json()
    for url in ("http://push.example.com/", "https://10.0.0.1/", "https://[fd00::1]/"):
        bad = await client.put(path, json={"url": url}, headers=ADMIN)
        assert bad.status_code == 422
        assert bad.json()["error"]["data"]["property"] == "url"


async def test_a_push_token_needs_a_session_and_a_sane_kind(
    client: httpx.AsyncClient, alice: Headers
) -> None:
    body = {"kind": "apns", "token": "t"}
    assert (await client.post("/v1/push_tokens", json=body)).status_code == 401
    assert (await client.post("/v1/push_tokens", json=body, headers=ADMIN)).status_code == 401
    bad = await client.post(
        "/v1/push_tokens", json={"kind": "Bad Kind!", "token": "t"}, headers=alice
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["data"]["property"] == "kind"
    assert (await client.delete("/v1/push_tokens", headers=alice)).status_code == 204


async def test_a_gateway_that_was_down_gets_the_notification_later(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: Headers
) -> None:
    async with Receiver() as gateway:
        gateway.status = 503
        made = await put_gateway(client, app.app_id, gateway.url, include_body=False)
        await device(server, client, app, "bob", "tok-bob")
        conv = await start(client, alice, "bob")
        await send(client, alice, conv, "one")
        await send(client, alice, conv, "two")
        await gateway.wait_for(lambda: len(gateway.requests) >= 1)
        gateway.status = 200
        first_failure = len(gateway.requests)
        server.clock.advance(13)
        await gateway.wait_for(lambda: len(gateway.answered) >= 1)
    found = notes(made["secret"], gateway)
    assert first_failure >= 1
    assert tokens(found) == {"tok-bob"}
    assert max(n["unread_count"] for n in found) == 2


async def test_a_gateway_that_keeps_failing_is_disabled_with_the_reason(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: Headers
) -> None:
    async with Receiver() as gateway:
        gateway.status = 500
        await put_gateway(client, app.app_id, gateway.url, include_body=False)
        await device(server, client, app, "bob", "tok-bob")
        await send(client, alice, await start(client, alice, "bob"), "hello")
        path = f"/v1/platform/apps/{app.app_id}/push-gateway"
        for tries in (1, 2, 3):
            await gateway.wait_for(lambda n=tries: len(gateway.requests) >= n)
            server.clock.advance(13)

        async def disabled() -> bool:
            return (await client.get(path, headers=ADMIN)).json()["enabled"] is False

        await eventually(disabled)
        found = (await client.get(path, headers=ADMIN)).json()
    assert found["disabled_reason"] == "disabled after 3 failed attempts; last: answered 500"


async def test_one_message_reaches_both_a_webhook_and_the_push_gateway(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: Headers
) -> None:
    """On PostgreSQL the two outbox writes of a send are one statement (storage/outbox.py):
    each part must still write its rows when the other has some too."""
    async with Receiver() as gateway, Receiver() as hooks:
        made = await put_gateway(client, app.app_id, gateway.url, include_body=False)
        hook = await add_webhook(client, app.app_id, hooks.url, ["message.created"])
        await device(server, client, app, "bob", "tok-bob")
        conv = await start(client, alice, "bob")
        await send(client, alice, conv, "both")
        await gateway.wait_for(lambda: "tok-bob" in tokens(notes(made["secret"], gateway)))
        await hooks.wait_for(lambda: len(hooks.answered) >= 1)
    (payload,) = verified(hook["secret"], hooks)
    assert payload["type"] == "message.created"
    assert payload["data"]["message"]["parts"][0]["body"] == "both"
    assert [n["conversation_id"] for n in notes(made["secret"], gateway)] == [conv]
