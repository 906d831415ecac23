"""Apps and their keys over the platform API: the CLI's rules, over HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from chinwag.core.keys import Alg, generate_key_pair
from tests.support import AppFixture, RunningServer, login, platform_key, sign


async def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if status != 204 else None


async def test_create_read_update_and_list_an_app(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    admin = await platform_key(server.services)
    made = await _ok(
        await client.post(
            "/v1/platform/apps",
            json={"name": "shop", "allow_anonymous": True, "conversation_policy": "existing_users"},
            headers=admin,
        ),
        201,
    )
    app_id = made["app_id"]
    assert made["environment"] == "staging"
    assert made["allow_anonymous"] is True
    assert made["development_key"]["private_key_pem"].startswith("-----BEGIN")
    changed = await _ok(
        await client.patch(
            f"/v1/platform/apps/{app_id}",
            json={"session_lifetime": 3600, "name": "shop 2", "agents_add": ["support/1"]},
            headers=admin,
        )
    )
    assert changed["session_lifetime"] == 3600
    assert changed["name"] == "shop 2"
    got = await _ok(await client.get(f"/v1/platform/apps/{app_id}", headers=admin))
    assert got == changed
    listed = await _ok(await client.get("/v1/platform/apps", headers=admin))
    assert app_id in [a["app_id"] for a in listed["apps"]]


async def test_an_apps_session_lifetime_applies_to_new_sessions(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    admin = await platform_key(server.services)
    url = f"/v1/platform/apps/{app.app_id}"
    await _ok(await client.patch(url, json={"session_lifetime": 600}, headers=admin))
    session = await login(client, app, "alice", server.clock.now())
    assert session["expires_at"] - session["issued_at"] == 600


async def test_invalid_settings_are_422_with_the_field(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    admin = await platform_key(server.services)
    url = f"/v1/platform/apps/{app.app_id}"
    for body in ({"session_lifetime": 1}, {"environment": "moon"}, {"surprise": 1}):
        answer = await client.patch(url, json=body, headers=admin)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["error"]["id"] == "invalid_request"
    json_type = {**admin, "Content-Type": "application/json"}
    not_json = await client.patch(url, content=b"{", headers=json_type)
    assert not_json.status_code == 400


async def test_a_body_over_the_limit_is_413(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    admin = await platform_key(server.services)
    big = {"public_key": "x" * (server.settings.max_body_bytes + 1)}
    answer = await client.post(f"/v1/platform/apps/{app.app_id}/keys", json=big, headers=admin)
    assert answer.status_code == 413
    assert answer.json()["error"]["id"] == "payload_too_large"


async def _signs_in(
    server: RunningServer, client: httpx.AsyncClient, app_id: str, kid: str, **key: Any
) -> int:
    """Whether a token signed with this key opens a session (its status)."""
    nonce = (await client.post("/v1/nonces", json={"app_id": app_id})).json()["nonce"]
    claims = {"sub": "alice", "nce": nonce, "iat": int(server.clock.now())}
    token = sign(claims, kid=kid, **key)
    answer = await client.post("/v1/sessions", json={"app_id": app_id, "identity_token": token})
    return answer.status_code


async def test_key_rotation_by_upload_without_downtime(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    """Add the new key, switch the backend to it, disable the old one."""
    keys = f"/v1/platform/apps/{app.app_id}/keys"
    mine = await platform_key(server.services, "app", app.app_id)
    pair = generate_key_pair(Alg.ES256)
    added = await _ok(
        await client.post(keys, json={"public_key": pair.public_key_pem}, headers=mine), 201
    )
    assert added["alg"] == "ES256"
    assert "private_key_pem" not in added
    new = {"alg": Alg.ES256, "private_key_pem": pair.private_key_pem}
    old = {"alg": app.alg, "private_key_pem": app.private_key_pem}
    assert await _signs_in(server, client, app.app_id, added["kid"], **new) == 201
    assert await _signs_in(server, client, app.app_id, app.kid, **old) == 201
    await _ok(await client.post(f"{keys}/{app.kid}/disable", headers=mine))
    assert await _signs_in(server, client, app.app_id, app.kid, **old) == 401
    assert await _signs_in(server, client, app.app_id, added["kid"], **new) == 201
    listed = await _ok(await client.get(keys, headers=mine))
    assert {k["kid"]: k["enabled"] for k in listed["keys"]}[app.kid] is False


async def test_generated_pair_and_secret_are_shown_once(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    keys = f"/v1/platform/apps/{app.app_id}/keys"
    mine = await platform_key(server.services, "app", app.app_id)
    pair = await _ok(
        await client.post(f"{keys}/generate", json={"alg": "EdDSA"}, headers=mine), 201
    )
    assert pair["private_key_pem"].startswith("-----BEGIN")
    assert pair["alg"] == "EdDSA"
    made = await _ok(
        await client.post(f"{keys}/generate", json={"kind": "hmac_secret"}, headers=mine), 201
    )
    assert made["alg"] == "HS256"
    assert made["secret"]
    listed = (await client.get(keys, headers=mine)).text
    assert made["secret"] not in listed
    assert pair["private_key_pem"] not in listed
    secret_url = f"{keys}/{made['kid']}/secret"
    refused = await client.get(secret_url, headers=mine)
    assert refused.status_code == 403
    assert refused.json()["error"]["id"] == "forbidden"
    admin = await platform_key(server.services)
    shown = await _ok(await client.get(secret_url, headers=admin))
    assert shown == {"kid": made["kid"], "alg": "HS256", "secret": made["secret"]}
    hs = {"alg": Alg.HS256, "secret": made["secret"]}
    assert await _signs_in(server, client, app.app_id, made["kid"], **hs) == 201


async def test_delete_and_a_key_of_another_app_is_not_found(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    admin = await platform_key(server.services)
    other = await _ok(
        await client.post("/v1/platform/apps", json={"name": "o"}, headers=admin), 201
    )
    theirs = other["development_key"]["kid"]
    keys = f"/v1/platform/apps/{app.app_id}/keys"
    for answer in (
        await client.post(f"{keys}/{theirs}/disable", headers=admin),
        await client.delete(f"{keys}/{theirs}", headers=admin),
        await client.get(f"{keys}/{theirs}/secret", headers=admin),
    ):
        assert answer.status_code == 404
        assert answer.json()["error"]["id"] == "not_found"
    await _ok(await client.delete(f"{keys}/{app.kid}", headers=admin), 204)
    again = await client.delete(f"{keys}/{app.kid}", headers=admin)
    assert again.status_code == 404


async def test_two_apps_may_use_the_same_kid_and_each_reaches_only_its_own(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    """Kids are per app: a second app's ``key-2024`` is no conflict (it was 409 and told
    the second app the kid was taken elsewhere), a token verifies only with its own app's
    key of that kid, and the other app's keys answer 404 like absent ones."""
    admin = await platform_key(server.services)
    other = (
        await _ok(await client.post("/v1/platform/apps", json={"name": "o"}, headers=admin), 201)
    )["app_id"]
    pairs = {a: generate_key_pair(Alg.ES256) for a in (app.app_id, other)}
    scoped = {a: await platform_key(server.services, "app", a) for a in pairs}
    for a, pair in pairs.items():
        body = {"public_key": pair.public_key_pem, "kid": "key-2024"}
        made = await _ok(
            await client.post(f"/v1/platform/apps/{a}/keys", json=body, headers=scoped[a]), 201
        )
        assert made["kid"] == "key-2024"
        again = await client.post(f"/v1/platform/apps/{a}/keys", json=body, headers=scoped[a])
        assert again.status_code == 409, again.text
        assert again.json()["error"]["id"] == "id_in_use"
    signer = {a: {"alg": Alg.ES256, "private_key_pem": p.private_key_pem} for a, p in pairs.items()}
    assert await _signs_in(server, client, app.app_id, "key-2024", **signer[app.app_id]) == 201
    assert await _signs_in(server, client, other, "key-2024", **signer[other]) == 201
    assert await _signs_in(server, client, other, "key-2024", **signer[app.app_id]) == 401
    assert await _signs_in(server, client, app.app_id, "key-2024", **signer[other]) == 401

    mine = f"/v1/platform/apps/{app.app_id}/keys"
    disabled = await _ok(await client.post(f"{mine}/key-2024/disable", headers=scoped[app.app_id]))
    assert disabled["enabled"] is False
    assert await _signs_in(server, client, app.app_id, "key-2024", **signer[app.app_id]) == 401
    assert await _signs_in(server, client, other, "key-2024", **signer[other]) == 201
    await _ok(await client.delete(f"{mine}/key-2024", headers=scoped[app.app_id]), 204)
    assert await _signs_in(server, client, other, "key-2024", **signer[other]) == 201

    theirs = f"/v1/platform/apps/{other}/keys"
    await _ok(
        await client.post(f"{theirs}/generate", json={"kind": "hmac_secret"}, headers=admin), 201
    )
    only_theirs = [k["kid"] for k in (await _ok(await client.get(theirs, headers=admin)))["keys"]]
    for kid in [*only_theirs, "key-2024", "no-such-kid", "%00"]:
        for answer in (
            await client.post(f"{mine}/{kid}/disable", headers=scoped[app.app_id]),
            await client.post(f"{mine}/{kid}/enable", headers=scoped[app.app_id]),
            await client.delete(f"{mine}/{kid}", headers=scoped[app.app_id]),
            await client.get(f"{mine}/{kid}/secret", headers=admin),
        ):
            assert answer.status_code == 404, (kid, answer.text)
            assert answer.json()["error"]["id"] == "not_found"
    listed = await _ok(await client.get(theirs, headers=admin))
    assert all(k["enabled"] for k in listed["keys"])
    assert "key-2024" in [k["kid"] for k in listed["keys"]]


@pytest.mark.parametrize("kid", ["a/b/../c", "has space", "kid?x=1", "ключ"])
async def test_an_uploaded_kid_outside_the_jwks_alphabet_is_422(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, kid: str
) -> None:
    """A token naming such a kid is refused before any key is looked up, and a ``/`` would
    make the key's own URLs unreachable: such a key could be stored but never used."""
    admin = await platform_key(server.services)
    pem = generate_key_pair(Alg.ES256).public_key_pem
    keys = f"/v1/platform/apps/{app.app_id}/keys"
    answer = await client.post(keys, json={"public_key": pem, "kid": kid}, headers=admin)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["data"]["property"] == "kid"
    listed = await _ok(await client.get(keys, headers=admin))
    assert kid not in [k["kid"] for k in listed["keys"]]
