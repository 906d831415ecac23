"""Delta sync: a page of the caller's event stream after a cursor, and the stream head.

Stored event JSON is handed back as-is (never decoded and re-encoded), so the bytes a
device gets over REST are the bytes it would have got over the WebSocket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.server.handlers.auth import Authenticated
from chinwag.server.services import Services
from chinwag.server.storage import events as event_store
from chinwag.server.storage import users as user_store
from chinwag.server.storage.events import StoredEvent
from chinwag.server.storage.spans import merge_user, pending_conversations

__all__ = ["StreamPage", "merge_pending", "merged_head", "merged_read", "read_events"]


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
    connection, so every event up to it is already committed (see storage/events.py).

    Charged to the caller's read budget by the event JSON it serves, as message pages
    are (``Action.READ_KIB``): a page of large messages' events is as costly to read."""
    async with services.rate_limits.reading(caller) as served:
        async with merged_read(services, caller.user.pk) as conn:
            me = await user_store.get_user_by_pk(conn, caller.user.pk)
            head = me.stream_head if me else 0
            found = await event_store.read_stream(conn, caller.user.pk, after=after, limit=limit)
        page = StreamPage(events=[e for e in found if e.pos <= head], head=int(head))
        served.of_events(page.events)
    return page


async def merge_pending(services: Services, user_pk: int) -> bool:
    """Merge the conversations' messages not yet in the user's stream (``storage/spans.py``)
    before it is read: a look at the memberships, and a write only when one is behind.
    Whether anything was pending."""
    async with services.db.read() as conn:
        pending = await pending_conversations(conn, user_pk)
    if pending:
        await _merge(services, user_pk)
    return bool(pending)


@asynccontextmanager
async def merged_read(services: Services, user_pk: int) -> AsyncIterator[AsyncConnection]:
    """A read connection for the user's stream, everything pending merged first
    (:func:`merge_pending`). When nothing is pending (nearly always) the look and the read
    share one use of a connection: on PostgreSQL each use costs a pre-ping, ``BEGIN`` and
    ``ROLLBACK`` besides its statements."""
    async with services.db.read() as conn:
        if not await pending_conversations(conn, user_pk):
            yield conn
            return
    await _merge(services, user_pk)
    async with services.db.read() as conn:
        yield conn


async def _merge(services: Services, user_pk: int) -> None:
    async with services.db.transaction() as tx:
        await merge_user(tx.conn, user_pk)


async def merged_head(services: Services, user_pk: int, known: int) -> int:
    """The user's stream head once everything pending is merged (``hello``'s head):
    ``known``, a head already read, when nothing was."""
    if not await merge_pending(services, user_pk):
        return known
    async with services.db.read() as conn:
        me = await user_store.get_user_by_pk(conn, user_pk)
    return me.stream_head if me is not None else known
