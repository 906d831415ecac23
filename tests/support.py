"""Test helpers shared by every suite: real servers, real databases, real keys."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import secrets
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm, RSAPSSAlgorithm

from chinwag.clock import ManualClock
from chinwag.core.keys import Alg, GeneratedKeyPair, generate_key_pair, sign_identity_token
from chinwag.server.app import create_app
from chinwag.server.handlers import apps as app_handlers
from chinwag.server.services import Services
from chinwag.server.serving import ChinwagServer, uvicorn_config
from chinwag.server.settings import Settings
from chinwag.server.storage.database import Database

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page

__all__ = [
    "PG_ADMIN_URL",
    "AppFixture",
    "JwksEndpoint",
    "RawWebSocket",
    "RunningServer",
    "ServerProcess",
    "bearer",
    "deflate_bomb",
    "frame_head",
    "free_port",
    "jwk_for",
    "make_app",
    "open_page",
    "peak_rss",
    "platform_key",
    "postgres_database",
    "reset_peak_rss",
    "run_asgi",
    "run_server",
    "serve_in_subprocess",
    "serve_nodes",
    "sign",
    "sign_in",
    "vm_rss",
]

PyJWK_algorithms: dict[Alg, Any] = {
    Alg.ES256: ECAlgorithm,
    Alg.RS256: RSAAlgorithm,
    Alg.PS256: RSAPSSAlgorithm,
    Alg.EDDSA: OKPAlgorithm,
}

PG_ADMIN_URL = os.environ.get("CHINWAG_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


async def pg_connect(database_url: str) -> asyncpg.Connection:
    """A plain asyncpg connection of the test's own to a chinwag database URL (one that
    terminates the server's backends, holds a lock, reads what was stored)."""
    return await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))


POSTGRES_ONLY = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
"""For a module's ``pytestmark``: the shared ``database_url`` fixture (``conftest.py``)
with only its PostgreSQL database."""


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


@contextlib.asynccontextmanager
async def migrated_database(url: str, **options: Any) -> AsyncIterator[Database]:
    """A :class:`Database` on ``url`` (``options``: its keyword arguments), migrated, and
    closed afterwards: what storage tests need without a server."""
    database = Database(url, **options)
    await database.migrate()
    try:
        yield database
    finally:
        await database.close()


@dataclass
class RunningServer:
    url: str
    app: FastAPI
    clock: ManualClock
    settings: Settings
    uvicorn: ChinwagServer | None = None
    """The uvicorn server itself: a test may change its ``config`` for new connections."""

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
        yield RunningServer(f"http://127.0.0.1:{port}", app, clock, settings, uvicorn=server)
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
    database_url: str,
    log_path: Path,
    *,
    env: dict[str, str] | None = None,
    extra_args: tuple[str, ...] = (),
) -> AsyncIterator[ServerProcess]:
    """Run the real CLI entry point (uvicorn's own log config, access log on) and wait
    until it answers; stopped with SIGINT, like Ctrl-C, so it shuts down cleanly."""
    port = free_port()
    args = ["serve", "--port", str(port), "--database-url", database_url, *extra_args]
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


@contextlib.asynccontextmanager
async def serve_nodes(
    database_url: str, log_dir: Path, *, count: int = 2, env: dict[str, str] | None = None
) -> AsyncIterator[list[ServerProcess]]:
    """``count`` ``chinwag serve`` processes on one database (several nodes of one
    deployment; give them one Redis in ``env`` to share doorbells and limits). Started one
    after the other: a failed start then leaves no process behind."""
    async with contextlib.AsyncExitStack() as stack:
        nodes = []
        for n in range(count):
            log_path = log_dir / f"node{n}.log"
            serving = serve_in_subprocess(
                database_url, log_path, env=env, extra_args=("--no-dev-app",)
            )
            nodes.append(await stack.enter_async_context(serving))
        yield nodes


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


async def platform_key(
    services: Services, role: str = "admin", app_id: str | None = None
) -> dict[str, str]:
    """A new platform API key's ``Authorization`` header (``app`` keys need ``app_id``)."""
    from chinwag.server.handlers.api_keys import create_api_key

    _, token = await create_api_key(services, role, app_id=app_id)
    return {"Authorization": f"Bearer {token}"}


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


def frame_head(length: int, *, compressed: bool = False) -> bytes:
    """A masked WebSocket text frame's header (mask 0: the payload goes as it is)."""
    first = 0x80 | 0x01 | (0x40 if compressed else 0)
    return struct.pack("!BBQ", first, 0x80 | 127, length) + b"\0\0\0\0"


def deflate_bomb(size: int) -> bytes:
    """``size`` zero bytes, deflated as permessage-deflate does, built without holding them."""
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    chunk = bytes(64 * 1024)
    parts = [compressor.compress(chunk) for _ in range(size // len(chunk))]
    parts.append(compressor.flush(zlib.Z_SYNC_FLUSH))
    return b"".join(parts)[:-4]  # without the 00 00 ff ff tail (RFC 7692)


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


def jwk_for(pair: GeneratedKeyPair, kid: str, **extra: Any) -> dict[str, Any]:
    """The public half of ``pair`` as a JWK with ``kid`` and ``alg`` (and ``extra``)."""
    public = serialization.load_pem_public_key(pair.public_key_pem.encode())
    jwk: dict[str, Any] = json.loads(PyJWK_algorithms[pair.alg].to_jwk(public))
    return {**jwk, "kid": kid, "alg": str(pair.alg), **extra}


class JwksEndpoint:
    """An app's backend publishing its JWK Set, on a loopback port in a thread of its own
    (so sync CLI tests and async server tests can both use it).

    Set ``keys`` (JWK dicts) to rotate; ``mode`` is ``ok``, ``down`` (500), ``redirect``
    (302), ``huge`` (a body past any limit), or ``drip`` (headers, then a byte every 0.2 s);
    ``delay`` holds every answer that long; ``hits`` counts requests.
    """

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.cache_control: str | None = None
        self.mode = "ok"
        self.delay = 0.0
        self.hits = 0
        self.hit = threading.Event()
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                endpoint.hits += 1
                endpoint.hit.set()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError, TimeoutError):
                    endpoint.answer(self)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/jwks.json"

    def answer(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        time.sleep(self.delay)
        if self.mode == "down":
            handler.send_error(500)
            return
        if self.mode == "redirect":
            handler.send_response(302)
            handler.send_header("Location", "https://example.com/jwks.json")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        body = json.dumps({"keys": self.keys}).encode()
        if self.mode == "huge":
            body = b'{"keys": [' + b" " * (1024 * 1024) + b"]}"
        handler.send_response(200)
        handler.send_header("Content-Type", "application/jwk-set+json")
        if self.cache_control:
            handler.send_header("Cache-Control", self.cache_control)
        if self.mode == "drip":
            handler.end_headers()
            for byte in body[:50]:
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                time.sleep(0.2)
            return
        if self.mode != "huge":  # huge: no Content-Length, so the cut-off must stream
            handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def __enter__(self) -> JwksEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


class Receiver:
    """An HTTP receiver on loopback (webhook endpoint, push gateway) that records each
    POST and answers ``status``; ``hang`` never answers, ``huge`` streams 100 MB back,
    ``redirect`` answers 302. While ``held`` is set to an event, answers wait for it (a
    delivery in flight). Tests wait on :meth:`wait_for`, not on sleeps."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.answered: list[Received] = []
        """Requests answered with a 2xx."""
        self.status = 200
        self.mode = "answer"
        self.held: asyncio.Event | None = None
        self._changed = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._stopped = asyncio.Event()
        self.url = ""

    async def __aenter__(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self._stopped.set()
        for writer in self._writers:
            writer.close()
        for task in list(self._tasks):
            await task
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self._serve_requests(reader, writer)
        finally:
            writer.close()
            self._writers.discard(writer)
            self._tasks.discard(task)

    async def _serve_requests(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")[1:]
                headers = {
                    k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines if ln)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                got = Received(headers, body)
                self.requests.append(got)
                self._changed.set()
                if not await self._answer(writer, got):
                    return

    async def _answer(self, writer: asyncio.StreamWriter, got: Received) -> bool:
        if self.held is not None:
            await self.held.wait()
        if self.mode == "hang":
            await self._stopped.wait()
            return False
        if self.mode == "huge":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 104857600\r\n\r\n")
            chunk = b"x" * 65536
            for _ in range(1600):
                writer.write(chunk)
                await writer.drain()
            return False
        if self.mode == "redirect":
            writer.write(
                b"HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:1/\r\ncontent-length: 0\r\n\r\n"
            )
            await writer.drain()
            return True
        if 200 <= self.status < 300:
            self.answered.append(got)
            self._changed.set()
        writer.write(f"HTTP/1.1 {self.status} X\r\ncontent-length: 2\r\n\r\nok".encode())
        await writer.drain()
        return True

    async def wait_for(self, predicate: Any, timeout: float = 20) -> None:
        """Until ``predicate()`` holds (checked whenever a request arrives)."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


# -- webhooks and push (the platform API with the stand-in admin key) --

ADMIN: dict[str, str] = {}
"""An admin API key's ``Authorization`` header, made for each test's database by the
``platform_admin`` fixture (tests/server/conftest.py)."""


def hook_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "auth_rate_per_second": 0,
        "dev_allow_http_loopback": True,
        "webhook_poll_interval": 0.05,
        "webhook_retry_schedule": [10, 10],
        "webhook_timeout": 1,
        "push_delay": 0,
    }
    return Settings(**{**values, **overrides})


async def start(client: httpx.AsyncClient, headers: dict[str, str], *others: str) -> str:
    answer = await client.post(
        "/v1/conversations", json={"participants": list(others)}, headers=headers
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


async def send(client: httpx.AsyncClient, headers: dict[str, str], conv: str, body: str) -> None:
    message = {"id": str(uuid.uuid4()), "parts": [{"mime_type": "text/plain", "body": body}]}
    answer = await client.post(f"/v1/conversations/{conv}/messages", json=message, headers=headers)
    assert answer.status_code == 201, answer.text


async def eventually(check: Any, timeout: float = 20) -> None:
    """For state the test cannot be told about (a row the worker updates)."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


async def read_whole_stream(
    client: httpx.AsyncClient, headers: dict[str, str], after: int = 0, limit: int = 1000
) -> list[dict[str, Any]]:
    """The caller's whole event stream after ``after`` over REST, page by page (``limit``
    each), asserting the cursors are dense: the one way every stream test reads it."""
    found: list[dict[str, Any]] = []
    while True:
        page = await client.get(f"/v1/events?after={after}&limit={limit}", headers=headers)
        body = page.json()
        for item in body["events"]:
            assert item["cursor"] == after + 1
            after = item["cursor"]
            found.append(item["event"])
        if not body["has_more"]:
            return found
