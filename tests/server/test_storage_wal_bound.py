"""Under sustained sends the SQLite write-ahead log stays under its documented bound.

Before the bound (issue #13), passive checkpoints alone let the ``-wal`` file grow for as
long as writes never paused: 893 MB in a minute of a busy room. Two tests, a thread
sampling the file's size throughout each: writers that never pause, through
``Database.write`` (group commit), which grew the log to 137 MiB with passive checkpoints
only; and a real ``chinwag serve`` taking more message bytes than the bound over HTTP,
which also reports the disk growth per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import bindparam, insert

from chinwag.server.context import open_services
from chinwag.server.settings import Settings
from chinwag.server.storage.database import Database, Transaction
from chinwag.server.storage.engines.sqlite import WAL_BOUND_BYTES
from chinwag.server.storage.prepared import Prepared
from chinwag.server.storage.schema import server_secrets
from tests.support import bearer, make_app, send, serve_in_subprocess, start

pytestmark = pytest.mark.slow

BODY = 48 * 1024
SENDERS = 8
TARGET_BYTES = WAL_BOUND_BYTES + WAL_BOUND_BYTES // 4
"""More bytes than the bound: an unbounded log would pass it."""
_INSERT = Prepared(insert(server_secrets).values(name=bindparam("name"), value=bindparam("value")))


class SizeSampler:
    """The file's largest size, sampled every few milliseconds on a thread of its own
    (the test's event loop is busy sending)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.high = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SizeSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            with contextlib.suppress(FileNotFoundError):
                self.high = max(self.high, os.stat(self.path).st_size)


def _disk(path: Path) -> int:
    return sum(
        os.stat(f"{path}{suffix}").st_size
        for suffix in ("", "-wal")
        if os.path.exists(f"{path}{suffix}")
    )


async def _send_until(client: httpx.AsyncClient, headers: dict[str, str], conv: str) -> int:
    body = "x" * BODY
    deadline = time.monotonic() + 90
    done = asyncio.Event()
    counter = [0]

    async def sender() -> None:
        while not done.is_set():
            await send(client, headers, conv, body)
            counter[0] += 1
            if counter[0] * BODY >= TARGET_BYTES or time.monotonic() > deadline:
                done.set()

    await asyncio.gather(*(sender() for _ in range(SENDERS)))
    return counter[0]


async def test_writes_that_never_pause_keep_the_wal_under_its_bound(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.migrate()
    value = os.urandom(8192)
    written = 0

    async def writer(name: str) -> None:
        nonlocal written
        for i in range(TARGET_BYTES // len(value) // SENDERS + 1):

            async def job(tx: Transaction, key: str = f"{name}-{i}") -> None:
                await _INSERT.rowcount(tx.conn, {"name": key, "value": value})

            await db.write(job)
            written += len(value)

    try:
        with SizeSampler(Path(f"{path}-wal")) as wal:
            await asyncio.gather(*(writer(f"w{n}") for n in range(SENDERS)))
    finally:
        await db.close()
    assert written >= TARGET_BYTES
    assert 0 < wal.high < WAL_BOUND_BYTES, wal.high


async def test_sustained_sends_keep_the_wal_under_its_bound(tmp_path: Path) -> None:
    path = tmp_path / "bound.db"
    url = f"sqlite+aiosqlite:///{path}"
    async with open_services(Settings(database_url=url)) as services:
        app = await make_app(services)
    env = {"CHINWAG_AUTH_RATE_PER_SECOND": "0", "CHINWAG_RATE_LIMITS": "false"}
    async with serve_in_subprocess(url, tmp_path / "server.log", env=env) as server:
        limits = httpx.Limits(max_connections=SENDERS)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as client:
            headers = await bearer(client, app, "alice", time.time())
            await bearer(client, app, "bob", time.time())
            conv = await start(client, headers, "bob")
            before = _disk(path)
            with SizeSampler(Path(f"{path}-wal")) as wal:
                sent = await _send_until(client, headers, conv)
            grown = _disk(path) - before
    assert sent * BODY >= TARGET_BYTES, f"only {sent} messages in time"
    print(
        f"\n{sent} messages of {BODY} B: WAL high-water mark {wal.high / 2**20:.1f} MiB, "
        f"database + WAL grew {grown / sent:.0f} B per message"
    )
    assert 0 < wal.high < WAL_BOUND_BYTES
