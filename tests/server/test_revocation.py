"""Server-side revocation reaches REST at once and live sockets within seconds."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from chinwag.core.errors import AppNotFound, NotFound
from chinwag.server.context import open_services
from chinwag.server.handlers.sessions import revoke_user_sessions, revoked_among
from chinwag.server.settings import Settings
from chinwag.server.storage import messages as message_store
from chinwag.server.storage.sessions import Revocation
from tests.server.test_websocket import Device, create_conversation, open_device, sign_in
from tests.support import RunningServer, make_app

CLOSE_REVOKED = 4003


async def test_revocation_by_another_process_closes_every_socket_of_the_user(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app = await make_app(server.services)
    now = server.clock.now()
    phone, laptop = (
        await sign_in(client, app, "alice", now),
        await sign_in(client, app, "alice", now),
    )
    bob = await sign_in(client, app, "bob", now)
    devices = [await open_device(server, s.token) for s in (phone, laptop)]
    bobs = await open_device(server, bob.token)

    # Like `chinwag sessions revoke`: its own Services on the same database, no shared broker.
    async with open_services(Settings(database_url=server.settings.database_url)) as admin:
        ended = await revoke_user_sessions(admin, app.app_id, "alice")
    assert sorted(ended) == sorted([phone.body["session_id"], laptop.body["session_id"]])

    for signed_in in (phone, laptop):
        me = await client.get("/v1/me", headers=signed_in.headers)
        assert me.status_code == 401
        assert me.json()["error"]["id"] == "authentication_required"
    for device in devices:
        code, reason = await device.closed(timeout=10)
        assert code == CLOSE_REVOKED, (code, reason)
        revoked = {e["data"]["session_id"] for e in device.events if e["type"] == "session.revoked"}
        assert revoked == set(ended)
    assert (await client.get("/v1/me", headers=bob.headers)).status_code == 200
    pong = await bobs.request("ping", {})
    assert pong["ok"]
    await bobs.ws.close()


async def test_revocation_in_the_server_process_closes_sockets_through_the_doorbell(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app = await make_app(server.services)
    alice = await sign_in(client, app, "alice", server.clock.now())
    device = await open_device(server, alice.token)
    assert await revoke_user_sessions(server.services, app.app_id, "alice") == [
        alice.body["session_id"]
    ]
    code, _ = await device.closed(timeout=5)
    assert code == CLOSE_REVOKED
    assert await revoke_user_sessions(server.services, app.app_id, "alice") == []


async def test_revoking_an_unknown_user_or_app_is_not_found(server: RunningServer) -> None:
    app = await make_app(server.services)
    with pytest.raises(NotFound):
        await revoke_user_sessions(server.services, app.app_id, "nobody")
    with pytest.raises(AppNotFound):
        await revoke_user_sessions(server.services, "00000000-0000-4000-8000-000000000000", "x")


async def test_purging_spent_nonces_never_makes_a_nonce_usable_again(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    from sqlalchemy import func, select

    from chinwag.server.handlers.sessions import purge_spent_records
    from chinwag.server.storage.schema import consumed_nonces
    from tests.support import get_nonce

    app = await make_app(server.services)
    nonce = await get_nonce(client, app.app_id)
    token = app.token({"sub": "alice", "nce": nonce, "iat": int(server.clock.now())})
    body = {"app_id": app.app_id, "identity_token": token}
    assert (await client.post("/v1/sessions", json=body)).status_code == 201

    async def spent() -> int:
        async with server.services.db.read() as conn:
            return int(
                (await conn.execute(select(func.count()).select_from(consumed_nonces))).scalar_one()
            )

    await purge_spent_records(server.services)
    assert await spent() == 1  # not expired yet: kept
    server.clock.advance(601)
    await purge_spent_records(server.services)
    assert await spent() == 0
    again = await client.post("/v1/sessions", json=body)
    assert again.status_code == 401
    assert again.json()["error"]["data"]["reason"] == "nonce_expired"


async def test_wiped_revocation_closes_with_session_wiped_and_says_wipe_in_the_stream(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app = await make_app(server.services)
    alice = await sign_in(client, app, "alice", server.clock.now())
    device = await open_device(server, alice.token)
    ended = await revoke_user_sessions(server.services, app.app_id, "alice", wipe=True)
    assert ended == [alice.body["session_id"]]
    code, reason = await device.closed(timeout=5)
    assert (code, reason) == (CLOSE_REVOKED, "session_wiped")
    [event] = [e for e in device.events if e["type"] == "session.revoked"]
    assert event["data"] == {"session_id": ended[0], "reason": "revoked", "wipe": True}


async def test_wiped_revocation_by_another_process_reaches_sockets_through_the_sweep(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app = await make_app(server.services)
    alice = await sign_in(client, app, "alice", server.clock.now())
    device = await open_device(server, alice.token)
    async with open_services(Settings(database_url=server.settings.database_url)) as admin:
        await revoke_user_sessions(admin, app.app_id, "alice", wipe=True)
    code, reason = await device.closed(timeout=10)
    assert (code, reason) == (CLOSE_REVOKED, "session_wiped")


async def test_wipe_is_stored_with_the_session_and_only_when_asked(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app = await make_app(server.services)
    now = server.clock.now()
    kept, wiped = await sign_in(client, app, "bob", now), await sign_in(client, app, "carol", now)
    await revoke_user_sessions(server.services, app.app_id, "bob")
    await revoke_user_sessions(server.services, app.app_id, "carol", wipe=True)
    ids = [kept.body["session_id"], wiped.body["session_id"]]
    assert await revoked_among(server.services, ids) == {
        ids[0]: Revocation("revoked", False),
        ids[1]: Revocation("revoked", True),
    }


async def test_a_401_for_an_ended_session_says_how_it_ended(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    app = await make_app(server.services)
    now = server.clock.now()
    kept, wiped = await sign_in(client, app, "bob", now), await sign_in(client, app, "carol", now)
    await revoke_user_sessions(server.services, app.app_id, "bob")
    await revoke_user_sessions(server.services, app.app_id, "carol", wipe=True)
    for signed_in, expected in ((kept, {"reason": "revoked"}), (wiped, {"wipe": True})):
        answer = await client.get("/v1/me", headers={"Authorization": f"Bearer {signed_in.token}"})
        assert answer.status_code == 401
        data = answer.json()["error"]["data"]
        assert data["reason"] == "revoked"
        assert data.get("wipe", False) is expected.get("wipe", False)
        assert "nonce" in data
    stranger = await client.get("/v1/me", headers={"Authorization": "Bearer cws_nothing"})
    assert "reason" not in stranger.json()["error"]["data"]


async def revoked_alice(
    server: RunningServer, client: httpx.AsyncClient, *, wipe: bool = False
) -> tuple[Device, str]:
    """Alice's socket, caught up, and her conversation with bob, after every session of
    hers was revoked by another process (no doorbell reaches this one's sockets)."""
    app = await make_app(server.services)
    alice = await sign_in(client, app, "alice", server.clock.now())
    conversation_id = await create_conversation(client, alice, ["bob"])
    device = await open_device(server, alice.token)
    await device.until_caught_up()
    async with open_services(Settings(database_url=server.settings.database_url)) as admin:
        await revoke_user_sessions(admin, app.app_id, "alice", wipe=wipe)
    return device, conversation_id


async def test_writes_over_a_socket_are_refused_at_once_after_a_revocation_without_doorbell(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    """Before the sweep can notice (seconds), each write is refused by its own read, and
    the socket is closed right behind that refusal, as the sweep would have closed it."""
    message_id = str(uuid.uuid4())
    for method in ("message.send", "receipt.mark", "typing.update"):
        device, conversation_id = await revoked_alice(server, client)
        writes: dict[str, dict[str, Any]] = {
            "message.send": {
                "conversation_id": conversation_id,
                "id": message_id,
                "parts": [{"mime_type": "text/plain", "body": "after revocation"}],
            },
            "receipt.mark": {"conversation_id": conversation_id, "type": "read", "position": 1},
            "typing.update": {"conversation_id": conversation_id, "state": "started"},
        }
        response = await device.request(method, writes[method])
        assert response["ok"] is False, (method, response)
        assert response["error"]["id"] == "authentication_required", method
        assert response["error"]["data"] == {"reason": "revoked"}, method
        assert await device.closed() == (4003, "session_revoked"), method
        assert device.events[-1]["type"] == "session.revoked", method
    async with server.services.db.read() as db:
        assert await message_store.get_message(db, message_id) is None


async def test_a_write_refused_after_a_wiped_revocation_says_to_wipe(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    """The write's own check is the device's first news of the revocation when it races
    it: without ``wipe`` in that answer the SDK would renew, then ignore the socket's
    ``session_wiped`` close as the ending of a session it no longer holds."""
    device, conversation_id = await revoked_alice(server, client, wipe=True)
    response = await device.request(
        "message.send",
        {
            "conversation_id": conversation_id,
            "id": str(uuid.uuid4()),
            "parts": [{"mime_type": "text/plain", "body": "from a stolen phone"}],
        },
    )
    assert response["error"]["id"] == "authentication_required"
    assert response["error"]["data"] == {"reason": "revoked", "wipe": True}
    assert await device.closed() == (4003, "session_wiped")


async def test_a_send_over_an_ended_session_is_refused_as_such_whatever_the_conversation(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    """The session is checked before the conversation is looked up (on PostgreSQL with the
    conversation's row lock, in one statement): an ended session learns that it ended, not
    that a conversation is missing."""
    for pick in range(3):  # its own conversation, an unknown one, a malformed id
        device, conversation_id = await revoked_alice(server, client)
        target = (conversation_id, str(uuid.uuid4()), "not-a-conversation-id")[pick]
        response = await device.request(
            "message.send",
            {
                "conversation_id": target,
                "id": str(uuid.uuid4()),
                "parts": [{"mime_type": "text/plain", "body": "after revocation"}],
            },
        )
        assert response["error"]["id"] == "authentication_required", target
        assert response["error"]["data"] == {"reason": "revoked"}, target
