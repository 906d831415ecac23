"""Reads for the app's own servers (the platform API): a conversation, its messages and
a user's conversations, as every participant sees them.

The platform is no participant, so the client API's rule (only a member sees a
conversation) becomes "only the conversation's own app sees it": an id the app does not
have is 404, whether it is unknown or another app's, so ids leak nothing across apps.
Nothing here is one user's: no watermarks, no unread count, and no one user's hides or
blocks narrow the messages. A message deleted for everyone is there, as on the client API
(``deleted: true``, no parts), so positions stay dense for a reader paging by them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.core.errors import NotFound
from chinwag.core.ids import is_valid_uuid
from chinwag.server.handlers.actors import ServerActor
from chinwag.server.handlers.conversations import list_conversations, message_json, shared_view
from chinwag.server.services import Services
from chinwag.server.storage import conversations as store
from chinwag.server.storage import messages as message_store
from chinwag.server.storage.conversations import ConversationRow, MemberRow

__all__ = ["get_shared", "list_shared", "page_shared"]


async def _load(conn: AsyncConnection, app_id: str, conversation_id: str) -> ConversationRow:
    found = None
    if is_valid_uuid(conversation_id):
        found = await store.get_conversation(conn, app_id, conversation_id=conversation_id)
    if found is None:
        raise NotFound("No conversation with that id.")
    return found


async def get_shared(services: Services, app_id: str, conversation_id: str) -> dict[str, Any]:
    async with services.db.read() as conn:
        return await shared_view(conn, await _load(conn, app_id, conversation_id))


async def page_shared(
    services: Services,
    app_id: str,
    key_id: str,
    conversation_id: str,
    *,
    after: int | None,
    before: int | None,
    limit: int,
) -> dict[str, Any]:
    """The client API's message page (``handlers.messages.list_messages``) over the whole
    conversation, charged to the API key's read budget as a device's page is to its own."""
    reading = services.rate_limits.platform_reading(key_id)
    async with reading as served, services.db.read() as conn:
        conv = await _load(conn, app_id, conversation_id)
        rows, has_more = await message_store.page(
            conn, conv.id, None, after=after, before=before, limit=limit
        )
        served.served, served.items = sum(row.size for row in rows), len(rows)
    return {"messages": [message_json(r, conv.public_id) for r in rows], "has_more": has_more}


async def _shared(conn: AsyncConnection, conv: ConversationRow, _: MemberRow) -> dict[str, Any]:
    return await shared_view(conn, conv)


async def list_shared(
    services: Services, user: ServerActor, *, sort: str, limit: int, cursor: str | None
) -> dict[str, Any]:
    """The conversations ``user``'s own list shows (those they left too), in the same
    order and by the same cursors, each as every participant sees it now."""
    return await list_conversations(
        services, user, sort=sort, limit=limit, cursor=cursor, render=_shared
    )
