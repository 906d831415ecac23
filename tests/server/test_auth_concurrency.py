"""One nonce, many racers: exactly one session, on one node and across two nodes sharing a
PostgreSQL database (the single-packet / limit-overrun class, R22)."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest
from sqlalchemy import func, select

from chinwag.clock import ManualClock
from chinwag.server.settings import Settings
from chinwag.server.storage.schema import consumed_nonces, sessions
from tests.support import (
    AppFixture,
    RunningServer,
    get_nonce,
    make_app,
    postgres_database,
    run_server,
)

RACERS = 50


def tokens_for(app: AppFixture, nonce: str, now: float) -> list[str]:
    """Fifty *different* valid tokens (different users) carrying the same nonce."""
    return [app.token({"sub": f"user-{i}", "nce": nonce, "iat": int(now)}) for i in range(RACERS)]


async def fire(clients: list[httpx.AsyncClient], app_id: str, tokens: list[str]) -> Counter[str]:
    async def one(i: int, token: str) -> str:
        client = clients[i % len(clients)]
        response = await client.post(
            "/v1/sessions", json={"app_id": app_id, "identity_token": token}
        )
        if response.status_code == 201:
            return "201"
        assert response.status_code == 401, response.text
        return str(response.json()["error"]["data"]["reason"])

    results = await asyncio.gather(*(one(i, t) for i, t in enumerate(tokens)))
    return Counter(results)


async def session_count(server: RunningServer, app_id: str) -> int:
    async with server.services.db.read() as conn:
        count = await conn.scalar(
            select(func.count()).select_from(sessions).where(sessions.c.app_id == app_id)
        )
    return int(count or 0)


async def test_fifty_concurrent_uses_of_one_nonce_make_one_session(
    server: RunningServer,
) -> None:
    app = await make_app(server.services)
    limits = httpx.Limits(max_connections=RACERS, max_keepalive_connections=RACERS)
    async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:
        nonce = await get_nonce(client, app.app_id)
        results = await fire([client], app.app_id, tokens_for(app, nonce, server.clock.now()))
    assert results == Counter({"201": 1, "nonce_used": RACERS - 1})
    assert await session_count(server, app.app_id) == 1
    async with server.services.db.read() as conn:
        assert await conn.scalar(select(func.count()).select_from(consumed_nonces)) == 1


async def test_fifty_replays_of_one_token_make_one_session(server: RunningServer) -> None:
    app = await make_app(server.services)
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        nonce = await get_nonce(client, app.app_id)
        token = app.token({"sub": "alice", "nce": nonce, "iat": int(server.clock.now())})
        results = await fire([client], app.app_id, [token] * RACERS)
    assert results == Counter({"201": 1, "nonce_used": RACERS - 1})
    assert await session_count(server, app.app_id) == 1


async def test_fifty_concurrent_uses_of_one_jti_make_one_session(server: RunningServer) -> None:
    app = await make_app(server.services, require_nonce=False)
    now = int(server.clock.now())
    tokens = [app.token({"sub": f"u{i}", "iat": now, "jti": "same"}) for i in range(RACERS)]
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        results = await fire([client], app.app_id, tokens)
    assert results == Counter({"201": 1, "jti_used": RACERS - 1})
    assert await session_count(server, app.app_id) == 1


@pytest.mark.postgres
async def test_two_nodes_sharing_postgresql_make_one_session() -> None:
    clock = ManualClock(start=__import__("time").time())
    async with postgres_database() as url:
        settings = Settings(database_url=url, auth_rate_per_second=0)
        async with run_server(settings, clock) as first, run_server(settings, clock) as second:
            assert first.url != second.url
            app = await make_app(first.services)
            async with (
                httpx.AsyncClient(base_url=first.url, timeout=60) as a,
                httpx.AsyncClient(base_url=second.url, timeout=60) as b,
            ):
                # A nonce from node one is good on node two: the seal secret is shared.
                nonce = await get_nonce(b, app.app_id)
                results = await fire([a, b], app.app_id, tokens_for(app, nonce, clock.now()))
            assert results == Counter({"201": 1, "nonce_used": RACERS - 1})
            assert await session_count(first, app.app_id) == 1
            assert await session_count(second, app.app_id) == 1
