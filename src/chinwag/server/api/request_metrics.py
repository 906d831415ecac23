"""Counting HTTP requests by route template, for ``/metrics``.

A pure ASGI middleware: it reads the status from ``http.response.start`` and stops the
clock at the last body chunk. The route is the template the router matched
(``scope["route"]``, which FastAPI sets in place), so a thousand conversations are one
label value, not a thousand; a path no route matched is ``unmatched``, so scanners
probing random URLs add nothing either. WebSockets are not counted here (they are the
open-socket gauge).
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chinwag.server import metrics

__all__ = ["RequestMetrics"]


class RequestMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app fails before answering, the server answers 500

        async def measured(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                _record(scope, status, started)

        try:
            await self.app(scope, receive, measured)
        except BaseException:
            _record(scope, status, started)
            raise


def _record(scope: Scope, status: int, started: float) -> None:
    if scope.get("chinwag.counted"):
        return
    scope["chinwag.counted"] = True
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    label = template if isinstance(template, str) else "unmatched"
    metrics.http_request(label, scope["method"], status, time.perf_counter() - started)
