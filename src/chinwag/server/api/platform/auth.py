"""Who calls the platform API.

# stand-in: replaced by the API-key module on merge

A minimal stand-in with the interface the API-key module provides: one admin key, read
from ``Settings.platform_stand_in_key`` (unset: every platform request is 401). Anything
else in ``Authorization`` (a session token, a wrong key) is 401 ``authentication_required``.
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
    bearerFormat="cwk_<id>_<secret> API key",
    description="An API key (`chinwag api-keys create`): `admin`, or `app` for one app.",
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
    expected = services_of(request).settings.platform_stand_in_key
    given = credentials.credentials.strip() if credentials else ""
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise AuthenticationRequired("A valid platform API key is required.")
    return PlatformCaller(key_id="stand-in", role="admin", app_id=None)


def require_app_access(caller: PlatformCaller, app_id: str) -> None:
    """404 ``app_not_found`` for an app key of another app: never reveals existence."""
    if caller.role != "admin" and caller.app_id != app_id:
        raise AppNotFound()
