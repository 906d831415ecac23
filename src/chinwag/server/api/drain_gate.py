"""HTTP's side of draining (``server/drain.py``): count requests in flight, refuse new ones.

A stopping server closes its listening socket first, but a kept-alive connection can
still bring a request while the node drains its WebSockets. Such a request is answered
``503 service_unavailable`` with ``Retry-After: 1`` and ``Connection: close``: the client
(the SDK's outbox does) retries it on a fresh connection, which reaches another node or
this one restarted. The probes stay answered (``/readyz`` then says ``draining``).
Requests already being answered are counted, so the drain waits for them.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from chinwag.core.errors import ServiceUnavailable
from chinwag.server.api.responses import error_response

__all__ = ["DrainGate"]

_PROBES = frozenset({"/healthz", "/readyz", "/metrics"})


class DrainGate:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services = getattr(scope["app"].state, "services", None) if "app" in scope else None
        if scope["type"] != "http" or services is None:
            await self.app(scope, receive, send)
            return
        drain = services.drain
        if drain.draining and scope["path"] not in _PROBES:
            refusal = ServiceUnavailable("This server is shutting down; retry the request.")
            headers = {"Retry-After": "1", "Connection": "close"}
            await error_response(refusal, headers)(scope, receive, send)
            return
        with drain.track():
            await self.app(scope, receive, send)
