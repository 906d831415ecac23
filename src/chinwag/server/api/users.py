"""/v1/users/{user_id}: public profiles of the people the caller talks to.

A user id is the app's own string and may contain ``/`` (``team/carol``). The router
matches the percent-decoded path, so ``team%2Fcarol`` arrives as two segments: the
``:path`` converter takes the rest of the path as the id.
"""

from __future__ import annotations

from fastapi import APIRouter

from chinwag.server.api.deps import Caller, ServicesDep
from chinwag.server.api.responses import JSON
from chinwag.server.handlers import users

__all__ = ["router"]

router = APIRouter(prefix="/v1/users", tags=["users"])


@router.get("/{user_id:path}")
async def get_user(user_id: str, caller: Caller, services: ServicesDep) -> JSON:
    return JSON(await users.get_user(services, caller, user_id))
