"""Real processes for the fault tests: ``chinwag serve`` nodes, a TCP proxy standing in for
a load balancer, and SDK devices whose every received and acknowledged message is counted.

Every wait has a bound and waits on something observable (a health check, a counter
reaching a number), never on a bare sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from chinwag.client import Client
from chinwag.core.backoff import Backoff
from tests.support import AppFixture, free_port

__all__ = ["Device", "Node", "Proxy", "acknowledged", "received", "until"]

ROOT = Path(__file__).resolve().parents[2]


async def until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


def acknowledged(device: Device, ids: Collection[str]) -> Callable[[], bool]:
    """For :func:`until`: whether ``device`` has had each of ``ids`` acknowledged."""
    return lambda: set(ids) <= device.acknowledged


def received(device: Device, ids: Collection[str]) -> Callable[[], bool]:
    """For :func:`until`: whether each of ``ids`` has been applied on ``device``."""
    return lambda: all(device.received[m] for m in ids)


@dataclass
class Node:
    """``chinwag serve`` in a child process on PostgreSQL and the test's Redis."""

    name: str
    database_url: str
    broker_url: str
    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"node-{self.name}.log"

    def launch(self) -> None:
        env = {
            **os.environ,
            "CHINWAG_AUTH_RATE_PER_SECOND": "0",
            "CHINWAG_RATE_LIMITS": "false",
            "CHINWAG_LOG_LEVEL": "warning",
        }
        command = [sys.executable, "-m", "chinwag.cli.main", "serve", "--no-dev-app"]
        command += ["--port", str(self.port), "--database-url", self.database_url]
        command += ["--broker-url", self.broker_url]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log, env=env, cwd=ROOT)

    async def wait_healthy(self, timeout: float = 60) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=1) as http:
            deadline = time.monotonic() + timeout
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise AssertionError(f"node {self.name} exited: {self.log()[-2000:]}")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/healthz")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise AssertionError(f"node {self.name} did not start")
                await asyncio.sleep(0.1)

    def kill(self) -> None:
        """``kill -9``: no shutdown, no goodbye to any socket."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Proxy:
    """A TCP forwarder to one node, as a load balancer would be; :meth:`retarget` sends
    new connections elsewhere and cuts the current ones (devices reconnect through it)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    def retarget(self, port: int) -> None:
        self.target_port = port
        for writer in list(self._writers):
            writer.transport.abort()

    async def close(self) -> None:
        self.retarget(self.target_port)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()


@dataclass
class Device:
    """One SDK client signed in as ``user_id`` through ``url``; counts what it sees."""

    user_id: str
    client: Client
    received: Counter[str] = field(default_factory=Counter)
    """message id → how many times a ``message.created`` for it was applied here."""
    acknowledged: set[str] = field(default_factory=set)
    deauthenticated: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, url: str, app: AppFixture, user_id: str, store_dir: Path) -> Device:
        async def provider(nonce: str, needs_refresh: bool) -> str:
            return app.token({"sub": user_id, "nce": nonce, "iat": int(time.time())})

        client = Client(
            url,
            app.app_id,
            store_dir=store_dir,
            identity_token_provider=provider,
            backoff=Backoff(base=0.2, cap=2.0),
        )
        device = cls(user_id, client)
        client.on("changes", device._changes)
        client.on("message_sent", device.acknowledged.add)
        client.on("deauthenticated", device.deauthenticated.append)
        return device

    def _changes(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            if event.get("type") == "message.created":
                self.received[event["data"]["message"]["id"]] += 1

    async def start(self) -> None:
        await self.client.connect()
        await self.client.authenticate()
        await self.client.wait_until_synced()

    async def stop(self) -> None:
        await self.client.close()


async def gather_all(*waits: Awaitable[Any]) -> list[Any]:
    return list(await asyncio.gather(*waits))
