"""What an appended stream event owes the outside world, written in the same transaction.

Called by :func:`chinwag.server.storage.events.append_event` for every event, so every
change that reaches a user's stream (sent by a client, the platform API or the CLI) is
also considered for the app's webhooks and, for a new message, the recipients' push
devices. The rows are the outbox: written or rolled back with the change itself, and sent
by the workers in ``chinwag.server.webhooks`` after commit. Nothing here waits on the
network, so a send costs at most two indexed ``INSERT … SELECT`` statements, each writing
at most one row per event and recipient device (nothing for an app with no webhooks or
gateway). On PostgreSQL a new message's two are one statement (the webhook's as a
data-modifying CTE): one round trip fewer on every send. SQLite has no such CTEs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.core.events import EventType
from chinwag.core.webhook_events import WebhookEventType, webhook_type
from chinwag.server.storage import push as push_store
from chinwag.server.storage import users as user_store
from chinwag.server.storage import webhook_outbox as webhook_store
from chinwag.server.storage.engines import is_postgres
from chinwag.server.storage.prepared import Prepared
from chinwag.server.storage.schema import push_jobs, webhook_outbox

__all__ = ["message_outbox", "webhook_body", "write_outbox", "write_webhook"]


def webhook_body(event_type: str, app_id: str, data: dict[str, Any], now: float) -> str:
    """The Standard Webhooks payload: ``{"type", "timestamp", "data"}``."""
    stamp = datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z")
    return orjson.dumps(
        {"type": event_type, "timestamp": stamp, "data": {"app_id": app_id, **data}}
    ).decode()


async def write_webhook(
    conn: AsyncConnection,
    *,
    app_id: str,
    event_type: WebhookEventType,
    data: dict[str, Any],
    now: float,
) -> bool:
    """A webhook that no single stream event says (``core.webhook_events``: participant
    changes); whether a row was written (the app has endpoints for it)."""
    return await webhook_store.enqueue(
        conn, app_id=app_id, event_type=event_type,
        payload=webhook_body(event_type, app_id, data, now), now=now,
    )  # fmt: skip


async def write_outbox(
    conn: AsyncConnection,
    *,
    app_id: str,
    event_type: str,
    data: dict[str, Any],
    now: float,
    conversation_id: str | None,
    readers: list[int],
) -> bool:
    """Whether it wrote anything: only then are the delivery workers woken (after commit),
    so an app without webhooks or a push gateway costs them no pass per message."""
    wtype = webhook_type(event_type, data)
    if wtype is WebhookEventType.SESSION_ENDED and len(readers) == 1:
        # The stream event goes to the session's own user; the app needs to know whose.
        user = await user_store.get_user_by_pk(conn, readers[0])
        data = {**data, "user_id": user.user_id if user is not None else None}
    # A new message's readers may have devices to wake: the conversation to look in.
    push_in = conversation_id if event_type == EventType.MESSAGE_CREATED else None
    if wtype is not None and push_in is not None and is_postgres(conn):
        params = push_store.enqueue_params(app_id, data["message"], push_in, now)
        params |= {"event_type": wtype, "payload": webhook_body(wtype, app_id, data, now)}
        row = await _BOTH_PG.first(conn, params)
        return row is not None and int(row[0]) > 0
    written = False
    if wtype is not None:
        written = await webhook_store.enqueue(
            conn,
            app_id=app_id,
            event_type=wtype,
            payload=webhook_body(wtype, app_id, data, now),
            now=now,
        )
    if push_in is not None:
        written |= await push_store.enqueue(
            conn, app_id=app_id, message=data["message"], conversation_id=push_in, now=now
        )
    return written


def message_outbox(
    app_id: str, data: dict[str, Any], conversation_id: str, now: float
) -> dict[str, Any] | None:
    """The parameters of a new message's webhook row and push jobs, for a statement that
    writes them with the message (``message_send.py``, PostgreSQL); None when apps do not
    hear of it (then :func:`write_outbox` writes what is owed)."""
    wtype = webhook_type(EventType.MESSAGE_CREATED, data)
    if wtype is None:
        return None
    params = push_store.enqueue_params(app_id, data["message"], conversation_id, now)
    return params | {"event_type": wtype, "payload": webhook_body(wtype, app_id, data, now)}


def _both_pg() -> Prepared:
    """A message's webhook row and push jobs in one PostgreSQL statement (module
    docstring), answering how many rows the two wrote together (a statement's own row
    count would leave out its CTE's)."""
    webhook = webhook_store.ENQUEUE_STATEMENT.returning(webhook_outbox.c.id).cte("webhook")
    push = push_store.ENQUEUE_STATEMENT.returning(push_jobs.c.id).cte("push")
    counted = (
        select(func.count()).select_from(webhook).scalar_subquery()
        + select(func.count()).select_from(push).scalar_subquery()
    )
    return Prepared(select(counted))


_BOTH_PG = _both_pg()
