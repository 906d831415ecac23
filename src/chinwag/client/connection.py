"""Moving bytes: REST calls over httpx and the event WebSocket over ``websockets``.

This module decides nothing about sessions or data. It turns transport failures into
:class:`OfflineError` (so callers can tell "the server is unreachable" from "the server
said no") and reports reachability, which drives the ``connected``/``disconnected``
events: what counts is whether the chinwag server answers, not what the OS thinks of the
network.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import websockets
from websockets.asyncio.client import ClientConnection

from chinwag.client.errors import SUSPENSIONS, OfflineError, ServerError, Suspended

__all__ = ["Api", "error_from", "open_websocket"]

log = logging.getLogger("chinwag.client")

_GATEWAY_DOWN = frozenset({502, 503, 504})
"""Answers that mean the chinwag server is not there (a proxy with no node behind it, a
node stopping): the server has not come back, whoever answered."""


def error_from(response: httpx.Response) -> ServerError:
    """The server's JSON error as a :class:`ServerError` (tolerating non-JSON bodies)."""
    error_id, message, data = "http_error", response.reason_phrase, {}
    try:
        body = orjson.loads(response.content)
        error = body["error"]
        error_id, message = str(error["id"]), str(error.get("message", ""))
        data = dict(error.get("data") or {})
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        pass
    if response.status_code == 403 and error_id in SUSPENSIONS:
        return Suspended(response.status_code, error_id, message, data)
    return ServerError(response.status_code, error_id, message, data)


class Api:
    """One httpx client for the whole SDK; every call reports whether the server answered."""

    def __init__(
        self,
        base_url: str,
        app_id: str,
        *,
        on_reachable: Callable[[bool], None],
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.app_id = app_id
        self._on_reachable = on_reachable
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout,
            headers={"Chinwag-App-Id": app_id},
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """Send one request. Raises :class:`OfflineError` when no answer came back."""
        headers = {"Authorization": f"Bearer {token}"} if token else None
        content = orjson.dumps(json) if json is not None else None
        if content is not None:
            headers = {**(headers or {}), "Content-Type": "application/json"}
        try:
            response = await self._http.request(
                method, path, content=content, params=params, headers=headers
            )
        except httpx.TransportError as exc:
            self._on_reachable(False)
            raise OfflineError(
                f"{method} {path}: the server could not be reached ({exc!r})"
            ) from exc
        self._on_reachable(response.status_code not in _GATEWAY_DOWN)
        return response

    def websocket_url(self, token: str, after: int) -> str:
        scheme_url = self.base_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        return f"{scheme_url}/v1/websocket?{urlencode({'after': after})}"


@asynccontextmanager
async def open_websocket(api: Api, token: str, after: int) -> AsyncIterator[ClientConnection]:
    """Open the event socket, resuming after ``after``; transport failures → OfflineError."""
    try:
        connection = await websockets.connect(
            api.websocket_url(token, after),
            additional_headers={"Authorization": f"Bearer {token}"},
            open_timeout=10,
            max_size=4 * 1024 * 1024,
        )
    except websockets.InvalidStatus:
        raise
    except (OSError, TimeoutError, websockets.WebSocketException) as exc:
        raise OfflineError(f"WebSocket: the server could not be reached ({exc!r})") from exc
    try:
        yield connection
    finally:
        await connection.close()
