"""Turn every failure into the JSON error envelope; never a stack trace to the client."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chinwag.core.errors import ChinwagError, ErrorId, RateLimited
from chinwag.server.api.responses import error_response, plain_error
from chinwag.server.storage.failures import (
    RETRY_AFTER,
    is_storage_unavailable,
    is_transient,
    storage_unavailable,
)

__all__ = ["BodyLimit", "install_error_handlers", "is_transient"]

log = logging.getLogger("chinwag.api")


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors()[:20]:
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        details.append(
            {
                "field": ".".join(loc) or None,
                "problem": str(err.get("msg", ""))[:200],
                "type": err.get("type"),
            }
        )
    return details


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ChinwagError)
    async def _chinwag(_request: Request, exc: ChinwagError) -> Response:
        headers = None
        if isinstance(exc, RateLimited):
            headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
        return error_response(exc, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> Response:
        details = _validation_details(exc)
        if any(d["type"] == "json_invalid" for d in details):
            return plain_error(400, ErrorId.INVALID_REQUEST, "The body is not valid JSON.")
        first = details[0] if details else {"field": None, "problem": "invalid"}
        message = f"Invalid {first['field'] or 'request'}: {first['problem']}"
        data: dict[str, Any] = {"errors": details}
        if first["field"]:  # as the handlers' own 422s name it: one place for a client to look
            data["property"] = first["field"]
        return plain_error(422, ErrorId.INVALID_REQUEST, message, data)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return plain_error(404, ErrorId.NOT_FOUND, "No such endpoint.")
        if exc.status_code == 405:
            return plain_error(
                405, ErrorId.METHOD_NOT_ALLOWED, "That method is not allowed on this endpoint."
            )
        return plain_error(exc.status_code, ErrorId.INVALID_REQUEST, str(exc.detail)[:200])

    async def _database(request: Request, exc: Exception) -> Response:
        """503 + Retry-After when the database, not the request, failed (see
        ``storage/failures.py``); the log line names the cause, never the statement."""
        if is_storage_unavailable(exc):
            cause = exc.orig if isinstance(exc, DBAPIError) else exc
            log.warning("database unavailable on %s: %s", request.url.path, _first_line(cause))
            return error_response(storage_unavailable(), {"Retry-After": str(RETRY_AFTER)})
        log.exception("database error on %s %s", request.method, request.url.path)
        return plain_error(
            500, ErrorId.INTERNAL_ERROR, "Something went wrong on the server; it has been logged."
        )

    for kind in (DBAPIError, PoolTimeout, ConnectionError):
        app.add_exception_handler(kind, _database)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        if is_storage_unavailable(exc):  # asyncpg's own, unwrapped (``storage/failures.py``)
            return await _database(request, exc)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return plain_error(
            500, ErrorId.INTERNAL_ERROR, "Something went wrong on the server; it has been logged."
        )


def _first_line(cause: object) -> str:
    return str(cause).split("\n", 1)[0][:200]


class BodyLimit:
    """Refuse request bodies over the limit (413) before the app sees them, and any request
    whose path or query carries a NUL (400): no database stores NUL in text, so it must
    never reach a query.

    The body is read here, up to the limit, and replayed to the app: a chunked upload over
    the limit is cut off at the limit and answered 413 like one with a large Content-Length.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "http" and "\x00" in scope.get("path", ""):
            # No resource has a NUL in its name (and no database stores one in text).
            refusal = plain_error(404, ErrorId.NOT_FOUND, "Not found.")
            await refusal(scope, receive, send)
            return
        if scope["type"] == "http" and b"%00" in scope.get("query_string", b""):
            refusal = plain_error(400, ErrorId.INVALID_REQUEST, "NUL is not allowed in the query.")
            await refusal(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await self._reject(scope, receive, send)
                    return
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # client went away; let the app see the disconnect below
            body = message.get("body", b"")
            seen += len(body)
            if seen > self.max_bytes:
                await self._drain(receive, more=bool(message.get("more_body", False)))
                await self._reject(scope, receive, send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _drain(self, receive: Receive, *, more: bool) -> None:
        """Discard a bounded amount of what the client is still sending, so it reads our
        413 instead of a reset connection; past the bound, the connection is closed."""
        budget = 4 * self.max_bytes
        while more and budget > 0:
            message = await receive()
            if message["type"] != "http.request":
                return
            budget -= len(message.get("body", b""))
            more = bool(message.get("more_body", False))

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = plain_error(
            413,
            ErrorId.PAYLOAD_TOO_LARGE,
            f"The request body is larger than {self.max_bytes} bytes.",
            {"max_bytes": self.max_bytes},
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)
