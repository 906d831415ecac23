"""Fixtures most server tests share: one app, and two users signed in to it."""

from __future__ import annotations

import httpx
import pytest

from tests.support import AppFixture, RunningServer, bearer, make_app


@pytest.fixture
async def app(server: RunningServer) -> AppFixture:
    return await make_app(server.services)


@pytest.fixture
async def alice(
    server: RunningServer, client: httpx.AsyncClient, app: AppFixture
) -> dict[str, str]:
    return await bearer(client, app, "alice", server.clock.now())


@pytest.fixture
async def bob(server: RunningServer, client: httpx.AsyncClient, app: AppFixture) -> dict[str, str]:
    return await bearer(client, app, "bob", server.clock.now())
