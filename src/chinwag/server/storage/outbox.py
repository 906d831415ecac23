"""What an appended stream event owes the outside world, written in the same transaction.

Called by :func:`chinwag.server.storage.events.append_event` for every event, so every
change that reaches a user's stream (sent by a client, the platform API or the CLI) is
also considered for the app's webhooks and, for a new message, the recipients' push
devices. The rows are the outbox: written or rolled back with the change itself, and sent
by the workers in ``chinwag.server.webhooks`` after commit. Nothing here waits on the
network, so a send costs at most two indexed ``INSERT … SELECT`` statements, each writing
at most one row per event and recipient device (nothing for an app with no webhooks or
gateway).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.core.events import EventType
from chinwag.core.webhook_events import WebhookEventType, webhook_type
from chinwag.server.storage import push as push_store
from chinwag.server.storage import users as user_store
from chinwag.server.storage import webhook_outbox as webhook_store

__all__ = ["webhook_body", "write_outbox"]


def webhook_body(event_type: str, app_id: str, data: dict[str, Any], now: float) -> str:
    """The Standard Webhooks payload: ``{"type", "timestamp", "data"}``."""
    stamp = datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z")
    return orjson.dumps(
        {"type": event_type, "timestamp": stamp, "data": {"app_id": app_id, **data}}
    ).decode()


async def write_outbox(
    conn: AsyncConnection,
    *,
    app_id: str,
    event_type: str,
    data: dict[str, Any],
    now: float,
    conversation_id: str | None,
    readers: list[int],
) -> None:
    wtype = webhook_type(event_type, data)
    if wtype is WebhookEventType.SESSION_ENDED and len(readers) == 1:
        # The stream event goes to the session's own user; the app needs to know whose.
        user = await user_store.get_user_by_pk(conn, readers[0])
        data = {**data, "user_id": user.user_id if user is not None else None}
    if wtype is not None:
        await webhook_store.enqueue(
            conn,
            app_id=app_id,
            event_type=wtype,
            payload=webhook_body(wtype, app_id, data, now),
            now=now,
        )
    if event_type == EventType.MESSAGE_CREATED and conversation_id is not None:
        message = data["message"]
        await push_store.enqueue(
            conn,
            app_id=app_id,
            sender_id=message.get("sender_id"),
            conversation_id=conversation_id,
            conversation_public_id=message["conversation_id"],
            message_id=message["id"],
            now=now,
        )
