"""A session token in a WebSocket URL (the web client's) never reaches uvicorn's logs."""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import websockets

from chinwag.server.log_redaction import TokenRedaction, install_log_redaction
from chinwag.server.settings import Settings
from tests.support import RunningServer, bearer, make_app, run_server


@contextlib.contextmanager
def uvicorn_log() -> Iterator[io.StringIO]:
    """What uvicorn's own loggers write, as its handlers get it (attach after uvicorn has
    configured its logging, which replaces their handlers)."""
    text = io.StringIO()
    handler = logging.StreamHandler(text)
    loggers = [logging.getLogger(name) for name in ("uvicorn.error", "uvicorn.access")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield text
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


async def test_a_token_in_the_websocket_query_is_redacted(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    async with run_server(settings, log_level="info") as server:
        with uvicorn_log() as log:
            await connect_with_token_in_query(server)
    logged = log.getvalue()
    assert "session_token=[redacted]&after=0" in logged
    assert "cws_" not in logged


async def connect_with_token_in_query(server: RunningServer) -> None:
    """Sign in over HTTP, then open a WebSocket the way a browser must (token in the URL)."""
    app = await make_app(server.services)
    async with httpx.AsyncClient(base_url=server.url) as client:
        header = await bearer(client, app, "alice", time.time())
    token = header["Authorization"].removeprefix("Bearer ")
    url = f"{server.ws_url}/v1/websocket?session_token={token}&after=0"
    async with websockets.connect(url) as socket:
        assert '"hello"' in str(await socket.recv())


def test_installing_twice_adds_one_filter() -> None:
    install_log_redaction()
    install_log_redaction()
    filters = logging.getLogger("uvicorn.error").filters
    assert sum(isinstance(f, TokenRedaction) for f in filters) == 1
