"""Delta sync: a page of the caller's event stream after a cursor, and the stream head.

Stored event JSON is handed back as-is (never decoded and re-encoded), so the bytes a
device gets over REST are the bytes it would have got over the WebSocket.
"""

from __future__ import annotations

from dataclasses import dataclass

from chinwag.server.handlers.auth import Authenticated
from chinwag.server.services import Services
from chinwag.server.storage import events as event_store
from chinwag.server.storage import users as user_store
from chinwag.server.storage.events import StoredEvent

__all__ = ["StreamPage", "read_events"]


@dataclass(frozen=True, slots=True)
class StreamPage:
    events: list[StoredEvent]
    head: int

    @property
    def has_more(self) -> bool:
        return bool(self.events) and self.events[-1].pos < self.head


async def read_events(
    services: Services, caller: Authenticated, *, after: int, limit: int
) -> StreamPage:
    """Events ``after+1 …`` (at most ``limit``). The head is read first, in the same
    connection, so every event up to it is already committed (see storage/events.py)."""
    async with services.db.read() as conn:
        me = await user_store.get_user_by_pk(conn, caller.user.pk)
        head = me.stream_head if me else 0
        found = await event_store.read_stream(conn, caller.user.pk, after=after, limit=limit)
    return StreamPage(events=[e for e in found if e.pos <= head], head=int(head))
