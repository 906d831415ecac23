"""Test helpers shared by every suite: real servers, real databases, real keys."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
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
from chinwag.server.serving import ChinwagServer, uvicorn_config
from chinwag.server.settings import Settings

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page

__all__ = [
    "PG_ADMIN_URL",
    "PLATFORM_KEY",
    "AppFixture",
    "RawWebSocket",
    "RunningServer",
    "ServerProcess",
    "bearer",
    "free_port",
    "make_app",
    "open_page",
    "peak_rss",
    "platform_headers",
    "postgres_database",
    "reset_peak_rss",
    "run_asgi",
    "run_server",
    "serve_in_subprocess",
    "sign",
    "sign_in",
    "vm_rss",
]

PG_ADMIN_URL = os.environ.get("CHINWAG_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


PLATFORM_KEY = "cwk_standin_" + "k" * 43
"""The admin API key tests give ``Settings.platform_stand_in_key`` (a stand-in until the
API-key module lands; then tests create a real key instead)."""


def platform_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {PLATFORM_KEY}"}


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


def free_port() -> int:
    """A loopback port nobody listens on (yet)."""
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
    port = free_port()
    config = uvicorn_config(
        app, settings, host="127.0.0.1", port=port, log_level=log_level, lifespan="on"
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
class ServerProcess:
    """``chinwag serve`` in a child process; ``output`` is its stdout and stderr so far."""

    url: str
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.asynccontextmanager
async def serve_in_subprocess(
    database_url: str, log_path: Path, *, env: dict[str, str] | None = None
) -> AsyncIterator[ServerProcess]:
    """Run the real CLI entry point (uvicorn's own log config, access log on) and wait
    until it answers; stopped with SIGINT, like Ctrl-C, so it shuts down cleanly."""
    port = free_port()
    args = ["serve", "--port", str(port), "--database-url", database_url]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "chinwag.cli.main", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "200", **(env or {})},
        )
    running = ServerProcess(f"http://127.0.0.1:{port}", log_path, process)
    try:
        async with httpx.AsyncClient(base_url=running.url) as client:
            for _ in range(300):
                if process.poll() is not None:
                    raise RuntimeError(f"server exited: {running.output}")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        yield running
    finally:
        process.send_signal(signal.SIGINT)
        try:
            await asyncio.to_thread(process.wait, 15)
        except subprocess.TimeoutExpired:  # pragma: no cover
            process.kill()
            process.wait()


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


@dataclass
class RawWebSocket:
    """A WebSocket client that reads only when told to: websockets' sans-I/O client over a
    plain stream, for sockets that stop reading, frames no library would send, and limits.

    ``rcvbuf`` shrinks the socket's kernel receive buffer, and the stream reader pauses at
    a few KiB, so a client that is not reading pushes back on the server almost at once.
    """

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    protocol: Any
    response: Any

    @classmethod
    async def open(
        cls,
        url: str,
        token: str | None = None,
        *,
        rcvbuf: int | None = None,
        compress: bool = False,
    ) -> RawWebSocket:
        """``compress`` offers permessage-deflate (the server may decline it)."""
        from websockets.client import ClientProtocol
        from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
        from websockets.uri import parse_uri

        uri = parse_uri(url)
        sock = socket.socket()
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (uri.host, uri.port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
        extensions = [ClientPerMessageDeflateFactory()] if compress else None
        protocol = ClientProtocol(uri, max_size=None, extensions=extensions)
        request = protocol.connect()
        if token is not None:
            request.headers["Authorization"] = f"Bearer {token}"
        protocol.send_request(request)
        raw = cls(reader, writer, protocol, None)
        raw.flush()
        async with asyncio.timeout(10):
            while raw.response is None:
                await raw.read_once()
        return raw

    def flush(self) -> None:
        data = b"".join(self.protocol.data_to_send())
        if data and not self.writer.is_closing():
            self.writer.write(data)

    async def read_once(self) -> list[Any]:
        """Read what has arrived (waiting for some); the frames it completed."""
        data = await self.reader.read(65536)
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
        self.flush()
        frames = []
        for event in self.protocol.events_received():
            if self.response is None:
                self.response = event
            else:
                frames.append(event)
        if not data and not frames:
            raise EOFError
        return frames

    async def closed(self, timeout: float = 20) -> tuple[int | None, str | None]:
        """Read to the end; the close code and reason the server sent."""
        async with asyncio.timeout(timeout):
            with contextlib.suppress(EOFError, ConnectionError):
                while True:
                    await self.read_once()
        self.writer.close()
        close = self.protocol.close_rcvd
        return (close.code, close.reason) if close is not None else (None, None)

    async def send_raw(self, data: bytes) -> None:
        """Bytes straight onto the socket, past the protocol (frames it would refuse)."""
        self.writer.write(data)
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field}")  # pragma: no cover


def vm_rss() -> int:
    """This process's resident memory, in bytes (Linux)."""
    return _status_bytes("VmRSS")


def reset_peak_rss() -> None:
    """Start :func:`peak_rss` over from the current resident memory (Linux)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def peak_rss() -> int:
    """The most resident memory since :func:`reset_peak_rss`, in bytes (Linux)."""
    return _status_bytes("VmHWM")


@contextlib.asynccontextmanager
async def run_asgi(app: Any) -> AsyncIterator[str]:
    """Any small ASGI app (a stand-in for an app's own backend) on a loopback port; its URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
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
