"""Request-scoped helpers: the Services object, the caller's session, the client address."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ValidationError

from chinwag.core.client_address import client_address as resolve_address
from chinwag.core.client_address import trusted_networks
from chinwag.server.api.openapi import session_auth
from chinwag.server.handlers.auth import Authenticated, authenticate
from chinwag.server.rate_limits import Action
from chinwag.server.services import Services

__all__ = [
    "Caller",
    "SessionCaller",
    "bearer_token",
    "client_address",
    "get_services",
    "json_body",
    "json_body_schema",
    "services_of",
]

Model = TypeVar("Model", bound=BaseModel)


# Dependencies are ``async def`` although they never await: FastAPI runs a plain ``def``
# dependency in a worker thread, a thread hop per request (see bench/README.md).
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def json_body(request: Request, model: type[Model]) -> Model:
    """The request body validated as ``model``, for endpoints that skip FastAPI's body
    injection (see ``api/auth.py``). Errors take the same path as FastAPI's own: 400 for
    bytes that are not JSON, 422 naming the field otherwise."""
    raw = await request.body()
    if not raw:
        missing = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}
        raise RequestValidationError([missing])
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None


def json_body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a body read by :func:`json_body`."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    }


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def client_address(request: Request) -> str:
    """The TCP peer, or what ``X-Forwarded-For`` says when the peer is a trusted proxy."""
    trusted = trusted_networks(tuple(services_of(request).settings.trusted_proxies))
    forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
    return resolve_address(request.client.host if request.client else None, forwarded, trusted)


async def session_caller(
    request: Request,
    services: Annotated[Services, Depends(get_services)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(session_auth)],
) -> Authenticated:
    """The session's caller (else 401), not charged: for log-out, which a client over its
    request limit must still be able to do. Going through ``session_auth`` puts the
    ``session`` security scheme on every endpoint that takes a caller."""
    token = credentials.credentials.strip() if credentials else None
    return await authenticate(
        services, token or None, app_hint=request.headers.get("chinwag-app-id")
    )


async def current_caller(
    caller: Annotated[Authenticated, Depends(session_caller)],
    services: Annotated[Services, Depends(get_services)],
) -> Authenticated:
    """The session's caller, charged one ``requests`` (else 429), as a WebSocket request
    is: reads cost the server too, and without it one session could ask as fast as its
    connections allow."""
    await services.rate_limits.charge(Action.REQUESTS, caller)
    return caller


Caller = Annotated[Authenticated, Depends(current_caller)]
SessionCaller = Annotated[Authenticated, Depends(session_caller)]
ServicesDep = Annotated[Services, Depends(get_services)]
