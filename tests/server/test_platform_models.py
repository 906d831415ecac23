"""The platform API refuses a value it would otherwise misread: a string or number for a
boolean, an explicit null where a value is required, infinity for a time, a non-http(s)
avatar. Each is 422 ``invalid_request`` naming the field, never a 200 that did something
else (or nothing)."""

from __future__ import annotations

import httpx
import pytest

from tests.support import AppFixture, RunningServer, platform_key

APP = "/v1/platform/apps/{app}"
JS = "javascript:alert(1)"


@pytest.mark.parametrize(
    ("method", "path", "body", "prop"),
    [
        ("POST", "/sessions/end", '{"user_id": "alice", "wipe": "yes"}', "wipe"),
        ("POST", "/sessions/end", '{"user_id": "alice", "wipe": 1}', "wipe"),
        ("POST", "/sessions/end", '{"user_id": "alice", "wipe": "true"}', "wipe"),
        ("POST", "/sessions/end", '{"issued_before": 1e400}', "issued_before"),
        ("PATCH", "", '{"name": null}', "name"),
        ("PATCH", "", '{"require_nonce": "yes"}', "require_nonce"),
        ("PATCH", "/users/alice", f'{{"avatar_url": "{JS}"}}', "avatar_url"),
        ("POST", "/bots", f'{{"user_id": "b", "avatar_url": "{JS}"}}', "avatar_url"),
        ("POST", "/keys/generate", '{"kind": "key_pair", "alg": "HS256"}', "alg"),
    ],
)
async def test_a_misreadable_value_is_422_with_its_property(
    server: RunningServer,
    client: httpx.AsyncClient,
    app: AppFixture,
    method: str,
    path: str,
    body: str,
    prop: str,
) -> None:
    admin = {**await platform_key(server.services), "Content-Type": "application/json"}
    url = APP.format(app=app.app_id) + path
    answer = await client.request(method, url, content=body.encode(), headers=admin)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert (error["id"], error["data"]["property"]) == ("invalid_request", prop)


@pytest.mark.parametrize("since", ["nan", "inf", "-inf"])
async def test_a_non_finite_audit_since_is_422(
    server: RunningServer, client: httpx.AsyncClient, since: str
) -> None:
    admin = await platform_key(server.services)
    answer = await client.get("/v1/platform/audit", params={"since": since}, headers=admin)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["data"]["property"] == "query.since"
