"""``/healthz``, ``/readyz`` and ``/metrics`` (issue #10, part 5), with real failures:
a SQLite file that vanished, a PostgreSQL database that stopped taking connections, a
schema behind the code, a Redis that went down."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from chinwag.server.settings import Settings
from tests.support import (
    PG_ADMIN_URL,
    AppFixture,
    RunningServer,
    free_port,
    postgres_database,
    run_server,
)


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def _metrics(
    client: httpx.AsyncClient,
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    answer = await client.get("/metrics")
    assert answer.status_code == 200, answer.text
    return _samples(answer.text)


def _value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


async def _wait_for(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_healthz_and_readyz_on_a_migrated_database(client: httpx.AsyncClient) -> None:
    alive = await client.get("/healthz")
    assert alive.status_code == 200
    assert alive.json() == {"status": "ok"}
    answer = await client.get("/readyz")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "broker": "local", "draining": "no"},
    }


async def test_readyz_fails_when_the_sqlite_file_vanished(tmp_path: Path) -> None:
    path = tmp_path / "gone.db"
    settings = Settings(database_url=f"sqlite+aiosqlite:///{path}", auth_rate_per_second=0)
    async with run_server(settings) as server, httpx.AsyncClient(base_url=server.url) as client:
        assert (await client.get("/readyz")).status_code == 200
        path.unlink()
        answer = await client.get("/readyz")
        assert (await client.get("/healthz")).status_code == 200  # alive, though
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "5"
    error = answer.json()["error"]
    assert error["id"] == "service_unavailable"
    assert error["data"]["checks"]["database"] == "database file missing"
    assert error["data"]["status"] == "not_ready"


@pytest.mark.postgres
async def test_readyz_fails_when_postgres_stops_taking_connections() -> None:
    async with (
        postgres_database() as database_url,
        run_server(Settings(database_url=database_url)) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        name = database_url.rsplit("/", 1)[1]
        assert (await client.get("/readyz")).status_code == 200
        admin = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
            answer = await client.get("/readyz")
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            await admin.close()
    assert answer.status_code == 503, answer.text
    checks = answer.json()["error"]["data"]["checks"]
    assert checks["database"].startswith("unreachable"), checks
    assert name not in answer.text  # no URL, no database name


async def test_readyz_fails_when_the_schema_is_behind_the_code_not_ahead(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    from sqlalchemy import text

    async with server.services.db.transaction() as tx:
        await tx.conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    answer = await client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["error"]["data"]["checks"]["migrations"] == "behind (0001)"
    async with server.services.db.transaction() as tx:  # newer code migrated it
        await tx.conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    ahead = await client.get("/readyz")
    assert ahead.status_code == 200, ahead.text
    assert ahead.json()["checks"]["migrations"] == "ahead (9999)"


@contextlib.asynccontextmanager
async def _own_redis(port: int) -> AsyncIterator[subprocess.Popen[bytes]]:
    """A Redis of this test's own (the shared one is never stopped), once it listens."""
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:

        async def listening() -> bool:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                return False
            writer.close()
            return True

        await _wait_for(listening, "the test's Redis to listen")
        yield process
    finally:
        process.kill()
        process.wait()


@pytest.mark.redis
async def test_a_deaf_broker_stays_ready_and_repairs_when_redis_returns(tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'c.db'}",
        broker_url=f"redis://127.0.0.1:{port}/0",
        broker_prefix=f"t{uuid.uuid4().hex[:8]}",
    )
    async with (
        _own_redis(port) as redis,
        run_server(settings) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):

        async def broker_is(state: str) -> bool:
            answer = await client.get("/readyz")
            return answer.status_code == 200 and answer.json()["checks"]["broker"] == state

        await _wait_for(lambda: broker_is("connected"), "the broker to connect")
        before = await _metrics(client)
        redis.kill()
        redis.wait()
        await _wait_for(lambda: broker_is("deaf"), "the broker to notice Redis is down")
        async with _own_redis(port):  # back, on the same port
            await _wait_for(lambda: broker_is("connected"), "the broker to resubscribe")
            after = await _metrics(client)
    repaired = "chinwag_doorbells_total"
    assert (
        _value(after, repaired, event="repaired") - _value(before, repaired, event="repaired") == 1
    )


async def test_metrics_count_by_route_template_and_sign_in_outcome(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture, alice: dict[str, str]
) -> None:
    before = await _metrics(client)
    made = await client.post("/v1/conversations", json={"participants": ["bob"]}, headers=alice)
    conversation = made.json()["id"]
    for _ in range(3):
        body = {"id": str(uuid.uuid4()), "parts": [{"mime_type": "text/plain", "body": "hi"}]}
        sent = await client.post(
            f"/v1/conversations/{conversation}/messages", json=body, headers=alice
        )
        assert sent.status_code == 201, sent.text
    refused = await client.post(
        "/v1/sessions", json={"app_id": app.app_id, "identity_token": "not.a.token"}
    )
    assert refused.status_code == 401
    await client.get(f"/no/such/{uuid.uuid4()}")
    await client.request("PROPFIND", "/healthz")  # a method no route has
    after = await _metrics(client)
    answer = await client.get("/metrics")
    assert conversation not in answer.text  # no raw path, no id in any label

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    route = "/v1/conversations/{conversation_id}/messages"
    assert delta("chinwag_http_requests_total", route=route, method="POST", status="201") == 3
    assert delta("chinwag_http_request_duration_seconds_count", route=route, method="POST") == 3
    assert delta("chinwag_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert delta("chinwag_http_requests_total", route="/healthz", method="OTHER", status="405") == 1
    assert delta("chinwag_messages_stored_total") == 3
    assert delta("chinwag_authentications_total", outcome="refused", reason="malformed") == 1
    assert (
        _value(after, "chinwag_authentications_total", outcome="accepted", reason="identity_token")
        >= 1
    )


async def test_metrics_see_sockets_and_fan_out(
    server: RunningServer, client: httpx.AsyncClient, alice: dict[str, str], bob: dict[str, str]
) -> None:
    made = await client.post("/v1/conversations", json={"participants": ["bob"]}, headers=alice)
    conversation = made.json()["id"]
    before = await _metrics(client)
    bob_token = bob["Authorization"].split(" ", 1)[1]
    async with connect(f"{server.ws_url}/v1/websocket?session_token={bob_token}") as ws:
        assert json.loads(await ws.recv())["type"] == "hello"
        while json.loads(await ws.recv())["type"] != "caught_up":
            pass
        during = await _metrics(client)
        body = {"id": str(uuid.uuid4()), "parts": [{"mime_type": "text/plain", "body": "x"}]}
        await client.post(f"/v1/conversations/{conversation}/messages", json=body, headers=alice)
        while json.loads(await ws.recv()).get("type") != "event":
            pass
    after = await _metrics(client)
    sockets = "chinwag_open_websockets"
    assert _value(during, sockets) - _value(before, sockets) == 1
    fanout = "chinwag_fanout_seconds_count"
    assert _value(after, fanout) - _value(before, fanout) >= 1
    sent = "chinwag_doorbells_total"
    assert _value(after, sent, event="sent") > _value(before, sent, event="sent")
    # One node: its doorbells ring its own sockets directly; "received" counts other nodes'.
    assert _value(after, sent, event="received") == _value(before, sent, event="received")


async def test_metrics_are_refused_outside_the_configured_networks(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'c.db'}",
        metrics_networks=["10.0.0.0/8"],
        trusted_proxies=["127.0.0.1"],
    )
    async with run_server(settings) as server, httpx.AsyncClient(base_url=server.url) as client:
        refused = await client.get("/metrics")
        forwarded = await client.get("/metrics", headers={"X-Forwarded-For": "10.1.2.3"})
        spoofed = await client.get("/metrics", headers={"X-Forwarded-For": "10.1.2.3, 8.8.8.8"})
    assert refused.status_code == 404
    assert refused.json()["error"]["id"] == "not_found"
    assert forwarded.status_code == 200  # the trusted proxy says the client is inside
    assert "chinwag_http_requests_total" in forwarded.text
    assert spoofed.status_code == 404  # the proxy saw 8.8.8.8: the 10.x hop is the client's claim
