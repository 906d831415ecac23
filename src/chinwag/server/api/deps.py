"""Request-scoped helpers: the Services object, the caller's session, the client address."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from chinwag.server.handlers.auth import Authenticated, authenticate
from chinwag.server.services import Services

__all__ = ["Caller", "bearer_token", "client_address", "get_services", "rate_limit_auth"]


# Dependencies are ``async def`` although they never await: FastAPI runs a plain ``def``
# dependency in a worker thread, a thread hop per request (see bench/README.md).
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def current_caller(
    request: Request, services: Annotated[Services, Depends(get_services)]
) -> Authenticated:
    return await authenticate(
        services, bearer_token(request), app_hint=request.headers.get("chinwag-app-id")
    )


async def rate_limit_auth(
    request: Request, services: Annotated[Services, Depends(get_services)]
) -> None:
    services.auth_limiter.check(client_address(request), services.now())


Caller = Annotated[Authenticated, Depends(current_caller)]
ServicesDep = Annotated[Services, Depends(get_services)]
