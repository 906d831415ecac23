"""``chinwag serve --workers 2`` on PostgreSQL and Redis: two processes on one port, and a
message sent through one reaches a socket held by the other (issue #10, part 5).

Which worker holds a connection is read from the kernel, not asked of the server: the
server-side socket of a connection is the one whose local port is the server's and whose
peer port is the client's (``/proc/net/tcp``), and the worker holding it is the one with
that socket's inode among its file descriptors.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect

from tests.support import postgres_database, serve_in_subprocess

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads /proc (Linux)"),
]


def _children(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(entry))
    return found


def _socket_inodes(server_port: int, client_port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if int(local.rsplit(":", 1)[1], 16) == server_port and (
                int(remote.rsplit(":", 1)[1], 16) == client_port
            ):
                inodes.add(f"socket:[{fields[9]}]")
    return inodes


def _worker_of(workers: list[int], server_port: int, client_port: int) -> int | None:
    inodes = _socket_inodes(server_port, client_port)
    for pid in workers:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return pid
        except OSError:
            continue
    return None


async def _until(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")


async def _session(url: str, app_id: str, user: str) -> str:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        nonce = (await client.post("/v1/nonces", json={"app_id": app_id})).json()["nonce"]
        minted = await client.post(
            "/v1/dev/identity_tokens", json={"app_id": app_id, "user_id": user, "nonce": nonce}
        )
        token = minted.json()["identity_token"]
        opened = await client.post("/v1/sessions", json={"app_id": app_id, "identity_token": token})
        assert opened.status_code == 201, opened.text
        return str(opened.json()["session_token"])


async def test_two_workers_share_the_port_and_messages_cross_them(tmp_path: Path) -> None:
    env = {
        "CHINWAG_WORKERS": "2",
        "CHINWAG_BROKER_URL": "redis://127.0.0.1:6379/0",
        "CHINWAG_BROKER_PREFIX": f"t{secrets.token_hex(6)}",
        "CHINWAG_AUTH_RATE_PER_SECOND": "0",
    }
    async with (
        postgres_database() as database_url,
        serve_in_subprocess(database_url, tmp_path / "server.log", env=env) as server,
    ):
        port = int(server.url.rsplit(":", 1)[1])
        workers = await _until(_two_workers(server.process.pid), "two workers", timeout=60)
        os.kill(workers[0], signal.SIGKILL)  # a worker dies: the parent replaces it
        workers = await _until(_two_workers(server.process.pid, not_in=workers), "a new worker")
        app_id = re.search(r"staging app\s+([0-9a-f-]{36})", server.output)
        assert app_id, server.output
        alice = await _session(server.url, app_id.group(1), "alice")
        bob = await _session(server.url, app_id.group(1), "bob")
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            made = await client.post(
                "/v1/conversations",
                json={"participants": ["bob"]},
                headers={"Authorization": f"Bearer {alice}"},
            )
            conversation = made.json()["id"]
        ws, bob_worker = await _until(
            lambda: _socket_on_some_worker(server.url, bob, workers, port), "bob's socket"
        )
        async with ws:
            other = next(pid for pid in workers if pid != bob_worker)
            client = await _until(
                lambda: _client_on(server.url, other, workers, port), "a connection to the other"
            )
            try:
                body = {
                    "id": str(uuid.uuid4()),
                    "parts": [{"mime_type": "text/plain", "body": "x"}],
                }
                sent = await client.post(
                    f"/v1/conversations/{conversation}/messages",
                    json=body,
                    headers={"Authorization": f"Bearer {alice}"},
                )
                assert sent.status_code == 201, sent.text
                assert _worker_of(workers, port, _client_port(sent)) == other
                event = await asyncio.wait_for(_next_event(ws), 15)
                assert event["data"]["message"]["id"] == body["id"]
                # Any worker's /metrics counts both (prometheus multiprocess mode).
                text = (await client.get("/metrics")).text
            finally:
                await client.aclose()
        # As one process does (docs/operations.md): drained, then dead of the signal.
        server.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(server.process.wait, 30)
        assert code == -signal.SIGTERM, server.output[-2000:]
    assert _children(server.process.pid) == []
    assert _sample(text, "chinwag_open_websockets") == 1
    assert _sample(text, "chinwag_messages_stored_total") == 1


def _two_workers(
    parent: int, not_in: list[int] | None = None
) -> Callable[[], Awaitable[list[int] | None]]:
    """Two live workers (one of them not ``not_in[0]``, the killed one)."""

    async def check() -> list[int] | None:
        await asyncio.sleep(0.1)
        found = _children(parent)
        if not_in and not_in[0] in found:
            return None
        return found if len(found) == 2 else None

    return check


async def _socket_on_some_worker(
    url: str, token: str, workers: list[int], port: int
) -> tuple[ClientConnection, int] | None:
    ws = await connect(url.replace("http://", "ws://") + f"/v1/websocket?session_token={token}")
    while json.loads(await ws.recv())["type"] != "caught_up":
        pass
    worker = _worker_of(workers, port, ws.local_address[1])
    if worker is None:
        await ws.close()
        return None
    return ws, worker


async def _client_on(
    url: str, wanted: int, workers: list[int], port: int
) -> httpx.AsyncClient | None:
    """A client whose (kept-alive) connection a given worker serves."""
    client = httpx.AsyncClient(base_url=url, timeout=30)
    answer = await client.get("/healthz")
    if _worker_of(workers, port, _client_port(answer)) == wanted:
        return client
    await client.aclose()
    return None


def _client_port(response: httpx.Response) -> int:
    return int(response.extensions["network_stream"].get_extra_info("client_addr")[1])


async def _next_event(ws: ClientConnection) -> dict[str, Any]:
    while True:
        frame = json.loads(await ws.recv())
        if frame.get("type") == "event" and frame["event"]["type"] == "message.created":
            return dict(frame["event"])


def _sample(text: str, name: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    raise AssertionError(f"{name} missing from {text[:500]}")


def test_more_workers_than_one_need_a_redis_broker(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "chinwag.cli.main", "serve", "--workers", "2", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CHINWAG_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"},
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "chinwag: --workers 2 needs a Redis broker (--broker-url redis://…): with memory:// "
        "each worker would see only its own clients' messages"
    ]
