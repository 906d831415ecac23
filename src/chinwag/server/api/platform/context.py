"""The platform API's per-request context: the key's caller, the app it may reach, and
the audit entry every change writes in its own transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from chinwag.server.api.deps import client_address, services_of
from chinwag.server.api.platform.auth import PlatformCaller, platform_caller, require_app_access
from chinwag.server.handlers import audit
from chinwag.server.handlers.actors import AuditHook
from chinwag.server.handlers.apps import get_app
from chinwag.server.services import Services
from chinwag.server.storage.database import Transaction

__all__ = ["AppAccess", "PlatformApp"]


@dataclass(frozen=True, slots=True)
class AppAccess:
    """A platform request that may act on ``app_id`` (an existing app)."""

    caller: PlatformCaller
    app_id: str
    address: str
    services: Services

    def audit(self, action: str, path: str) -> AuditHook:
        """The audit entry for ``action`` on ``apps/<app id>/<path>`` (so the log can be
        read per app), written by the handler inside the change's transaction."""
        target = f"apps/{self.app_id}/{path}"

        async def write(tx: Transaction) -> None:
            now = self.services.now()
            await audit.record(tx, self.caller, action, target, self.address, now=now)

        return write


async def app_access(
    app_id: str, request: Request, caller: Annotated[PlatformCaller, Depends(platform_caller)]
) -> AppAccess:
    """404 ``app_not_found`` alike for an app that does not exist and one the key may not
    reach."""
    require_app_access(caller, app_id)
    services = services_of(request)
    await get_app(services, app_id)
    return AppAccess(caller, app_id, client_address(request), services)


PlatformApp = Annotated[AppAccess, Depends(app_access)]
