"""PostgreSQL backends terminated under a real ``chinwag serve`` while SDK clients send.

A loop over a connection of the test's own runs ``pg_terminate_backend`` on every backend
the server holds, again and again, while three pairs of SDK clients each send a stream of
messages. Asserted: the server answers only clean 503s for it (no 500, no traceback) or
none at all (a send whose write lane lost its connection runs again on a pooled one), the
SDK retries the 503s, every message is stored exactly once, and each arrives on the other
device of its pair exactly once.
"""

from __future__ import annotations

import asyncio
import collections
import re
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx
import pytest

from chinwag.client import Backoff, Client, ClientEvent, Message
from chinwag.server.context import open_services
from chinwag.server.settings import Settings
from tests.support import POSTGRES_ONLY, AppFixture, make_app, pg_connect, serve_in_subprocess

# ~20-40 s: a server and 6 clients
pytestmark = [pytest.mark.slow, pytest.mark.postgres, POSTGRES_ONLY]

PAIRS = 3
MESSAGES = 20
"""Per sender: 6 senders, 120 messages."""
EVERY = 0.25
"""Seconds between rounds of terminations: often enough that many requests meet one, rare
enough that a request on a loaded CI machine can also finish between two."""
WAIT = 45.0


async def _app(database_url: str) -> AppFixture:
    """The app, made through the server's handlers before the server starts."""
    async with open_services(Settings(database_url=database_url)) as services:
        return await make_app(services)


class Device:
    """One SDK client and the other users' messages it has been told about."""

    def __init__(self, url: str, app: AppFixture, user_id: str, store: Path) -> None:
        self.user_id = user_id

        async def provide(nonce: str, _needs_refresh: bool) -> str:
            return app.token({"sub": user_id, "nce": nonce, "iat": int(time.time())})

        self.client = Client(
            url,
            app.app_id,
            store_dir=store / user_id,
            identity_token_provider=provide,
            backoff=Backoff(base=0.05, cap=0.5),
        )
        self.received: collections.Counter[str] = collections.Counter()
        self.acknowledged: set[str] = set()
        self.changed = asyncio.Event()
        self.client.on(ClientEvent.MESSAGE, self._message)
        self.client.on(ClientEvent.MESSAGE_SENT, self._sent)

    def _sent(self, message_id: str) -> None:
        self.acknowledged.add(message_id)
        self.changed.set()

    def _message(self, message: Message) -> None:
        if message.sender_id != self.user_id:
            self.received[message.id] += 1
            self.changed.set()

    async def until(self, done: Callable[[], bool]) -> None:
        while not done():
            self.changed.clear()
            await self.changed.wait()


async def _terminate(admin: asyncpg.Connection, stop: asyncio.Event) -> int:
    """Terminate the server's backends every ``EVERY`` s until ``stop``; how many it ended."""
    ended = 0
    while not stop.is_set():
        rows = await admin.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        ended += len(rows)
        await asyncio.sleep(EVERY)
    return ended


async def _signed_in(devices: list[Device]) -> list[str]:
    """Everyone signed in; one conversation per pair (devices 2k and 2k+1)."""
    for device in devices:
        await device.client.connect()
        await device.client.authenticate(device.user_id)
    conversations = []
    for a, b in zip(devices[::2], devices[1::2], strict=True):
        conversations.append((await a.client.create_conversation([b.user_id])).id)
    return conversations


async def _send_all(device: Device, conversation: str) -> list[str]:
    """Queue every message, then wait for the SDK's outbox (which retries 503s with
    back-off in the background) to have every one acknowledged."""
    sent = [
        (await device.client.send_message(conversation, f"{device.user_id} {n}")).id
        for n in range(MESSAGES)
    ]
    await device.until(lambda: device.acknowledged >= set(sent))
    return sent


async def _storm(
    devices: list[Device], conversations: list[str], admin: asyncpg.Connection
) -> tuple[list[list[str]], int]:
    """Every device sends its messages while its backends are terminated; returns what
    each sent and how many backends were ended."""
    stop = asyncio.Event()
    killer = asyncio.create_task(_terminate(admin, stop))
    try:
        async with asyncio.timeout(WAIT):
            sent = await asyncio.gather(
                *(_send_all(d, conversations[i // 2]) for i, d in enumerate(devices))
            )
    except TimeoutError:
        progress = [(d.user_id, len(d.acknowledged)) for d in devices]
        raise AssertionError(f"acknowledged so far: {progress}") from None
    finally:
        stop.set()
        ended = await killer
    return list(sent), ended


async def _delivered(devices: list[Device], sent: list[list[str]]) -> None:
    """Until each device has its partner's (device 2k's is 2k+1) messages."""
    async with asyncio.timeout(WAIT):
        for i, device in enumerate(devices):
            partner = set(sent[i ^ 1])

            def arrived(d: Device = device, p: set[str] = partner) -> bool:
                return p <= set(d.received)

            await device.until(arrived)


async def _database_reruns(url: str) -> float:
    """``chinwag_group_commit_reruns_total{reason="database"}`` from the server's /metrics."""
    async with httpx.AsyncClient(base_url=url) as http:
        text = (await http.get("/metrics")).text
    found = re.search(r'^chinwag_group_commit_reruns_total\{reason="database"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


async def test_terminated_backends_cost_retries_not_messages(
    database_url: str, tmp_path: Path
) -> None:
    app = await _app(database_url)
    env = {"CHINWAG_AUTH_RATE_PER_SECOND": "0", "CHINWAG_RATE_LIMITS": "false"}
    async with serve_in_subprocess(database_url, tmp_path / "server.log", env=env) as server:
        devices = [Device(server.url, app, f"u{i}", tmp_path) for i in range(2 * PAIRS)]
        admin = await pg_connect(database_url)
        try:
            sent, ended = await _storm(devices, await _signed_in(devices), admin)
            await _delivered(devices, sent)
            stored = await admin.fetch("SELECT public_id, count(*) FROM messages GROUP BY 1")
            reruns = await _database_reruns(server.url)
        finally:
            await admin.close()
            for device in devices:
                await device.client.close()
        log = server.output

    assert ended > 0
    every = [m for messages in sent for m in messages]
    assert len(set(every)) == 2 * PAIRS * MESSAGES
    assert {row[0]: row[1] for row in stored} == dict.fromkeys(every, 1)  # stored once
    for i, device in enumerate(devices):
        assert device.received == collections.Counter(sent[i ^ 1])  # delivered once
    statuses = collections.Counter(re.findall(r'HTTP/1\.1" (\d{3})', log))
    # The terminations did hit requests: answered 503 (and retried by the SDK), or sends
    # whose write lane lost its connection and ran again on pooled ones.
    assert statuses["503"] + reruns > 0, (statuses, reruns)
    assert not [s for s in statuses if s.startswith("5") and s != "503"], statuses
    assert "Traceback" not in log, log[-3000:]
