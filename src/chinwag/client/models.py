"""What the SDK hands to apps: users, conversations and messages as frozen dataclasses.

They are snapshots read from the local store; the store (and so the server) stays the
truth, so holding one never goes stale in a way that matters: query again after an event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from chinwag.core.typing import TypingState

__all__ = [
    "LOGIN_REQUEST_MIME_TYPE",
    "Announcement",
    "AnonymousData",
    "Conversation",
    "Message",
    "MessagePart",
    "MessageState",
    "Receipt",
    "Typing",
    "User",
]

LOGIN_REQUEST_MIME_TYPE = "application/vnd.chinwag.login-request+json"
"""A message part of this type asks an anonymous user to sign in (ASAPP's Sign In button)."""


class AnonymousData(StrEnum):
    """What happens to an anonymous user's conversations when they log in."""

    KEEP = "keep"
    DISCARD = "discard"


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    display_name: str | None = None
    avatar_url: str | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    anonymous: bool = False
    bot: bool = False
    """A bot identity the app's server speaks as (created through the platform API)."""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> User:
        return cls(
            user_id=str(data["user_id"]),
            display_name=data.get("display_name"),
            avatar_url=data.get("avatar_url"),
            email=data.get("email"),
            first_name=data.get("first_name"),
            last_name=data.get("last_name"),
            anonymous=bool(data.get("anonymous", False)),
            bot=bool(data.get("bot", False)),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "display_name": self.display_name,
            "avatar_url": self.avatar_url,
            "email": self.email,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "anonymous": self.anonymous,
            "bot": self.bot,
        }


@dataclass(frozen=True, slots=True)
class MessagePart:
    mime_type: str
    body: str

    def to_json(self) -> dict[str, str]:
        return {"mime_type": self.mime_type, "body": self.body}


class MessageState(StrEnum):
    PENDING = "pending"
    """In the outbox: stored on the device, not yet acknowledged by the server."""
    SENT = "sent"
    FAILED = "failed"
    """Refused by the server for good (e.g. too large, not a participant)."""


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    conversation_id: str
    position: int | None
    """The server's per-conversation position; None while the message is pending."""
    sender_id: str
    parts: tuple[MessagePart, ...]
    sent_at: float | None
    state: MessageState = MessageState.SENT
    deleted: bool = False
    bot: bool = False
    """The sender is a bot identity, not a person."""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Message:
        """From the server's message JSON (a sent message: it has a position)."""
        return cls(
            id=data["id"],
            conversation_id=data["conversation_id"],
            position=data.get("position"),
            sender_id=data["sender_id"],
            parts=tuple(MessagePart(p["mime_type"], p["body"]) for p in data["parts"]),
            sent_at=data.get("sent_at"),
            state=MessageState.SENT,
            deleted=bool(data.get("deleted", False)),
            bot=bool(data.get("bot", False)),
        )

    @property
    def text(self) -> str:
        """The bodies of the ``text/plain`` parts, joined: handy for simple UIs and tests."""
        return "".join(p.body for p in self.parts if p.mime_type.startswith("text/plain"))

    @property
    def requests_login(self) -> bool:
        return any(p.mime_type == LOGIN_REQUEST_MIME_TYPE for p in self.parts)


@dataclass(frozen=True, slots=True)
class Announcement:
    """A system message from the app to this user, outside any conversation
    (``announcement`` event; :meth:`Client.announcements`)."""

    id: str
    parts: tuple[MessagePart, ...]
    sent_at: float | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Announcement:
        parts = tuple(MessagePart(p["mime_type"], p["body"]) for p in data["parts"])
        return cls(id=str(data["id"]), parts=parts, sent_at=data.get("sent_at"))

    @property
    def text(self) -> str:
        """The bodies of the ``text/plain`` parts, joined."""
        return "".join(p.body for p in self.parts if p.mime_type.startswith("text/plain"))


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    participants: tuple[str, ...]
    metadata: dict[str, Any] = field(default_factory=dict)
    distinct: bool = False
    created_at: float | None = None
    created_by: str | None = None
    last_position: int = 0
    last_message_at: float | None = None
    read_position: int = 0
    delivered_position: int = 0
    unread_count: int = 0
    left: bool = False


@dataclass(frozen=True, slots=True)
class Receipt:
    """A participant's read and delivery watermarks moved (``receipt`` event): every
    message at or below ``read_position`` has been read by ``user_id``."""

    conversation_id: str
    user_id: str
    read_position: int
    delivered_position: int


@dataclass(frozen=True, slots=True)
class Typing:
    """Someone else started, paused or finished typing (``typing`` event). Ephemeral:
    never stored, and the server moves a silent typist to paused, then finished."""

    conversation_id: str
    user_id: str
    state: TypingState
