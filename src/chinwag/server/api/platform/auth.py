"""Platform API authentication.

stand-in: replaced by the API-key module on merge. Same interface as the real one
(``PlatformCaller``, ``platform_caller``, ``require_app_access``), but it accepts a single
admin key from the ``platform_admin_key`` setting, so the JWKS endpoints can be built and
tested before API keys exist.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from chinwag.core.errors import AppNotFound, AuthenticationRequired
from chinwag.server.api.deps import services_of

__all__ = ["PLATFORM_SCHEME", "PlatformCaller", "platform_caller", "require_app_access"]

PLATFORM_SCHEME = "platformApiKey"

platform_auth = HTTPBearer(
    scheme_name=PLATFORM_SCHEME,
    bearerFormat="cwk_ API key",
    description="A platform API key (`chinwag api-keys create`).",
    auto_error=False,
)


@dataclass(frozen=True, slots=True)
class PlatformCaller:
    key_id: str
    role: str
    app_id: str | None


async def platform_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(platform_auth)],
) -> PlatformCaller:
    expected = services_of(request).settings.platform_admin_key
    given = credentials.credentials.strip() if credentials else ""
    if not expected or not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise AuthenticationRequired("A valid platform API key is required.")
    return PlatformCaller(key_id="stand-in", role="admin", app_id=None)


def require_app_access(caller: PlatformCaller, app_id: str) -> None:
    """An ``app`` key reaches only its own app; any other is 404, never revealing it exists."""
    if caller.role != "admin" and caller.app_id != app_id:
        raise AppNotFound(data={"app_id": app_id[:64]})
