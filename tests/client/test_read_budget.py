"""A fresh device downloads a history larger than its session's read budget (``read_kib``)
without an error: the SDK waits out each 429 and goes on where it was.

Before, the refusal was raised, reported as an error, and the whole download began again
from the first page, spending the budget once more: a history larger than a minute's
budget could never finish."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from chinwag.client import Client, ClientEvent
from chinwag.clock import ManualClock
from chinwag.server.settings import Settings
from tests.client.conftest import Tokens
from tests.client.test_sync import signed_in

BODY = "x" * 50_000
MESSAGES = 30  # 1.5 MB: more than one 1 MiB page, and the budget below is 300 KiB


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        auth_rate_per_second=0,
        limit_read_kib_per_session="300/second",
    )


@contextlib.asynccontextmanager
async def time_passing(clock: ManualClock) -> AsyncIterator[None]:
    """The server's clock moves a second every tenth of one, so its windows end while the
    SDK waits (it sleeps the ``retry_after`` it was told, in real time)."""

    async def tick() -> None:
        while True:
            await asyncio.sleep(0.1)
            clock.advance(1)

    task = asyncio.create_task(tick())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_history_larger_than_the_read_budget_downloads_without_an_error(
    make_client: Callable[..., Client], tokens: Tokens, clock: ManualClock
) -> None:
    alice = await signed_in(make_client, tokens, "alice")
    try:
        conv = await alice.create_conversation(["alice", "bob"])
        for n in range(MESSAGES):
            await alice.send_message(conv.id, f"{n:02d}{BODY}")
        await alice.flush_outbox()
    finally:
        await alice.close()
    errors: list[object] = []
    fresh = make_client("alice-new", identity_token_provider=tokens.provider("alice"))
    fresh.on(ClientEvent.ERROR, errors.append)
    async with time_passing(clock), fresh:
        await fresh.authenticate()
        await asyncio.wait_for(fresh.wait_until_synced(), 30)
        got = [m.text for m in await fresh.messages(conv.id)]
    assert [text[:2] for text in got] == [f"{n:02d}" for n in range(MESSAGES)]
    assert errors == []
