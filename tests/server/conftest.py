"""Fixtures most server tests share: one app, and two users signed in to it."""

from __future__ import annotations

import httpx
import pytest

from tests.support import ADMIN, AppFixture, RunningServer, bearer, make_app, platform_key


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


@pytest.fixture
async def platform_admin(server: RunningServer) -> None:
    """Fill ``tests.support.ADMIN`` with a real admin API key for this test's database."""
    ADMIN.clear()
    ADMIN.update(await platform_key(server.services))
