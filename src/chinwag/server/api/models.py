"""What the HTTP API answers, as pydantic models: the OpenAPI document's response schemas.

The endpoints render their JSON themselves (orjson, no pydantic on the hot path), so these
models only *describe* the answers; ``tests/server/test_openapi.py`` holds the description to
what the running server really sends. A field added to a handler's JSON view must be added
here too, or that test fails.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from chinwag.core.errors import ErrorId

__all__ = [
    "Announcement",
    "Block",
    "BlockList",
    "Conversation",
    "ConversationPage",
    "ErrorBody",
    "ErrorEnvelope",
    "EventItem",
    "EventPage",
    "IdentityToken",
    "Marks",
    "Me",
    "Message",
    "MessagePage",
    "Nonce",
    "Part",
    "PublicUser",
    "Session",
    "SharedConversation",
    "SharedConversationPage",
    "StreamEvent",
    "User",
]

Seconds = Field(description="Seconds since the Unix epoch, in the server's clock")


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(_Answer):
    id: ErrorId = Field(description="Stable error id: branch on this, never on the message")
    message: str = Field(description="For people: what was expected and what came instead")
    data: dict[str, Any] = Field(description="Machine-readable details; {} when there are none")


class ErrorEnvelope(_Answer):
    """Every error, on every endpoint."""

    error: ErrorBody


class PublicUser(_Answer):
    user_id: str
    display_name: str | None
    avatar_url: str | None
    anonymous: bool
    bot: bool = Field(default=False, description="A bot identity created by the app's server")


class User(PublicUser):
    """The signed-in user, with the fields only they see."""

    email: str | None
    first_name: str | None
    last_name: str | None


class Nonce(_Answer):
    nonce: str = Field(description="Single use; goes into the identity token's `nce` claim")
    expires_at: float = Seconds


class IdentityToken(_Answer):
    identity_token: str


class Session(_Answer):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "session_token": "cws_…",
                    "session_id": "ses_…",
                    "expires_at": 1795365432.0,
                    "issued_at": 1795279032.0,
                    "server_time": 1795279032.0,
                    "user": {
                        "user_id": "alice",
                        "display_name": "Alice",
                        "avatar_url": None,
                        "anonymous": False,
                        "email": None,
                        "first_name": None,
                        "last_name": None,
                    },
                }
            ]
        }
    )

    session_token: str = Field(description="Send as `Authorization: Bearer <session_token>`")
    session_id: str
    expires_at: float = Seconds
    issued_at: float = Seconds
    server_time: float = Seconds
    user: User


class Me(_Answer):
    app_id: str
    session_id: str
    session_expires_at: float = Seconds
    user: User


class Part(_Answer):
    mime_type: str = Field(examples=["text/plain"])
    body: str = Field(examples=["hi"])


class Message(_Answer):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0f9d8b4e-3f7a-4c1e-9a51-6b2f1c7d9e10",
                    "conversation_id": "5b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d",
                    "position": 13,
                    "sender_id": "alice",
                    "parts": [{"mime_type": "text/plain", "body": "hi"}],
                    "sent_at": 1795279032.5,
                    "deleted": False,
                    "bot": False,
                }
            ]
        }
    )

    id: str
    conversation_id: str
    position: int = Field(
        description="Dense per conversation: 1, 2, 3, … (a reader skips those deleted on "
        "their devices and those from users they blocked)"
    )
    sender_id: str | None
    parts: list[Part] = Field(description="Empty once the message is deleted for everyone")
    sent_at: float = Seconds
    deleted: bool
    bot: bool = Field(default=False, description="The sender is a bot identity (platform API)")


class MessagePage(_Answer):
    messages: list[Message] = Field(description="Ascending by position")
    has_more: bool


class SharedConversation(_Answer):
    """A conversation as every participant sees it (the platform API's view)."""

    id: str
    distinct: bool
    metadata: dict[str, Any] = Field(description="Values are strings or nested objects")
    participants: list[str]
    created_at: float = Seconds
    created_by: str | None = Field(description="null when the app created it")
    last_message: Message | None
    last_position: int


class Conversation(SharedConversation):
    """A conversation as the caller sees it, with the caller's watermarks."""

    unread_count: int
    read_position: int
    delivered_position: int
    left: bool


class ConversationPage(_Answer):
    conversations: list[Conversation]
    next_cursor: str | None = Field(description="Opaque; null on the last page")


class SharedConversationPage(_Answer):
    """A user's conversations as every participant sees them (the platform API's)."""

    conversations: list[SharedConversation]
    next_cursor: str | None = Field(description="Opaque; null on the last page")


class Marks(_Answer):
    read_position: int
    delivered_position: int
    unread_count: int


class StreamEvent(_Answer):
    type: str = Field(description="See the event table in docs/protocol.md")
    at: float = Seconds
    data: dict[str, Any]


class EventItem(_Answer):
    cursor: int = Field(description="Dense per user: a jump is a gap")
    event: StreamEvent


class EventPage(_Answer):
    events: list[EventItem]
    head: int
    has_more: bool


class Announcement(_Answer):
    """A system message to a list of users (``announcement.created`` in their streams)."""

    id: str
    parts: list[Part]
    sent_at: float = Seconds
    recipient_count: int = Field(description="Listed users the app has (others are skipped)")


class Block(_Answer):
    user_id: str
    blocked_at: float = Seconds


class BlockList(_Answer):
    blocks: list[Block] = Field(description="By user id")
