"""/v1/me/blocks: the signed-in user blocks and unblocks other users (see handlers/blocks)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from chinwag.server.api.deps import Caller, ServicesDep
from chinwag.server.api.models import BlockList
from chinwag.server.api.openapi import errors
from chinwag.server.api.responses import JSON
from chinwag.server.handlers import blocks

__all__ = ["router"]

router = APIRouter(prefix="/v1/me/blocks", tags=["blocks"])


@router.get("", response_model=BlockList, responses=errors(401))
async def list_blocks(caller: Caller, services: ServicesDep) -> JSON:
    """Whom the caller blocked, by user id."""
    return JSON(await blocks.list_blocks(services, caller.user))


# ``:path``: user ids may contain "/" (see api/users.py).
@router.post("/{user_id:path}", status_code=204, responses=errors(401, 422))
async def block(user_id: str, caller: Caller, services: ServicesDep) -> Response:
    """Hide this user's messages from the caller; neither can start a conversation with
    the other. Any user id may be blocked (whether it exists is not revealed)."""
    await blocks.block(services, caller.user, user_id)
    return Response(status_code=204)


@router.delete("/{user_id:path}", status_code=204, responses=errors(401, 422))
async def unblock(user_id: str, caller: Caller, services: ServicesDep) -> Response:
    """Lift the block (204 whether or not there was one)."""
    await blocks.unblock(services, caller.user, user_id)
    return Response(status_code=204)
