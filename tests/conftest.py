"""Fixtures: every storage-touching test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from chinwag.clock import ManualClock
from chinwag.server.settings import Settings
from tests.support import RunningServer, pg_connect, postgres_database, run_server


@pytest.fixture(autouse=True)
def data_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test touches the real default database (``~/.local/share/chinwag``): each gets its
    own XDG_DATA_HOME, inherited by the servers and commands it starts."""
    data_home = tmp_path_factory.mktemp("xdg-data")
    monkeypatch.setenv("XDG_DATA_HOME", str(data_home))
    return data_home


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'chinwag.db'}"
    else:
        async with postgres_database() as url:
            yield url


@pytest.fixture
async def pg_admin(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the test's own to its PostgreSQL database (``POSTGRES_ONLY``)."""
    connection = await pg_connect(database_url)
    yield connection
    await connection.close()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, auth_rate_per_second=0)


@pytest.fixture
def clock() -> ManualClock:
    import time

    return ManualClock(start=time.time())


@pytest.fixture
async def server(settings: Settings, clock: ManualClock) -> AsyncIterator[RunningServer]:
    async with run_server(settings, clock) as running:
        yield running


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        yield http
