"""Webhooks against real receivers on loopback, on SQLite and PostgreSQL: signed the
Standard Webhooks way, durable across a receiver outage and a server restart, disabled
with a reason when a receiver never answers, and signed twice during a secret rotation."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from chinwag.server.settings import Settings
from tests.server import test_upgrade as upgrade
from tests.support import (
    ADMIN,
    AppFixture,
    Receiver,
    RunningServer,
    bearer,
    eventually,
    hook_settings,
    make_app,
    run_server,
    send,
    start,
)

Headers = dict[str, str]


pytestmark = pytest.mark.usefixtures("platform_admin")


@pytest.fixture
def settings(database_url: str) -> Settings:
    return hook_settings(database_url)


async def add_webhook(
    client: httpx.AsyncClient, app_id: str, url: str, types: list[str]
) -> dict[str, Any]:
    answer = await client.post(
        f"/v1/platform/apps/{app_id}/webhooks",
        json={"url": url, "event_types": types},
        headers=ADMIN,
    )
    assert answer.status_code == 201, answer.text
    found: dict[str, Any] = answer.json()
    return found


async def deliveries(client: httpx.AsyncClient, app_id: str, hook: str) -> list[dict[str, Any]]:
    answer = await client.get(
        f"/v1/platform/apps/{app_id}/webhooks/{hook}/deliveries", headers=ADMIN
    )
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["deliveries"]
    return found


async def recorded_deliveries(
    client: httpx.AsyncClient, app_id: str, hook: str
) -> list[dict[str, Any]]:
    """The deliveries once none is pending: a receiver has answered a moment before the
    worker records its answer."""

    async def settled() -> bool:
        return all(d["status"] != "pending" for d in await deliveries(client, app_id, hook))

    await eventually(settled)
    return await deliveries(client, app_id, hook)


def verified(secret: str, receiver: Receiver) -> list[dict[str, Any]]:
    return [Webhook(secret).verify(r.body, r.headers) for r in receiver.answered]


async def test_a_receiver_down_for_a_while_gets_every_delivery_later_exactly_once(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: Headers
) -> None:
    async with Receiver() as receiver:
        receiver.status = 503
        hook = await add_webhook(client, app.app_id, receiver.url, ["message.created"])
        conv = await start(client, alice, "bob")
        for n in range(3):
            await send(client, alice, conv, f"m{n}")
        await receiver.wait_for(lambda: len(receiver.requests) >= 3)

        async def recorded() -> bool:
            found = await deliveries(client, app.app_id, hook["id"])
            return [d["attempts"] for d in found] == [1, 1, 1]

        await eventually(recorded)
        assert receiver.answered == []
        receiver.status = 200
        server.clock.advance(13)
        await receiver.wait_for(lambda: len(receiver.answered) >= 3)
        server.clock.advance(30)  # nothing is due again: a fourth message comes alone
        await send(client, alice, conv, "m3")
        await receiver.wait_for(lambda: len(receiver.answered) >= 4)
        listed = await recorded_deliveries(client, app.app_id, hook["id"])
    payloads = verified(hook["secret"], receiver)
    assert len(receiver.answered) == 4
    assert len({r.headers["webhook-id"] for r in receiver.answered}) == 4
    assert sorted(p["data"]["message"]["parts"][0]["body"] for p in payloads) == [
        "m0", "m1", "m2", "m3",
    ]  # fmt: skip
    assert {p["type"] for p in payloads} == {"message.created"}
    assert all(p["data"]["app_id"] == app.app_id for p in payloads)
    assert [d["status"] for d in listed] == ["delivered"] * 4
    assert sorted(d["attempts"] for d in listed) == [1, 2, 2, 2]


async def test_a_receiver_that_never_answers_is_disabled_with_the_reason(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: Headers
) -> None:
    async with Receiver() as receiver:
        receiver.mode = "hang"
        hook = await add_webhook(client, app.app_id, receiver.url, ["conversation.created"])
        await start(client, alice, "bob")
        for tries in (1, 2):

            async def recorded(n: int = tries) -> bool:
                found = await deliveries(client, app.app_id, hook["id"])
                return bool(found) and found[0]["attempts"] == n

            await eventually(recorded)
            server.clock.advance(13)
        url = f"/v1/platform/apps/{app.app_id}/webhooks/{hook['id']}"

        async def disabled() -> bool:
            return (await client.get(url, headers=ADMIN)).json()["enabled"] is False

        await eventually(disabled)
        found = (await client.get(url, headers=ADMIN)).json()
        listed = await deliveries(client, app.app_id, hook["id"])
    assert found["disabled_reason"] == (
        "disabled after 3 failed attempts; last: no answer within 1 seconds"
    )
    assert listed[0]["status"] == "failed"
    assert listed[0]["attempts"] == 3
    assert len(receiver.requests) == 3


async def test_a_server_restart_mid_queue_loses_nothing(database_url: str) -> None:
    async with Receiver() as receiver:
        quiet = hook_settings(database_url, webhook_workers=False)
        async with run_server(quiet) as first, httpx.AsyncClient(base_url=first.url) as client:
            app = await make_app(first.services)
            hook = await add_webhook(
                client, app.app_id, receiver.url, ["message.created", "conversation.created"]
            )
            alice = await bearer(client, app, "alice", first.clock.now())
            conv = await start(client, alice, "bob")
            for n in range(3):
                await send(client, alice, conv, f"m{n}")
        assert receiver.requests == []
        async with run_server(hook_settings(database_url)):
            await receiver.wait_for(lambda: len(receiver.answered) >= 4)
    payloads = verified(hook["secret"], receiver)
    assert sorted(p["type"] for p in payloads) == ["conversation.created"] + ["message.created"] * 3
    assert len({r.headers["webhook-id"] for r in receiver.answered}) == 4


async def test_after_a_rotation_deliveries_carry_both_signatures_for_a_day(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: Headers
) -> None:
    async with Receiver() as receiver:
        hook = await add_webhook(client, app.app_id, receiver.url, ["message.created"])
        rotated = await client.post(
            f"/v1/platform/apps/{app.app_id}/webhooks/{hook['id']}/rotate-secret", headers=ADMIN
        )
        assert rotated.status_code == 200, rotated.text
        new = rotated.json()
        assert new["secret"] != hook["secret"]
        assert new["previous_secret_expires_at"] == pytest.approx(server.clock.now() + 86400)
        conv = await start(client, alice, "bob")
        await send(client, alice, conv, "during")
        await receiver.wait_for(lambda: len(receiver.answered) >= 1)
        server.clock.advance(86401)
        await send(client, alice, conv, "after")
        await receiver.wait_for(lambda: len(receiver.answered) >= 2)
    during, after = receiver.answered
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    Webhook(hook["secret"]).verify(during.body, during.headers)
    Webhook(new["secret"]).verify(during.body, during.headers)
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    with pytest.raises(WebhookVerificationError):
        Webhook(hook["secret"]).verify(after.body, after.headers)


async def test_a_delivery_is_replayed_by_id_with_the_same_webhook_id(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: Headers
) -> None:
    async with Receiver() as receiver:
        hook = await add_webhook(client, app.app_id, receiver.url, ["conversation.created"])
        await start(client, alice, "bob")
        await receiver.wait_for(lambda: len(receiver.answered) >= 1)
        (first,) = await deliveries(client, app.app_id, hook["id"])
        base = f"/v1/platform/apps/{app.app_id}/webhooks/{hook['id']}/deliveries"
        replayed = await client.post(f"{base}/{first['id']}/replay", headers=ADMIN)
        assert replayed.status_code == 202, replayed.text
        await receiver.wait_for(lambda: len(receiver.answered) >= 2)
        missing = await client.post(f"{base}/999999/replay", headers=ADMIN)
    assert receiver.answered[0].body == receiver.answered[1].body
    assert receiver.answered[1].headers["webhook-id"] == first["webhook_id"]
    assert missing.status_code == 404
    assert missing.json()["error"]["id"] == "not_found"


async def test_a_replay_asked_for_while_the_delivery_is_in_flight_is_still_sent(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: Headers
) -> None:
    """The replay answers 202 and clears the claim's lease; the try in flight then ends
    with 200. Recording that try as "delivered" over the replay dropped the replay the
    API had acknowledged: the receiver never got its second request."""
    async with Receiver() as receiver:
        receiver.held = asyncio.Event()
        hook = await add_webhook(client, app.app_id, receiver.url, ["conversation.created"])
        await start(client, alice, "bob")
        await receiver.wait_for(lambda: len(receiver.requests) >= 1)  # in flight, held
        (first,) = await deliveries(client, app.app_id, hook["id"])
        base = f"/v1/platform/apps/{app.app_id}/webhooks/{hook['id']}/deliveries"
        replayed = await client.post(f"{base}/{first['id']}/replay", headers=ADMIN)
        assert replayed.status_code == 202, replayed.text
        receiver.held.set()
        await receiver.wait_for(lambda: len(receiver.answered) >= 2)
        (after,) = await recorded_deliveries(client, app.app_id, hook["id"])
    assert receiver.answered[0].body == receiver.answered[1].body
    assert receiver.answered[1].headers["webhook-id"] == first["webhook_id"]
    assert after["status"] == "delivered"
    assert after["attempts"] == 1  # the replay's try; the one it overtook is not counted


@pytest.mark.parametrize(
    ("body", "prop"),
    [
        ({"url": "http://example.com/hook", "event_types": ["receipt"]}, "url"),
        ({"url": "https://u:p@example.com/hook", "event_types": ["receipt"]}, "url"),
        ({"url": "https://169.254.169.254/", "event_types": ["receipt"]}, "url"),
        ({"url": "https://167772161/", "event_types": ["receipt"]}, "url"),
        ({"url": "https://example.com/\r\nx: 1", "event_types": ["receipt"]}, "url"),
        ({"url": "https://example.com/hook#part", "event_types": ["receipt"]}, "url"),
        ({"url": "https://example.com/hook", "event_types": ["message.exploded"]}, "event_types"),
    ],
)
async def test_bad_urls_and_event_types_are_422(
    client: httpx.AsyncClient, app: AppFixture, body: dict[str, Any], prop: str
) -> None:
    answer = await client.post(f"/v1/platform/apps/{app.app_id}/webhooks", json=body, headers=ADMIN)
    assert answer.status_code == 422
    assert answer.json()["error"]["data"]["property"] == prop


async def test_only_a_platform_key_reaches_webhooks_and_it_reaches_nothing_else(
    client: httpx.AsyncClient, app: AppFixture, alice: Headers
) -> None:
    path = f"/v1/platform/apps/{app.app_id}/webhooks"
    for headers in ({}, alice, {"Authorization": "Bearer cwk_wrong"}):
        answer = await client.get(path, headers=headers)
        assert answer.status_code == 401
        assert answer.json()["error"]["id"] == "authentication_required"
    assert (await client.get("/v1/me", headers=ADMIN)).status_code == 401
    unknown = await client.get(f"/v1/platform/apps/{uuid.uuid4()}/webhooks", headers=ADMIN)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["id"] == "app_not_found"
    missing = await client.get(f"{path}/ep_nope", headers=ADMIN)
    assert missing.status_code == 404
    assert missing.json()["error"]["id"] == "not_found"


async def test_an_endpoint_is_listed_changed_and_deleted_without_its_secret(
    client: httpx.AsyncClient, app: AppFixture
) -> None:
    hook = await add_webhook(client, app.app_id, "https://example.com/a", ["receipt"])
    path = f"/v1/platform/apps/{app.app_id}/webhooks"
    changed = await client.patch(
        f"{path}/{hook['id']}",
        json={"url": "https://example.com/b", "event_types": ["receipt", "session.ended"]},
        headers=ADMIN,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["event_types"] == ["receipt", "session.ended"]
    nulled = await client.patch(f"{path}/{hook['id']}", json={"url": None}, headers=ADMIN)
    assert (nulled.status_code, nulled.json()["error"]["data"]["property"]) == (422, "url")
    listed = (await client.get(path, headers=ADMIN)).json()["webhooks"]
    assert [w["url"] for w in listed] == ["https://example.com/b"]
    assert "secret" not in listed[0]
    assert (await client.delete(f"{path}/{hook['id']}", headers=ADMIN)).status_code == 204
    assert (await client.get(path, headers=ADMIN)).json()["webhooks"] == []


async def test_a_log_out_is_announced_as_session_ended_with_the_user(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: Headers
) -> None:
    async with Receiver() as receiver:
        hook = await add_webhook(client, app.app_id, receiver.url, ["session.ended"])
        assert (await client.delete("/v1/sessions/current", headers=alice)).status_code == 204
        await receiver.wait_for(lambda: len(receiver.answered) >= 1)
    (event,) = verified(hook["secret"], receiver)
    assert event["type"] == "session.ended"
    assert event["data"]["user_id"] == "alice"
    assert event["data"]["reason"]


async def test_a_suspension_is_announced_as_user_suspended(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: Headers
) -> None:
    async with Receiver() as receiver:
        hook = await add_webhook(client, app.app_id, receiver.url, ["user.suspended"])
        answer = await client.post(
            f"/v1/platform/apps/{app.app_id}/users/suspend",
            json={"user_id": "alice"},
            headers=ADMIN,
        )
        assert answer.status_code == 200, answer.text
        await receiver.wait_for(lambda: len(receiver.answered) >= 1)
    (event,) = verified(hook["secret"], receiver)
    assert event["type"] == "user.suspended"
    assert event["data"]["user_id"] == "alice"
    assert len(event["data"]["ended_session_ids"]) == 1


async def test_each_participant_change_is_one_webhook_saying_what_changed(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: Headers, bob: Headers
) -> None:
    """Adding someone is not a second ``conversation.created``; a leave is one event, told
    apart from a removal."""
    types = ["conversation.created", "conversation.participants_changed"]
    async with Receiver() as receiver:
        hook = await add_webhook(client, app.app_id, receiver.url, types)
        conv = await start(client, alice, "bob")
        path = f"/v1/conversations/{conv}"
        added = await client.post(
            f"{path}/participants", json={"user_ids": ["carol"]}, headers=alice
        )
        assert added.status_code == 200, added.text
        assert (await client.post(f"{path}/leave", headers=bob)).status_code == 204
        removed = await client.delete(f"{path}/participants/carol", headers=alice)
        assert removed.status_code == 204, removed.text
        await receiver.wait_for(lambda: len(receiver.answered) >= 4)
        assert len(await recorded_deliveries(client, app.app_id, hook["id"])) == 4
    events = verified(hook["secret"], receiver)
    assert sorted(e["type"] for e in events) == ["conversation.created"] + [types[1]] * 3
    changes = sorted(
        (e["data"]["change"], e["data"]["user_ids"], e["data"]["participants"])
        for e in events
        if e["type"] == types[1]
    )
    assert changes == [
        ("added", ["carol"], ["alice", "bob", "carol"]),
        ("left", ["bob"], ["alice", "carol"]),
        ("removed", ["carol"], ["alice"]),
    ]


async def test_an_upgrade_that_keeps_conversations_announces_who_came_and_went(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    """Not a ``conversation.created`` for conversations that already existed (an app would
    take each for a new one), nor a ``conversation.updated`` (nothing in the metadata
    changed): in each one the identified user is added, unless already there, and the
    anonymous user left, both carrying the participants after the upgrade."""
    app = await make_app(server.services, allow_anonymous=True)
    alice_before = await bearer(client, app, "alice", server.clock.now())
    types = [
        "conversation.created",
        "conversation.participants_changed",
        "conversation.updated",
        "message.created",
        "session.ended",
    ]
    async with Receiver() as receiver:
        hook = await add_webhook(client, app.app_id, receiver.url, types)
        anon = await upgrade.anonymous(client, app)
        anon_id = anon["user"]["user_id"]
        theirs = await start(client, upgrade.bearer(anon), "bob")
        shared = await start(client, alice_before, anon_id)
        await receiver.wait_for(lambda: len(receiver.answered) >= 2)
        before = len(await recorded_deliveries(client, app.app_id, hook["id"]))
        signed_in = await upgrade.sign_in(server, client, app, "alice", upgrade.bearer(anon))
        assert signed_in.status_code == 201, signed_in.text
        await send(client, upgrade.bearer(signed_in.json()), theirs, "fence")
        await receiver.wait_for(
            lambda: any(b'"fence"' in r.body for r in receiver.answered), timeout=20
        )
        after = len(await recorded_deliveries(client, app.app_id, hook["id"]))
    events = verified(hook["secret"], receiver)
    assert len(events) == after
    changes = sorted(
        (e["type"], e["data"].get("conversation_id"), e["data"].get("change"),
         e["data"].get("user_ids"), e["data"].get("participants"))
        for e in events[before:] if e["type"] not in ("message.created", "session.ended")
    )  # fmt: skip
    assert changes == sorted(
        [
            (types[1], theirs, "added", ["alice"], ["alice", "bob"]),
            (types[1], theirs, "left", [anon_id], ["alice", "bob"]),
            (types[1], shared, "left", [anon_id], ["alice"]),
        ]
    )
    [ended] = [e["data"] for e in events if e["type"] == "session.ended"]
    assert (ended["user_id"], ended["reason"]) == (anon_id, "upgraded")


async def test_finished_deliveries_are_purged_after_the_retention(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: Headers
) -> None:
    async with Receiver() as receiver:
        hook = await add_webhook(client, app.app_id, receiver.url, ["conversation.created"])
        await start(client, alice, "bob")
        await receiver.wait_for(lambda: len(receiver.answered) >= 1)
        server.clock.advance(8 * 86400)  # past 7 days, and past the purge interval
        await start(client, alice, "carol")
        await receiver.wait_for(lambda: len(receiver.answered) >= 2)

        async def only_the_new_one() -> bool:
            return len(await deliveries(client, app.app_id, hook["id"])) == 1

        await eventually(only_the_new_one)
