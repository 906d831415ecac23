"""The OpenAPI document's shared parts: security schemes and the error responses.

Every endpoint lists the errors it can really answer, each with the one envelope
``{"error": {"id", "message", "data"}}`` (``models.ErrorEnvelope``) and an example.
Authenticated endpoints depend on :data:`session_auth`, which is how FastAPI learns the
``session`` security scheme (and shows the Authorize button). Other credentials — the
platform API's API keys, say — join as schemes of their own, each a FastAPI security
dependency of the endpoints that accept it; nothing here assumes there is only one.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.security import HTTPBearer

from chinwag.core.errors import ErrorId
from chinwag.server.api.models import ErrorEnvelope

__all__ = ["SESSION_SCHEME", "errors", "install_openapi", "optional_session", "session_auth"]

SESSION_SCHEME = "session"

session_auth = HTTPBearer(
    scheme_name=SESSION_SCHEME,
    bearerFormat="opaque session token",
    description="A session token from `POST /v1/sessions` (or `/v1/sessions/anonymous`).",
    auto_error=False,
)
"""Authenticated endpoints' security dependency. ``auto_error=False``: a missing token is
answered by chinwag's own 401 (with a fresh nonce), not FastAPI's 403."""

optional_session: dict[str, Any] = {"security": [{}, {SESSION_SCHEME: []}]}
"""``openapi_extra`` for an endpoint that works without a session and does more with one."""

# status -> (description, example error id, example message, example data)
_ERRORS: dict[int, tuple[str, ErrorId, str, dict[str, Any]]] = {
    400: (
        "The body is not JSON, or the query string carries a NUL (`%00`).",
        ErrorId.INVALID_REQUEST,
        "The body is not valid JSON.",
        {},
    ),
    401: (
        "No live session (`authentication_required`, `data.nonce` may carry a fresh nonce), "
        "or an identity token was refused (`invalid_identity_token`, `data.reason`).",
        ErrorId.AUTHENTICATION_REQUIRED,
        "A session token is required.",
        {"nonce": "n_…"},
    ),
    403: (
        "Not allowed: `access_denied` (e.g. a former participant writing), "
        "`anonymous_not_allowed`, `sample_provider_forbidden`, `participants_not_allowed`, "
        "`participants_blocked`, `user_suspended` or `app_suspended` (a suspension), "
        "`forbidden` (a platform action that needs an admin API key).",
        ErrorId.ACCESS_DENIED,
        "You are no longer a participant of this conversation.",
        {},
    ),
    404: (
        "No such thing for this caller (`not_found`, `app_not_found`).",
        ErrorId.NOT_FOUND,
        "No such conversation.",
        {},
    ),
    409: (
        "`conflict` (`data` is the existing object) or `id_in_use`.",
        ErrorId.ID_IN_USE,
        "That message id is in use with another body.",
        {},
    ),
    413: (
        "The body is over `max_body_bytes` (`payload_too_large`), or a message's parts over "
        "64 KiB (`message_too_large`).",
        ErrorId.PAYLOAD_TOO_LARGE,
        "The request body is larger than 262144 bytes.",
        {"max_bytes": 262144},
    ),
    422: (
        "A field of the wrong shape; `data.errors` lists each problem.",
        ErrorId.INVALID_REQUEST,
        "Invalid app_id: String should have at least 1 character",
        {"errors": [{"field": "app_id", "problem": "String should have at least 1 character"}]},
    ),
    429: (
        "Too many requests from this address; retry after `Retry-After` seconds.",
        ErrorId.RATE_LIMITED,
        "Too many requests; retry in 2 seconds.",
        {"retry_after": 1.5},
    ),
    503: (
        "The database was busy; retry after `Retry-After` seconds.",
        ErrorId.SERVICE_UNAVAILABLE,
        "The database was busy; retry the request.",
        {},
    ),
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for the errors an endpoint can answer (503 is always possible)."""
    return {status: {"model": ErrorEnvelope, **_answer(status)} for status in {*statuses, 503}}


def _answer(status: int) -> dict[str, Any]:
    description, error_id, message, data = _ERRORS[status]
    example = {"error": {"id": str(error_id), "message": message, "data": data}}
    return {"description": description, "content": {"application/json": {"example": example}}}


def install_openapi(app: FastAPI) -> None:
    """Generate the document once, with FastAPI's leftover validation schemas replaced."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = _with_nul_refusals(_without_fastapi_422(document))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _without_fastapi_422(document: dict[str, Any]) -> dict[str, Any]:
    """Point any 422 FastAPI documented as ``{"detail": …}`` at the real error envelope.

    Endpoints list their 422 through :func:`errors`; this catches one that does not, so the
    document never describes an answer the server does not send.
    """
    for path in document.get("paths", {}).values():
        for operation in path.values():
            answers = operation.get("responses", {})
            if "HTTPValidationError" in str(answers.get("422")):
                answers["422"] = _enveloped(422)
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return document


def _with_nul_refusals(document: dict[str, Any]) -> dict[str, Any]:
    """Document on every operation the 400 a NUL in the query string gets: it is refused
    before any route runs, whatever the operation's parameters (``errors.BodyLimit``), so no
    endpoint lists it itself; the schema-driven test found it undocumented on a generated
    query."""
    for path in document.get("paths", {}).values():
        for operation in path.values():
            operation.setdefault("responses", {}).setdefault("400", _enveloped(400))
    return document


def _enveloped(status: int) -> dict[str, Any]:
    """:func:`_answer` with the error envelope's schema, for answers added to the document
    after FastAPI generated it."""
    answer = _answer(status)
    answer["content"]["application/json"]["schema"] = {"$ref": "#/components/schemas/ErrorEnvelope"}
    return answer
