"""Event types of the per-user stream (the frame that carries one is in core/protocol.py).

Each user has one stream whose positions are dense (1, 2, 3, …) and only grow; a device
that knows position N has seen exactly events 1..N. Gaps are therefore detectable by
arithmetic, by the hub and by the SDK alike.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["EventType"]


class EventType(StrEnum):
    CONVERSATION_CREATED = "conversation.created"
    CONVERSATION_UPDATED = "conversation.updated"
    CONVERSATION_LEFT = "conversation.left"
    CONVERSATION_DELETED = "conversation.deleted"
    PARTICIPANTS_ADDED = "conversation.participants_added"
    PARTICIPANTS_REMOVED = "conversation.participants_removed"
    MESSAGE_CREATED = "message.created"
    MESSAGE_DELETED = "message.deleted"
    RECEIPT = "receipt"
    IDENTITY_UPDATED = "identity.updated"
    SESSION_REVOKED = "session.revoked"
    USER_UPGRADED = "user.upgraded"
    ANNOUNCEMENT_CREATED = "announcement.created"
