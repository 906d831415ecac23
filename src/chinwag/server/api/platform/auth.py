"""Who calls the platform API: the API-key dependency and the app-access rules.

``Authorization: Bearer cwk_…`` on ``/v1/platform/...`` only. Session tokens are refused
here (401) just as API keys are refused on the client API (their shapes differ, so neither
parser accepts the other). An ``app`` key that names another app gets 404
``app_not_found``, the same answer as for an app that does not exist, so a key never
learns which other apps there are.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from chinwag.core.errors import AppNotFound, Forbidden
from chinwag.server.api.deps import client_address, services_of
from chinwag.server.handlers.api_keys import PlatformCaller, authenticate_api_key

__all__ = [
    "PLATFORM_SCHEME",
    "Platform",
    "PlatformCaller",
    "platform_auth",
    "platform_caller",
    "require_admin",
    "require_app_access",
]

PLATFORM_SCHEME = "platformApiKey"

platform_auth = HTTPBearer(
    scheme_name=PLATFORM_SCHEME,
    bearerFormat="cwk_<id>_<secret> API key",
    description="A platform API key from `chinwag api-keys create` (role `admin` or `app`). "
    "Session tokens are refused here.",
    auto_error=False,
)


async def platform_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(platform_auth)] = None,
) -> PlatformCaller:
    """The API key's caller, else 401 ``authentication_required``; 429 over the key's
    ``limit_platform_per_key``."""
    token = credentials.credentials.strip() if credentials else None
    services = services_of(request)
    caller = await authenticate_api_key(services, token or None)
    await services.rate_limits.charge_platform(caller.key_id)
    request.state.platform_address = client_address(request)
    return caller


def require_app_access(caller: PlatformCaller, app_id: str) -> None:
    """404 ``app_not_found`` for an app key of another app (never reveals existence)."""
    if not caller.is_admin and caller.app_id != app_id:
        raise AppNotFound(data={"app_id": app_id[:64]})


def require_admin(caller: PlatformCaller, what: str) -> None:
    """403 ``forbidden`` for an app key where only an admin key may act."""
    if not caller.is_admin:
        raise Forbidden(f"{what} needs an admin API key.")


Platform = Annotated[PlatformCaller, Depends(platform_caller)]
"""An endpoint parameter for the caller; puts the ``platformApiKey`` scheme in the OpenAPI."""
