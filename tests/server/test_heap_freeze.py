"""``chinwag serve`` freezes its started heap so full collections stay short (serving.py)."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

from chinwag.server.app import create_app
from chinwag.server.heap import freeze_pass
from chinwag.server.serving import ChinwagServer, uvicorn_config
from chinwag.server.settings import Settings
from tests.support import free_port


async def _started(server: ChinwagServer) -> asyncio.Task[None]:
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(20):
        while not server.started:
            await asyncio.sleep(0.01)
    return task


async def test_a_server_that_freezes_its_heap_leaves_little_for_a_full_collection(
    tmp_path: Path,
) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    app = create_app(settings)
    config = uvicorn_config(app, settings, port=free_port(), log_level="warning")
    server = ChinwagServer(config, freeze_heap=True)
    task = await _started(server)
    try:
        frozen = gc.get_freeze_count()
        tracked = len(gc.get_objects())
        assert frozen > 50_000  # the libraries and the app: never scanned again
        assert tracked < frozen / 5  # what a full collection still has to walk
    finally:
        gc.unfreeze()  # this is a test process: keep its garbage collectable
        server.should_exit = True
        await asyncio.wait_for(task, 15)


async def test_by_default_the_heap_is_not_frozen(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    config = uvicorn_config(create_app(settings), settings, port=free_port(), log_level="warning")
    server = ChinwagServer(config)
    task = await _started(server)
    assert gc.get_freeze_count() == 0
    server.should_exit = True
    await asyncio.wait_for(task, 15)


class _Node:
    """One half of a reference cycle."""

    other: _Node | None = None


def test_a_cycle_frozen_while_alive_is_freed_only_by_a_whole_pass() -> None:
    """The price of refreezing (server/heap.py), and what ``gc_full_interval`` pays it with."""
    first, second = _Node(), _Node()
    first.other, second.other = second, first
    try:
        freeze_pass()  # the pair is alive: frozen
        del first, second  # now garbage, but frozen garbage
        assert freeze_pass().collected == 0
        assert freeze_pass(whole=True).collected >= 2
    finally:
        gc.unfreeze()
