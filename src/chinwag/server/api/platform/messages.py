"""/v1/platform/apps/{app_id}/...: conversations, messages, bots and announcements,
driven by the app's own servers (``docs/platform-api/messages.md``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from chinwag.server.api.models import (
    Announcement,
    Message,
    PublicUser,
    SharedConversation,
)
from chinwag.server.api.openapi import errors
from chinwag.server.api.platform.context import PlatformApp
from chinwag.server.api.responses import JSON
from chinwag.server.handlers import announcements, bots, messages
from chinwag.server.handlers.actors import server_actor
from chinwag.server.handlers.conversation_create import NewConversation, create_for
from chinwag.server.handlers.conversations import check_user_ids

__all__ = ["router"]

router = APIRouter(prefix="/v1/platform/apps/{app_id}", tags=["platform: messages"])

_ERRORS = (400, 401, 403, 404, 409, 413, 422)


class CreateConversation(BaseModel):
    model_config = ConfigDict(
        strict=True,
        json_schema_extra={
            "examples": [{"participants": ["alice", "bob"], "distinct": True, "created_by": None}]
        },
    )

    participants: list[str] = Field(max_length=10_000)
    distinct: bool = False
    metadata: dict[str, Any] | None = None
    id: str | None = None
    created_by: str | None = Field(
        default=None, description="Create as this user (a participant); null: as the app"
    )


class SendAs(BaseModel):
    model_config = ConfigDict(
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "0f9d8b4e-3f7a-4c1e-9a51-6b2f1c7d9e10",
                    "sender_id": "helpbot",
                    "parts": [{"mime_type": "text/plain", "body": "How can I help?"}],
                }
            ]
        },
    )

    id: str
    sender_id: str = Field(description="A participant: a user or a bot")
    parts: list[Any]


class PutBot(BaseModel):
    model_config = ConfigDict(
        strict=True,
        json_schema_extra={"examples": [{"user_id": "helpbot", "display_name": "Help"}]},
    )

    user_id: str
    display_name: str | None = None
    avatar_url: str | None = None


class Announce(BaseModel):
    model_config = ConfigDict(
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
                    "user_ids": ["alice", "bob"],
                    "parts": [{"mime_type": "text/plain", "body": "Maintenance at 02:00 UTC"}],
                }
            ]
        },
    )

    id: str
    user_ids: list[str] = Field(max_length=10_000)
    parts: list[Any]


def _again(description: str, model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    return {200: {"description": description, "model": model}, **errors(*_ERRORS)}


def _created(found: dict[str, Any], created: bool) -> JSON:
    return JSON(found, status_code=201 if created else 200)


@router.post(
    "/conversations",
    status_code=201,
    response_model=SharedConversation,
    responses=_again("An existing distinct conversation", SharedConversation),
)
async def create_conversation(body: CreateConversation, access: PlatformApp) -> JSON:
    """201 new; 200 an existing distinct one. As ``created_by`` (the app's conversation
    policy applies as if they called) or, with none, as the app itself. The answer is the
    conversation as every participant sees it (no one user's watermarks)."""
    services = access.services
    named = check_user_ids(body.participants, "participants", services.settings.max_participants)
    creator = None
    if body.created_by is not None:
        creator = await server_actor(services, access.app_id, body.created_by)
    wanted = NewConversation(named, body.distinct, body.metadata, body.id)
    found, created = await create_for(
        services, access.app_id, creator, wanted, shared=True,
        audit=access.audit("conversation.create", "conversations"), charge=access.fanout,
    )  # fmt: skip
    return _created(found, created)


@router.post(
    "/conversations/{conversation_id}/messages",
    status_code=201,
    response_model=Message,
    responses=_again("The same message sent again: the stored one", Message),
)
async def send_message(conversation_id: str, body: SendAs, access: PlatformApp) -> JSON:
    """Send as a participant (a user, or a bot: the message says ``bot: true``); the same
    id and parts again answer the stored message (200)."""
    actor = await server_actor(access.services, access.app_id, body.sender_id)
    found, created = await messages.send_as(
        access.services, actor, conversation_id, body.id, body.parts,
        audit=access.audit("message.send", f"conversations/{conversation_id[:64]}/messages"),
        charge=access.fanout,
    )  # fmt: skip
    return _created(found, created)


@router.post(
    "/bots",
    status_code=201,
    response_model=PublicUser,
    responses=_again("The bot existed: its profile, updated", PublicUser),
)
async def put_bot(body: PutBot, access: PlatformApp) -> JSON:
    """Create a bot identity (201) or update the profile fields given (200; ``null``
    clears one, a field left out stays)."""
    profile = body.model_dump(exclude_unset=True, exclude={"user_id"})
    found, created = await bots.put_bot(
        access.services, access.app_id, body.user_id, profile,
        audit=access.audit("bot.put", f"users/{body.user_id[:256]}/bot"), charge=access.fanout,
    )  # fmt: skip
    return _created(found, created)


@router.post(
    "/announcements",
    status_code=201,
    response_model=Announcement,
    responses=_again("The same announcement again: the stored one", Announcement),
)
async def announce(body: Announce, access: PlatformApp) -> JSON:
    """Append a system message to each listed user's stream (201); a retry answers 200."""
    found, created = await announcements.announce(
        access.services, access.app_id, body.id, body.parts, body.user_ids,
        audit=access.audit("announcement.create", f"announcements/{body.id[:64]}"),
        charge=access.fanout,
    )  # fmt: skip
    return _created(found, created)
