"""Test helpers shared by every suite: real servers, real databases, real keys."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import uvicorn
from fastapi import FastAPI

from chinwag.clock import ManualClock
from chinwag.core.keys import Alg, generate_key_pair, sign_identity_token
from chinwag.server.app import create_app
from chinwag.server.handlers import apps as app_handlers
from chinwag.server.services import Services
from chinwag.server.serving import ChinwagServer
from chinwag.server.settings import Settings

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page

__all__ = [
    "PG_ADMIN_URL",
    "AppFixture",
    "RunningServer",
    "bearer",
    "make_app",
    "open_page",
    "postgres_database",
    "run_asgi",
    "run_server",
    "sign",
    "sign_in",
]

PG_ADMIN_URL = os.environ.get("CHINWAG_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test; dropped afterwards."""
    name = f"chinwag_t_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@dataclass
class RunningServer:
    url: str
    app: FastAPI
    clock: ManualClock
    settings: Settings

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def run_server(
    settings: Settings, clock: ManualClock | None = None, log_level: str = "warning"
) -> AsyncIterator[RunningServer]:
    """Run chinwag on a real loopback port inside the test's event loop."""
    clock = clock or ManualClock(start=__import__("time").time())
    app = create_app(settings, clock=clock)
    port = _free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level=log_level,
        lifespan="on",
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_timeout,
    )
    server = ChinwagServer(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    else:  # pragma: no cover
        raise RuntimeError("server did not start")
    try:
        yield RunningServer(url=f"http://127.0.0.1:{port}", app=app, clock=clock, settings=settings)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=15)


@dataclass
class AppFixture:
    """A registered app with one key of the requested algorithm, ready to sign tokens."""

    app_id: str
    kid: str
    alg: Alg
    private_key_pem: str | None = None
    secret: str | None = None
    dev_kid: str | None = None

    def token(self, claims: dict[str, Any], *, kid: str | None = None) -> str:
        return sign(
            claims,
            kid=kid or self.kid,
            alg=self.alg,
            private_key_pem=self.private_key_pem,
            secret=self.secret,
        )


def sign(
    claims: dict[str, Any],
    *,
    kid: str,
    alg: Alg,
    private_key_pem: str | None = None,
    secret: str | None = None,
) -> str:
    return sign_identity_token(
        claims, kid=kid, alg=alg, private_key_pem=private_key_pem, secret=secret
    )


async def make_app(
    services: Services,
    *,
    alg: Alg = Alg.ES256,
    production: bool = False,
    allow_anonymous: bool = False,
    require_nonce: bool = True,
    session_lifetime: int = app_handlers.DEFAULT_SESSION_LIFETIME,
    max_token_age: int = app_handlers.DEFAULT_MAX_TOKEN_AGE,
    upload: bool = False,
) -> AppFixture:
    app, dev = await app_handlers.create_app(
        services,
        "test app",
        production=production,
        allow_anonymous=allow_anonymous,
        require_nonce=require_nonce,
        session_lifetime=session_lifetime,
        max_token_age=max_token_age,
    )
    dev_kid = dev.record.kid if dev else None
    if alg is Alg.HS256:
        key = await app_handlers.add_secret(services, app.id)
        return AppFixture(app.id, key.record.kid, alg, secret=key.secret, dev_kid=dev_kid)
    if upload:
        pair = generate_key_pair(alg)
        key = await app_handlers.add_public_key(services, app.id, pair.public_key_pem, alg.value)
        return AppFixture(
            app.id, key.record.kid, alg, private_key_pem=pair.private_key_pem, dev_kid=dev_kid
        )
    key = await app_handlers.generate_key(services, app.id, alg.value)
    return AppFixture(
        app.id, key.record.kid, alg, private_key_pem=key.private_key_pem, dev_kid=dev_kid
    )


async def get_nonce(client: httpx.AsyncClient, app_id: str) -> str:
    response = await client.post("/v1/nonces", json={"app_id": app_id})
    assert response.status_code == 201, response.text
    return str(response.json()["nonce"])


async def login(
    client: httpx.AsyncClient, app: AppFixture, user_id: str, now: float, **extra: Any
) -> dict[str, Any]:
    """nonce → identity token → session; returns the session response body."""
    nonce = await get_nonce(client, app.app_id)
    token = app.token({"sub": user_id, "nce": nonce, "iat": int(now), **extra})
    response = await client.post(
        "/v1/sessions", json={"app_id": app.app_id, "identity_token": token}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def bearer(
    client: httpx.AsyncClient, app: AppFixture, user_id: str, now: float, **claims: Any
) -> dict[str, str]:
    """Sign ``user_id`` in and return the ``Authorization`` header of the new session."""
    session = await login(client, app, user_id, now, **claims)
    return {"Authorization": f"Bearer {session['session_token']}"}


@contextlib.asynccontextmanager
async def run_asgi(app: Any) -> AsyncIterator[str]:
    """Any small ASGI app (a stand-in for an app's own backend) on a loopback port; its URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=_free_port(), log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=15)


async def open_page(browser: Browser) -> tuple[BrowserContext, Page, list[str]]:
    """A fresh context (its own sessionStorage: a separate device) with one page, and the
    list its uncaught script errors go to."""
    context = await browser.new_context(viewport={"width": 1000, "height": 560})
    context.set_default_timeout(8_000)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return context, page, errors


async def sign_in(
    page: Page, server: RunningServer, app: AppFixture, user_id: str, name: str
) -> None:
    """Sign in on the web client's form through the sample provider, as a person would."""
    await page.goto(f"{server.url}/?app={app.app_id}")
    await page.fill("#user-id", user_id)
    await page.fill("#display-name", name)
    await page.click("#sign-in-button")
    await page.wait_for_selector("#status[data-state=online]")
