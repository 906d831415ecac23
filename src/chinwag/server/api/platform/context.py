"""The platform API's per-request context: the key's caller, the app it may reach, and
the audit entry every change writes in its own transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from chinwag.server.api.deps import client_address, services_of
from chinwag.server.api.platform.auth import PlatformCaller, platform_caller, require_app_access
from chinwag.server.handlers import audit
from chinwag.server.handlers.actors import AuditHook, FanoutCharge
from chinwag.server.handlers.apps import get_app
from chinwag.server.services import Services
from chinwag.server.storage.database import Transaction

__all__ = ["AppAccess", "PlatformApp", "fanout_charge"]


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

    @property
    def fanout(self) -> FanoutCharge:
        return fanout_charge(self.services, self.caller)


def fanout_charge(services: Services, caller: PlatformCaller) -> FanoutCharge:
    """The key's ``limit_platform_recipients_per_key`` budget, for a handler to charge
    what the request fans out once it knows (429 before any write when over)."""
    key_id = caller.key_id
    limits = services.rate_limits

    async def charge(cost: int) -> None:
        await limits.charge_platform_recipients(key_id, cost)

    return charge


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
