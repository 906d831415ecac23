"""Client tests run against a real server on loopback; SQLite behind it keeps them quick
(the server's storage is covered on PostgreSQL by tests/server)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chinwag.client import Backoff, Client
from tests.support import AppFixture, RunningServer, make_app

FAST = Backoff(base=0.02, cap=0.2)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'server.db'}"


@pytest.fixture
async def app(server: RunningServer) -> AppFixture:
    return await make_app(server.services, allow_anonymous=True)


class Tokens:
    """A stand-in for the app's own backend: signs identity tokens, counts the calls."""

    def __init__(self, server: RunningServer, app: AppFixture) -> None:
        self.server = server
        self.app = app
        self.calls: list[tuple[str, bool]] = []

    def sign(self, user_id: str, nonce: str | None = None, **claims: Any) -> str:
        body: dict[str, Any] = {"sub": user_id, "iat": int(self.server.clock.now()), **claims}
        if nonce is not None:
            body["nce"] = nonce
        return self.app.token(body)

    def provider(self, user_id: str, **claims: Any) -> Callable[[str, bool], Any]:
        async def provide(nonce: str, needs_refresh: bool) -> str:
            self.calls.append((nonce, needs_refresh))
            return self.sign(user_id, nonce, **claims)

        return provide


@pytest.fixture
def tokens(server: RunningServer, app: AppFixture) -> Tokens:
    return Tokens(server, app)


@pytest.fixture
def make_client(server: RunningServer, app: AppFixture, tmp_path: Path) -> Callable[..., Client]:
    def build(device: str = "device", **options: Any) -> Client:
        options.setdefault("backoff", FAST)
        return Client(
            options.pop("base_url", server.url),
            options.pop("app_id", app.app_id),
            store_dir=tmp_path / device,
            **options,
        )

    return build
