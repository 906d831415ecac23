"""Live delivery for big conversations: merge for the members with sockets here, then offer.

A message to a big conversation is written once, to the conversation's log
(``storage/member_fanout.py``); nobody's stream holds it until it is merged
(``storage/spans.py``). After the send commits, every node hears a
:class:`~chinwag.server.broker.ConversationAdvanced` (its own at once, the others' through
the broker) and merges the conversation into the streams of *its connected* members only,
then offers them the events exactly as an ordinary doorbell would. So the work per message
grows with connected devices, not with members; absent members pay once, when they read.

Rounds: while a round runs, further doorbells only mark their conversations pending, and
the next round takes them all, in one transaction. Under load one span row per member
covers many messages, so the cost per message falls as the rate rises.

A doorbell from the broker is untrusted, and needs no trust: the round merges what the
store says is pending and offers what the store holds. A forged one costs one round.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.server.broker import EventsAppended, StreamsAdvanced
from chinwag.server.storage.conversations import active_member_pks
from chinwag.server.storage.events import log_payloads
from chinwag.server.storage.spans import Merged, merge_conversation
from chinwag.server.storage.users import stream_heads

if TYPE_CHECKING:
    from chinwag.server.services import Services

__all__ = ["LiveMerge"]

log = logging.getLogger(__name__)

RETRY_AFTER = 0.5
"""Seconds before a round that failed (a database outage, a PostgreSQL lock timeout) is
tried again; its members' devices also catch up on their own when they next read."""


class LiveMerge:
    def __init__(self, services: Services) -> None:
        self._services = services
        self._pending: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def note(self, conversation_id: str) -> None:
        """The conversation's log advanced: merge it for the members connected here."""
        if not self._services.hub.connection_count():
            return
        self._pending.add(conversation_id)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            while self._pending:
                batch, self._pending = sorted(self._pending), set()
                try:
                    await self._round(batch)
                except Exception:
                    log.warning("live merge failed; retrying", exc_info=True)
                    self._pending.update(batch)
                    await asyncio.sleep(RETRY_AFTER)
        finally:
            self._task = None

    async def _round(self, batch: list[str]) -> None:
        services = self._services
        offers: list[EventsAppended] = []
        hints: list[tuple[int, int]] = []
        async with services.db.transaction() as tx:
            for conversation_id in batch:
                members = await active_member_pks(tx.conn, conversation_id)
                live = services.hub.connected(members)
                if not live:
                    continue
                added = await merge_conversation(tx.conn, conversation_id, live)
                offers += await _offers(tx.conn, conversation_id, added)
                merged = {m.user_pk for m in added}
                others = [pk for pk in live if pk not in merged]
                # Merged already (by a read, or another node): read the store if behind.
                hints += await stream_heads(tx.conn, others) if others else []
        hub = services.hub
        for offer in offers:
            hub.dispatch(offer)
        if hints:
            hub.dispatch(StreamsAdvanced(targets=tuple(hints)))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def _offers(
    conn: AsyncConnection, conversation_id: str, added: list[Merged]
) -> list[EventsAppended]:
    """One ``EventsAppended`` per log position merged, with every stream position it got."""
    if not added:
        return []
    low = min(m.first_log for m in added)
    high = max(m.first_log + m.count - 1 for m in added)
    payloads = await log_payloads(conn, conversation_id, low, high)
    targets: dict[int, list[tuple[int, int]]] = {}
    for m in added:
        for offset in range(m.count):
            targets.setdefault(m.first_log + offset, []).append((m.user_pk, m.pos + offset))
    return [
        EventsAppended(event_json=payloads[log], targets=tuple(found))
        for log, found in sorted(targets.items())
        if log in payloads
    ]
