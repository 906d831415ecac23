"""What every platform endpoint shares: its router settings, error lists and audit call."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from chinwag.server.api.deps import services_of
from chinwag.server.api.openapi import errors
from chinwag.server.handlers import audit
from chinwag.server.handlers.api_keys import PlatformCaller

__all__ = ["PREFIX", "READ_ERRORS", "WRITE_ERRORS", "audited"]

PREFIX = "/v1/platform"
READ_ERRORS = errors(401, 403, 404, 422)
WRITE_ERRORS = errors(400, 401, 403, 404, 409, 413, 422)


async def audited(
    request: Request,
    caller: PlatformCaller,
    action: str,
    target: str,
    data: dict[str, Any] | None = None,
) -> None:
    """Record a platform action that succeeded, from the request's client address."""
    address = getattr(request.state, "platform_address", None)
    await audit.append(services_of(request), caller, action, target, address, data)
