"""/v1/platform/apps/{app_id}/conversations…: what the app's servers read (moderation,
export, a support bot catching up), as every participant sees it
(``docs/platform-api/messages.md``). Reads change nothing, so they write no audit entry.

A user's list takes the user id in the query (``?user_id=``), not the path: user ids may
contain ``/`` (see ``users.py``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from chinwag.server.api.messages import MAX_POSITION
from chinwag.server.api.models import MessagePage, SharedConversation, SharedConversationPage
from chinwag.server.api.platform.common import READ_ERRORS
from chinwag.server.api.platform.context import PlatformApp
from chinwag.server.api.responses import JSON
from chinwag.server.handlers import shared_reads
from chinwag.server.handlers.actors import server_actor

__all__ = ["router"]

router = APIRouter(prefix="/v1/platform/apps/{app_id}", tags=["platform: messages"])

Position = Annotated[int | None, Query(ge=0, le=MAX_POSITION)]


@router.get("/conversations", response_model=SharedConversationPage, responses=READ_ERRORS)
async def list_conversations(
    access: PlatformApp,
    user_id: Annotated[str, Query(min_length=1, max_length=256, description="Whose list")],
    sort: Annotated[str, Query(max_length=32)] = "last_message",
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> JSON:
    """The user's conversations in the order and pages of their own list (opaque
    ``next_cursor``); 404 ``not_found`` for a user the app does not have."""
    user = await server_actor(access.services, access.app_id, user_id)
    page = await shared_reads.list_shared(
        access.services, user, sort=sort, limit=limit, cursor=cursor
    )
    return JSON(page)


@router.get(
    "/conversations/{conversation_id}", response_model=SharedConversation, responses=READ_ERRORS
)
async def get_conversation(conversation_id: str, access: PlatformApp) -> JSON:
    """404 ``not_found`` alike for an unknown id and another app's conversation."""
    found = await shared_reads.get_shared(access.services, access.app_id, conversation_id)
    return JSON(found)


@router.get(
    "/conversations/{conversation_id}/messages", response_model=MessagePage, responses=READ_ERRORS
)
async def list_messages(
    conversation_id: str,
    access: PlatformApp,
    after: Position = None,
    before: Position = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> JSON:
    """Pages as the client API's do, over every message: no one user's hides or blocks."""
    page = await shared_reads.page_shared(
        access.services,
        access.app_id,
        access.caller.key_id,
        conversation_id,
        after=after,
        before=before,
        limit=limit,
    )
    return JSON(page)
