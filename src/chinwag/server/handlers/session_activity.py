"""When a session was last used: written at most once a minute, on authenticated requests.

The platform API's session list shows it ("last seen 3 minutes ago") so an app's backend,
or its user, can tell a forgotten tablet from the phone in their hand. Writing it on every
request would turn every read into a write; once a minute is as precise as anyone reads it.
"""

from __future__ import annotations

from chinwag.server.services import Services
from chinwag.server.storage import sessions as session_store
from chinwag.server.storage.records import SessionRecord

__all__ = ["LAST_SEEN_RESOLUTION", "touch_connected", "touch_session"]

LAST_SEEN_RESOLUTION = 60.0


async def touch_session(services: Services, session: SessionRecord) -> None:
    """Record a use of ``session`` unless one was recorded in the last minute."""
    now = services.now()
    seen = session.last_seen_at if session.last_seen_at is not None else session.created_at
    if now - seen < LAST_SEEN_RESOLUTION:
        return
    async with services.db.transaction() as tx:
        await session_store.touch_session(
            tx.conn, session.id, now=now, unless_after=now - LAST_SEEN_RESOLUTION
        )


async def touch_connected(services: Services) -> None:
    """Mark every session with a socket on this node as seen now (the sweep calls this
    once a minute): a device chatting over its WebSocket makes no HTTP request to count."""
    session_ids = services.hub.session_ids()
    if not session_ids:
        return
    now = services.now()
    async with services.db.transaction() as tx:
        await session_store.touch_sessions(
            tx.conn, session_ids, now=now, unless_after=now - LAST_SEEN_RESOLUTION
        )
