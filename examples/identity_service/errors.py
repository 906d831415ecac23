"""The service's one error shape: ``{"error": {"id", "message"}}`` with a 4xx status.

Every refusal, including Starlette's own (an unknown path, a method a route does not
take), is rendered here, so a client parses one shape and branches on a stable ``id``;
a plain-text 405 would break a client that reads ``error.id``.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

__all__ = ["ApiError", "error_response", "render_api_error", "render_http_exception"]

_STARLETTE_IDS = {404: "not_found", 405: "method_not_allowed"}


class ApiError(Exception):
    def __init__(self, status: int, error_id: str, message: str, **headers: str) -> None:
        super().__init__(message)
        self.status, self.error_id, self.message, self.headers = status, error_id, message, headers


def error_response(exc: ApiError) -> Response:
    body = {"error": {"id": exc.error_id, "message": exc.message}}
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


def render_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


def render_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's routing refusals (404, 405 with its ``Allow``), in the same shape."""
    assert isinstance(exc, HTTPException)
    error_id = _STARLETTE_IDS.get(exc.status_code, "http_error")
    message = f"{request.method} {request.url.path}: {exc.detail}."
    return error_response(ApiError(exc.status_code, error_id, message, **(exc.headers or {})))
