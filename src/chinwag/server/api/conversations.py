"""/v1/conversations: create, list, read, change, leave and delete conversations."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from chinwag.server.api.deps import Caller, ServicesDep
from chinwag.server.api.models import Conversation, ConversationPage
from chinwag.server.api.openapi import errors
from chinwag.server.api.responses import JSON
from chinwag.server.handlers import conversation_changes as changes
from chinwag.server.handlers import conversation_create, conversations

__all__ = ["router"]

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])


class CreateConversation(BaseModel):
    model_config = ConfigDict(
        strict=True,
        json_schema_extra={
            "examples": [{"participants": ["bob"], "distinct": True, "metadata": {"title": "Hi"}}]
        },
    )

    participants: list[str] = Field(max_length=10_000)
    distinct: bool = False
    metadata: dict[str, Any] | None = None
    id: str | None = None


class PatchConversation(BaseModel):
    model_config = ConfigDict(
        strict=True,
        json_schema_extra={"examples": [{"metadata": {"set": {"a.b": "x"}, "delete": ["c"]}}]},
    )

    metadata: dict[str, Any]


class AddParticipants(BaseModel):
    model_config = ConfigDict(strict=True)

    user_ids: list[str] = Field(max_length=10_000)


_EXISTING = {"description": "An existing distinct conversation", "model": Conversation}


@router.post(
    "",
    status_code=201,
    response_model=Conversation,
    responses={200: _EXISTING, **errors(400, 401, 403, 409, 413, 422)},
)
async def create_conversation(
    body: CreateConversation, caller: Caller, services: ServicesDep
) -> JSON:
    """201 for a new conversation; an existing distinct one answers 200 with its Location."""
    found, created = await conversation_create.create_conversation(
        services,
        caller,
        participants=body.participants,
        distinct=body.distinct,
        metadata=body.metadata,
        conversation_id=body.id,
    )
    if created:
        return JSON(found, status_code=201)
    return JSON(found, status_code=200, headers={"Location": f"/v1/conversations/{found['id']}"})


@router.get("", response_model=ConversationPage, responses=errors(401, 422))
async def list_conversations(
    caller: Caller,
    services: ServicesDep,
    sort: Annotated[str, Query(max_length=32)] = "last_message",
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> JSON:
    """The caller's conversations, newest first, a page at a time (opaque ``next_cursor``)."""
    page = await conversations.list_conversations(
        services, caller, sort=sort, limit=limit, cursor=cursor
    )
    return JSON(page)


@router.get("/{conversation_id}", response_model=Conversation, responses=errors(401, 404))
async def get_conversation(conversation_id: str, caller: Caller, services: ServicesDep) -> JSON:
    """The conversation with the caller's watermarks and unread count."""
    return JSON(await conversations.get_conversation(services, caller, conversation_id))


_CHANGE_ERRORS = (400, 401, 403, 404, 413, 422)


@router.patch("/{conversation_id}", response_model=Conversation, responses=errors(*_CHANGE_ERRORS))
async def patch_conversation(
    conversation_id: str, body: PatchConversation, caller: Caller, services: ServicesDep
) -> JSON:
    """Metadata changes by dotted path: ``{"metadata": {"set": {…}, "delete": […]}}``."""
    found = await changes.update_metadata(services, caller, conversation_id, body.metadata)
    return JSON(found)


@router.post(
    "/{conversation_id}/participants",
    response_model=Conversation,
    responses=errors(*_CHANGE_ERRORS),
)
async def add_participants(
    conversation_id: str, body: AddParticipants, caller: Caller, services: ServicesDep
) -> JSON:
    """Add users (created on first mention); a distinct conversation stops being one."""
    found = await changes.add_participants(services, caller, conversation_id, body.user_ids)
    return JSON(found)


# ``:path``: user ids may contain "/" (see api/users.py); it is the last segment here.
@router.delete(
    "/{conversation_id}/participants/{user_id:path}",
    status_code=204,
    responses=errors(401, 403, 404),
)
async def remove_participant(
    conversation_id: str, user_id: str, caller: Caller, services: ServicesDep
) -> Response:
    """Remove a participant (404 if they are not one)."""
    await changes.remove_participant(services, caller, conversation_id, user_id)
    return Response(status_code=204)


@router.post("/{conversation_id}/leave", status_code=204, responses=errors(401, 403, 404))
async def leave(conversation_id: str, caller: Caller, services: ServicesDep) -> Response:
    """Leave; history up to now stays readable."""
    await changes.leave(services, caller, conversation_id)
    return Response(status_code=204)


@router.delete("/{conversation_id}", status_code=204, responses=errors(401, 403, 404, 422))
async def delete_conversation(
    conversation_id: str,
    caller: Caller,
    services: ServicesDep,
    mode: Annotated[str, Query(max_length=32)],
) -> Response:
    """``mode=all_participants`` deletes for everyone; ``my_devices`` hides it for the caller."""
    await changes.delete_conversation(services, caller, conversation_id, mode=mode)
    return Response(status_code=204)
