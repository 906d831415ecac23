"""/v1/platform/apps/{app_id}/blocks: blocks made on a user's behalf by the app's servers.

Both user ids travel in the query or the body, never as path segments: user ids are the
app's own strings and may contain ``/``, so ``users/{user_id}/blocks`` could not tell the
user ``alice/blocks`` from alice's block list (``docs/platform-api/messages.md``).
"""

from __future__ import annotations

from fastapi import APIRouter, Query
from starlette.responses import Response

from chinwag.server.api.models import BlockList
from chinwag.server.api.openapi import errors
from chinwag.server.api.platform.context import PlatformApp
from chinwag.server.api.platform.models import BlockRef
from chinwag.server.api.responses import JSON
from chinwag.server.handlers import blocks
from chinwag.server.handlers.actors import server_actor

__all__ = ["router"]

router = APIRouter(prefix="/v1/platform/apps/{app_id}/blocks", tags=["platform: messages"])

UserQuery = Query(min_length=1, max_length=256, description="The user who blocks")


@router.get("", response_model=BlockList, responses=errors(401, 404, 422))
async def list_blocks(access: PlatformApp, user_id: str = UserQuery) -> JSON:
    """Whom ``user_id`` blocked."""
    actor = await server_actor(access.services, access.app_id, user_id)
    return JSON(await blocks.list_blocks(access.services, actor.user))


@router.post("", status_code=204, responses=errors(401, 404, 422))
async def block(body: BlockRef, access: PlatformApp) -> Response:
    """``user_id`` blocks ``blocked``; blocking twice is not an error."""
    actor = await server_actor(access.services, access.app_id, body.user_id)
    hook = access.audit("block.add", f"users/{body.user_id}/blocks")
    await blocks.block(access.services, actor.user, body.blocked, audit=hook)
    return Response(status_code=204)


@router.delete("", status_code=204, responses=errors(401, 404, 422))
async def unblock(
    access: PlatformApp,
    user_id: str = UserQuery,
    blocked: str = Query(min_length=1, max_length=256, description="The user to unblock"),
) -> Response:
    """Lift the block (204 whether or not there was one)."""
    actor = await server_actor(access.services, access.app_id, user_id)
    hook = access.audit("block.remove", f"users/{user_id}/blocks")
    await blocks.unblock(access.services, actor.user, blocked, audit=hook)
    return Response(status_code=204)
