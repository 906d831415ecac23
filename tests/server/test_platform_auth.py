"""Who may call the platform API: API keys only, an app key only its app, revocation."""

from __future__ import annotations

import httpx

from chinwag.server.handlers.api_keys import revoke_api_key
from chinwag.server.settings import Settings
from chinwag.server.storage import api_keys as key_store
from tests.support import AppFixture, RunningServer, make_app, platform_key, run_server


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    return str(response.json()["error"]["id"])


async def test_no_key_or_a_malformed_one_is_401(client: httpx.AsyncClient) -> None:
    assert _error(await client.get("/v1/platform/apps"), 401) == "authentication_required"
    bad = {"Authorization": "Bearer cwk_aaaaaaaa_" + "x" * 43}
    assert _error(await client.get("/v1/platform/apps", headers=bad), 401) == (
        "authentication_required"
    )


async def test_a_session_token_is_refused_on_the_platform_api(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    assert _error(await client.get("/v1/platform/apps", headers=alice), 401) == (
        "authentication_required"
    )


async def test_an_api_key_is_refused_on_the_client_api(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    admin = await platform_key(server.services)
    assert (await client.get("/v1/platform/apps", headers=admin)).status_code == 200
    assert _error(await client.get("/v1/me", headers=admin), 401) == "authentication_required"
    assert _error(await client.get("/v1/conversations", headers=admin), 401) == (
        "authentication_required"
    )


async def test_a_revoked_key_is_401_at_once(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    admin = await platform_key(server.services)
    assert (await client.get("/v1/platform/apps", headers=admin)).status_code == 200
    key_id = admin["Authorization"].split("_")[1]
    await revoke_api_key(server.services, key_id)
    assert _error(await client.get("/v1/platform/apps", headers=admin), 401) == (
        "authentication_required"
    )


async def test_an_app_key_reaches_its_app_and_another_app_is_not_found(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    other = await make_app(server.services)
    mine = await platform_key(server.services, "app", app.app_id)
    assert (await client.get(f"/v1/platform/apps/{app.app_id}", headers=mine)).status_code == 200
    theirs = await client.get(f"/v1/platform/apps/{other.app_id}/keys", headers=mine)
    nobody = await client.get(
        "/v1/platform/apps/00000000-0000-4000-8000-000000000000/keys", headers=mine
    )
    assert _error(theirs, 404) == _error(nobody, 404) == "app_not_found"
    assert theirs.json()["error"]["message"] == nobody.json()["error"]["message"]
    listed = (await client.get("/v1/platform/apps", headers=mine)).json()["apps"]
    assert [a["app_id"] for a in listed] == [app.app_id]


async def test_admin_only_actions_are_403_for_an_app_key(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> None:
    mine = await platform_key(server.services, "app", app.app_id)
    made = await client.post("/v1/platform/apps", json={"name": "x"}, headers=mine)
    assert _error(made, 403) == "forbidden"
    assert _error(await client.get("/v1/platform/audit", headers=mine), 403) == "forbidden"
    suspend = await client.post(f"/v1/platform/apps/{app.app_id}/suspend", headers=mine)
    assert _error(suspend, 403) == "forbidden"


async def test_last_use_is_recorded_at_most_once_a_minute(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    admin = await platform_key(server.services)
    key_id = admin["Authorization"].split("_")[1]

    async def last_used() -> float | None:
        async with server.services.db.read() as conn:
            record = await key_store.get_api_key(conn, key_id)
        assert record is not None
        return record.last_used_at

    assert await last_used() is None
    await client.get("/v1/platform/apps", headers=admin)
    first = await last_used()
    assert first == server.clock.now()
    server.clock.advance(30)
    await client.get("/v1/platform/apps", headers=admin)
    assert await last_used() == first
    server.clock.advance(31)
    await client.get("/v1/platform/apps", headers=admin)
    assert await last_used() == server.clock.now()


def test_every_platform_operation_declares_the_api_key_scheme(server: RunningServer) -> None:
    document = server.app.openapi()
    scheme = document["components"]["securitySchemes"]["platformApiKey"]
    assert scheme["type"] == "http"
    assert scheme["scheme"] == "bearer"
    platform = [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if path.startswith("/v1/platform")
    ]
    assert len(platform) >= 15
    for path, method, operation in platform:
        assert operation["security"] == [{"platformApiKey": []}], (method, path)
        assert {"401", "404"} <= set(operation["responses"]), (method, path)
        ok = [s for s in operation["responses"] if s.startswith("2")]
        assert ok, (method, path)


def test_the_platform_docs_list_every_platform_operation(server: RunningServer) -> None:
    """docs/platform-api/'s pages name exactly the operations the server serves."""
    import re
    from pathlib import Path

    docs = (Path(__file__).parents[2] / "docs" / "platform-api").glob("*.md")
    pattern = r"`(GET|POST|PUT|PATCH|DELETE) (/v1/platform/[^`?]*)"
    documented = {found for doc in docs for found in re.findall(pattern, doc.read_text())}
    served = {
        (method.upper(), path)
        for path, item in server.app.openapi()["paths"].items()
        for method in item
        if path.startswith("/v1/platform")
    }
    assert served - documented == set()
    assert documented - served == set()


async def test_each_api_key_has_its_own_request_budget(database_url: str) -> None:
    settings = Settings(database_url=database_url, limit_platform_per_key="3/minute")
    async with run_server(settings) as server, httpx.AsyncClient(base_url=server.url) as http:
        first = await platform_key(server.services)
        second = await platform_key(server.services)
        for _ in range(3):
            assert (await http.get("/v1/platform/apps", headers=first)).status_code == 200
        refused = await http.get("/v1/platform/apps", headers=first)
        assert _error(refused, 429) == "rate_limited"
        assert int(refused.headers["Retry-After"]) >= 1
        assert (await http.get("/v1/platform/apps", headers=second)).status_code == 200
        server.clock.advance(61)
        assert (await http.get("/v1/platform/apps", headers=first)).status_code == 200
