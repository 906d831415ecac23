"""API-key authentication for the platform API.

# stand-in: replaced by the API-key module on merge
This minimal version accepts one admin key, ``Settings.platform_admin_key``, so the
webhook and push endpoints can be built and tested before the API-key module lands; it
has exactly the interface that module provides (``PlatformCaller``, ``platform_caller``,
``require_app_access``).
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
    description="An API key (`cwk_…`) from `chinwag api-keys create`.",
    auto_error=False,
)


@dataclass(frozen=True, slots=True)
class PlatformCaller:
    key_id: str
    role: str
    """``admin`` (every app) or ``app`` (only ``app_id``)."""
    app_id: str | None


async def platform_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(platform_auth)],
) -> PlatformCaller:
    """The API key's caller; anything else (a session token, no key) is 401."""
    expected = services_of(request).settings.platform_admin_key
    given = credentials.credentials.strip() if credentials else ""
    if not expected or not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise AuthenticationRequired("A valid platform API key is required.")
    return PlatformCaller(key_id="standin", role="admin", app_id=None)


def require_app_access(caller: PlatformCaller, app_id: str) -> None:
    """An ``app`` key of another app gets 404, as if the app did not exist."""
    if caller.role != "admin" and caller.app_id != app_id:
        raise AppNotFound(data={"app_id": app_id[:64]})
