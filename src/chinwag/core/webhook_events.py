"""Which stream events become webhook events, and when a failed delivery is tried again.

Webhook event types are the app-facing names (Standard Webhooks style ``noun.verb``); a
stream event maps to at most one. Per-user-only changes (a message hidden on one user's
devices) are not the app's business and map to none.

Participant changes map to none as well: the stream tells each reader its own side (the
newcomers get ``conversation.created``, the others ``participants_added``; the leaver
``conversation.left``, the others ``participants_removed``), so mapping those events would
announce one change two or three times, as kinds the app cannot tell apart. The handler
announces each change once instead, with :func:`participants_changed`; and a
``conversation.created`` written for a newcomer is appended without a webhook.

Pure: no I/O, randomness passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any

from chinwag.core.events import EventType

__all__ = [
    "DEFAULT_RETRY_SCHEDULE",
    "ParticipantsChange",
    "WebhookEventType",
    "next_delay",
    "participants_changed",
    "webhook_type",
]


class WebhookEventType(StrEnum):
    MESSAGE_CREATED = "message.created"
    MESSAGE_DELETED = "message.deleted"
    RECEIPT = "receipt"
    CONVERSATION_CREATED = "conversation.created"
    CONVERSATION_PARTICIPANTS_CHANGED = "conversation.participants_changed"
    CONVERSATION_UPDATED = "conversation.updated"
    CONVERSATION_DELETED = "conversation.deleted"
    USER_SUSPENDED = "user.suspended"
    SESSION_ENDED = "session.ended"


_FROM_STREAM: dict[str, WebhookEventType] = {
    EventType.MESSAGE_CREATED: WebhookEventType.MESSAGE_CREATED,
    EventType.MESSAGE_DELETED: WebhookEventType.MESSAGE_DELETED,
    EventType.RECEIPT: WebhookEventType.RECEIPT,
    EventType.CONVERSATION_CREATED: WebhookEventType.CONVERSATION_CREATED,
    EventType.CONVERSATION_UPDATED: WebhookEventType.CONVERSATION_UPDATED,
    EventType.CONVERSATION_DELETED: WebhookEventType.CONVERSATION_DELETED,
    EventType.SESSION_REVOKED: WebhookEventType.SESSION_ENDED,
    "user.suspended": WebhookEventType.USER_SUSPENDED,
}


class ParticipantsChange(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    """Removed by another participant (or the platform API)."""
    LEFT = "left"


def participants_changed(
    change: ParticipantsChange, conversation_id: str, user_ids: list[str], participants: list[str]
) -> dict[str, Any]:
    """The data of one ``conversation.participants_changed``: what happened to whom, and the
    participants after it."""
    return {
        "conversation_id": conversation_id,
        "change": change.value,
        "user_ids": user_ids,
        "participants": participants,
    }


DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
"""Seconds after each failed attempt (the Standard Webhooks / Svix schedule): the last
retry comes about 27 hours after the first try, then the endpoint is disabled."""


def webhook_type(stream_type: str, data: dict[str, Any]) -> WebhookEventType | None:
    """The webhook event for a stream event, or None when apps do not hear of it."""
    if stream_type == EventType.MESSAGE_DELETED and data.get("mode") != "all_participants":
        return None
    return _FROM_STREAM.get(stream_type)


def next_delay(
    attempts: int, schedule: Sequence[float], random: Callable[[], float]
) -> float | None:
    """Seconds until try number ``attempts + 1`` after ``attempts`` failures, with +-20 %
    jitter (so endpoints that failed together do not all retry in the same instant);
    None once the schedule is spent."""
    if attempts < 1 or attempts > len(schedule):
        return None
    base = schedule[attempts - 1]
    return max(0.0, base * (0.8 + 0.4 * random()))
