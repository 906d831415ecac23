"""HTTP's side of draining (``server/drain.py``): count requests in flight, refuse new ones.

A stopping server closes its listening socket first, but a kept-alive connection can
still bring a request while the node drains its WebSockets. Such a request is answered
``503 service_unavailable`` with ``Retry-After: 1`` and ``Connection: close``: the client
(the SDK's outbox does) retries it on a fresh connection, which reaches another node or
this one restarted. The probes stay answered (``/readyz`` then says ``draining``), but
with ``Connection: close`` too: a load balancer probing over a kept-alive connection then
has to connect again for its next probe, which the closed listening socket refuses, so it
sees the node go away instead of a connection that stays open to the end of the drain.
Requests already being answered are counted, so the drain waits for them.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
        if drain.draining:  # a probe: answered, then the connection closes
            send = _closing(send)
        with drain.track():
            await self.app(scope, receive, send)


def _closing(send: Send) -> Send:
    """``send`` with ``Connection: close`` added to the response's headers (uvicorn then
    closes the connection once the response is written)."""

    async def closing(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
            message = {**message, "headers": [*headers, (b"connection", b"close")]}
        await send(message)

    return closing
