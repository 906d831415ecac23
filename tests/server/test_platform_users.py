"""Users and sessions over the platform API: identities, session lists, ending sessions
(with wipe), suspension of users and apps. Sockets of ended sessions close at once: with
the store's revocation sweep put off for an hour, only the ending's own doorbell can close
them (a bound on seconds told the two apart only on a quiet machine)."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from chinwag.server.settings import Settings
from tests.server.test_websocket import Device, open_device, sign_in
from tests.support import (
    AppFixture,
    RunningServer,
    login,
    make_app,
    platform_key,
    postgres_database,
    run_server,
)

CLOSE_ENDED = 4003


async def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


NO_SWEEP = 3600.0
"""``revocation_sweep_seconds`` for these servers: the sweep never runs during a test."""


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url, auth_rate_per_second=0, revocation_sweep_seconds=NO_SWEEP
    )


async def _closes_at_once(device: Device) -> tuple[int | None, str | None]:
    return await device.closed(timeout=10)


async def test_read_and_update_an_identity_with_a_slash_in_its_id(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    mine = await platform_key(server.services, "app", app.app_id)
    carol = await sign_in(client, app, "team/carol", server.clock.now())
    url = f"/v1/platform/apps/{app.app_id}/users/team/carol"
    user = await _ok(await client.get(url, headers=mine))
    assert user["user_id"] == "team/carol"
    assert user["suspended_at"] is None
    changed = await _ok(
        await client.patch(url, json={"display_name": "Carol", "email": None}, headers=mine)
    )
    assert changed["display_name"] == "Carol"
    me = await _ok(await client.get("/v1/me", headers=carol.headers))
    assert me["user"]["display_name"] == "Carol"
    missing = await client.get(f"/v1/platform/apps/{app.app_id}/users/nobody", headers=mine)
    assert missing.status_code == 404
    assert missing.json()["error"]["id"] == "not_found"


async def _session_with_label(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, label: str
) -> dict[str, Any]:
    nonce = (await client.post("/v1/nonces", json={"app_id": app.app_id})).json()["nonce"]
    token = app.token({"sub": "alice", "nce": nonce, "iat": int(server.clock.now())})
    body = {"app_id": app.app_id, "identity_token": token, "device_label": label}
    result: dict[str, Any] = await _ok(await client.post("/v1/sessions", json=body), 201)
    return result


async def test_session_list_shows_device_address_and_last_seen(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    mine = await platform_key(server.services, "app", app.app_id)
    opened = server.clock.now()
    phone = await login(client, app, "alice", opened)
    tablet = await _session_with_label(server, client, app, "Alice's tablet")
    server.clock.advance(30)
    auth = {"Authorization": f"Bearer {phone['session_token']}"}
    await _ok(await client.get("/v1/me", headers=auth))  # within the minute: not written
    server.clock.advance(90)
    await _ok(await client.get("/v1/me", headers=auth))
    url = f"/v1/platform/apps/{app.app_id}/sessions"
    listed = await _ok(await client.get(url, params={"user_id": "alice"}, headers=mine))
    seen = {s["session_id"]: s for s in listed["sessions"]}
    assert seen.keys() == {phone["session_id"], tablet["session_id"]}
    assert seen[phone["session_id"]]["last_seen_at"] == server.clock.now()
    assert seen[phone["session_id"]]["device_label"] is None
    assert seen[tablet["session_id"]] == {
        "session_id": tablet["session_id"],
        "device_label": "Alice's tablet",
        "address": "127.0.0.1",
        "created_at": opened,
        "last_seen_at": opened,
        "expires_at": tablet["expires_at"],
    }


async def test_ending_one_session_with_wipe_closes_its_socket_at_once(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    mine = await platform_key(server.services, "app", app.app_id)
    phone = await sign_in(client, app, "alice", server.clock.now())
    laptop = await sign_in(client, app, "alice", server.clock.now())
    device = await open_device(server, phone.token)
    await device.until_caught_up()
    ended = await _ok(
        await client.post(
            f"/v1/platform/apps/{app.app_id}/sessions/end",
            json={"session_id": phone.body["session_id"], "wipe": True},
            headers=mine,
        )
    )
    assert ended == {"ended_session_ids": [phone.body["session_id"]], "wipe": True}
    assert await _closes_at_once(device) == (CLOSE_ENDED, "session_wiped")
    refused = await client.get("/v1/me", headers=phone.headers)
    assert refused.status_code == 401
    assert refused.json()["error"]["data"]["wipe"] is True
    assert (await client.get("/v1/me", headers=laptop.headers)).status_code == 200


async def test_end_all_of_a_users_sessions_or_the_apps_issued_before_a_time(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    mine = await platform_key(server.services, "app", app.app_id)
    url = f"/v1/platform/apps/{app.app_id}/sessions/end"
    alice = [await sign_in(client, app, "alice", server.clock.now()) for _ in range(2)]
    bob_old = await sign_in(client, app, "bob", server.clock.now())
    server.clock.advance(10)
    bob_new = await sign_in(client, app, "bob", server.clock.now())
    by_user = await _ok(await client.post(url, json={"user_id": "alice"}, headers=mine))
    assert sorted(by_user["ended_session_ids"]) == sorted(s.body["session_id"] for s in alice)
    before = await _ok(
        await client.post(url, json={"issued_before": server.clock.now() - 5}, headers=mine)
    )
    assert before["ended_session_ids"] == [bob_old.body["session_id"]]
    assert (await client.get("/v1/me", headers=bob_new.headers)).status_code == 200
    for body in ({}, {"user_id": "bob", "session_id": "x"}):
        bad = await client.post(url, json=body, headers=mine)
        assert bad.status_code == 422
        assert bad.json()["error"]["id"] == "invalid_request"


async def test_a_session_of_another_app_is_not_found(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    other = await make_app(server.services)
    theirs = await sign_in(client, other, "eve", server.clock.now())
    mine = await platform_key(server.services, "app", app.app_id)
    answer = await client.post(
        f"/v1/platform/apps/{app.app_id}/sessions/end",
        json={"session_id": theirs.body["session_id"]},
        headers=mine,
    )
    assert answer.status_code == 404
    assert answer.json()["error"]["id"] == "not_found"
    assert (await client.get("/v1/me", headers=theirs.headers)).status_code == 200


async def _sign_in_status(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, user_id: str
) -> httpx.Response:
    nonce = (await client.post("/v1/nonces", json={"app_id": app.app_id})).json()["nonce"]
    token = app.token({"sub": user_id, "nce": nonce, "iat": int(server.clock.now())})
    return await client.post("/v1/sessions", json={"app_id": app.app_id, "identity_token": token})


async def test_a_suspended_user_cannot_sign_in_and_their_live_socket_closes(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    mine = await platform_key(server.services, "app", app.app_id)
    alice = await sign_in(client, app, "alice", server.clock.now())
    device = await open_device(server, alice.token)
    await device.until_caught_up()
    url = f"/v1/platform/apps/{app.app_id}/users"
    user = await _ok(await client.post(f"{url}/suspend", json={"user_id": "alice"}, headers=mine))
    assert user["suspended_at"] == server.clock.now()
    assert (await _closes_at_once(device))[0] == CLOSE_ENDED
    refused = await _sign_in_status(server, client, app, "alice")
    assert refused.status_code == 403
    assert refused.json()["error"]["id"] == "user_suspended"
    old = await client.get("/v1/me", headers=alice.headers)
    assert old.status_code == 403
    assert old.json()["error"]["id"] == "user_suspended"
    assert (await _sign_in_status(server, client, app, "bob")).status_code == 201
    await _ok(await client.post(f"{url}/unsuspend", json={"user_id": "alice"}, headers=mine))
    assert (await _sign_in_status(server, client, app, "alice")).status_code == 201
    assert (await client.get("/v1/me", headers=alice.headers)).status_code == 401


async def test_a_suspended_app_refuses_sign_ins_and_ends_its_sessions(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    admin = await platform_key(server.services)
    alice = await sign_in(client, app, "alice", server.clock.now())
    device = await open_device(server, alice.token)
    await device.until_caught_up()
    url = f"/v1/platform/apps/{app.app_id}"
    made = await _ok(await client.post(f"{url}/suspend", headers=admin))
    assert made["suspended_at"] == server.clock.now()
    assert (await _closes_at_once(device))[0] == CLOSE_ENDED
    refused = await _sign_in_status(server, client, app, "bob")
    assert refused.status_code == 403
    assert refused.json()["error"]["id"] == "app_suspended"
    old = await client.get("/v1/me", headers=alice.headers)
    assert old.status_code == 403
    assert old.json()["error"]["id"] == "app_suspended"
    async with connect(f"{server.ws_url}/v1/websocket", additional_headers=alice.headers) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == CLOSE_ENDED
    await _ok(await client.post(f"{url}/unsuspend", headers=admin))
    assert (await _sign_in_status(server, client, app, "bob")).status_code == 201


async def test_sockets_on_another_node_close_by_the_doorbell_not_the_sweep() -> None:
    """Two nodes sharing PostgreSQL and Redis: the platform call lands on node A, the
    user's sockets live on node B; the doorbell closes them, not B's periodic sweep."""
    async with postgres_database() as database_url:
        settings = Settings(
            database_url=database_url,
            broker_url="redis://127.0.0.1:6379/0",
            broker_prefix=f"chinwag_test_{secrets.token_hex(6)}",
            auth_rate_per_second=0,
            revocation_sweep_seconds=NO_SWEEP,
        )
        async with run_server(settings) as node_a, run_server(settings) as node_b:
            app = await make_app(node_a.services)
            admin = await platform_key(node_a.services)
            async with (
                httpx.AsyncClient(base_url=node_a.url) as client_a,
                httpx.AsyncClient(base_url=node_b.url) as client_b,
            ):
                phones = [await sign_in(client_b, app, "alice", node_b.clock.now()) for _ in "ab"]
                devices = [await open_device(node_b, phone.token) for phone in phones]
                for device in devices:
                    await device.until_caught_up()
                ended = await client_a.post(
                    f"/v1/platform/apps/{app.app_id}/sessions/end",
                    json={"user_id": "alice", "wipe": True},
                    headers=admin,
                )
                assert ended.status_code == 200, ended.text
                closes = await asyncio.gather(*(d.closed(timeout=10) for d in devices))
    assert closes == [(CLOSE_ENDED, "session_wiped")] * 2


async def test_control_characters_in_bodies_are_clean_client_errors(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: dict[str, str]
) -> None:
    """PostgreSQL refuses NUL in text: every such input must be refused before SQL."""
    admin = await platform_key(server.services)
    base = f"/v1/platform/apps/{app.app_id}"
    answers = {
        "patch user": await client.patch(
            f"{base}/users/alice", json={"display_name": "a\u0000b"}, headers=admin
        ),
        "suspend": await client.post(
            f"{base}/users/suspend", json={"user_id": "a\u0000"}, headers=admin
        ),
        "end by user": await client.post(
            f"{base}/sessions/end", json={"user_id": "a\u0000"}, headers=admin
        ),
        "end by id": await client.post(
            f"{base}/sessions/end", json={"session_id": "\u0000"}, headers=admin
        ),
        "create app": await client.post(
            "/v1/platform/apps", json={"name": "a\u0000b"}, headers=admin
        ),
        "create key": await client.post(
            f"{base}/keys", json={"public_key": "x", "kid": "k\u0000"}, headers=admin
        ),
    }
    statuses = {name: answer.status_code for name, answer in answers.items()}
    assert statuses == {
        "patch user": 422,
        "suspend": 404,
        "end by user": 404,
        "end by id": 404,
        "create app": 422,
        "create key": 422,
    }


async def test_a_connected_device_counts_as_seen_without_http_requests(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    """The sweep marks sessions with a live socket as seen (once a minute), so a device
    chatting only over its WebSocket does not look idle in the session list."""
    from chinwag.server.handlers.session_activity import touch_connected

    mine = await platform_key(server.services, "app", app.app_id)
    connected = await sign_in(client, app, "alice", server.clock.now())
    idle = await sign_in(client, app, "alice", server.clock.now())
    device = await open_device(server, connected.token)
    await device.until_caught_up()
    opened = server.clock.now()
    server.clock.advance(300)
    await touch_connected(server.services)
    url = f"/v1/platform/apps/{app.app_id}/sessions"
    listed = await _ok(await client.get(url, params={"user_id": "alice"}, headers=mine))
    seen = {s["session_id"]: s["last_seen_at"] for s in listed["sessions"]}
    assert seen == {
        connected.body["session_id"]: server.clock.now(),
        idle.body["session_id"]: opened,
    }
    await device.ws.close()
