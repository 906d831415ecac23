"""What doorbells do on this node: its own, delivered at once; other nodes', distrusted.

A node's own doorbells come from its own committed transactions, so they are handed to
its connections directly, event JSON included (:meth:`Doorbells.local`): the single-node
fast path, no pub/sub involved. Other nodes' doorbells arrive through the broker, which
anyone who can write to Redis can also write to, so each is only a prompt to consult the
store (:meth:`Doorbells.remote`):

* ``StreamsAdvanced``: each live connection of those users reads the store past its cursor
  (once); a false position costs one read and delivers nothing.
* ``RevocationHint``: the sessions live here are looked up, and only those the store says
  ended are closed, with the store's reason and wipe flag.
* ``Signal``: typing, rebuilt from validated fields (``broker.wire``): at worst a false
  typing indicator, never another kind of frame.
* ``ConversationAdvanced``: the conversation is merged into the streams of its members
  connected here, and the events the store holds offered (``live_merge.py``).
* ``Resync``: every live connection reads the store.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from chinwag.server.broker import (
    ConversationAdvanced,
    Doorbell,
    EventsAppended,
    RevocationHint,
    SessionsRevoked,
    StreamsAdvanced,
)
from chinwag.server.live_merge import LiveMerge
from chinwag.server.typing_relay import participants_removed

if TYPE_CHECKING:
    from chinwag.server.services import Services

__all__ = ["Doorbells", "close_revoked"]

log = logging.getLogger(__name__)


class Doorbells:
    def __init__(self, services: Services) -> None:
        self._services = services
        self._suspects: set[str] = set()
        self._checking: asyncio.Task[None] | None = None
        self._merge = LiveMerge(services)

    def local(self, message: Doorbell) -> None:
        """A doorbell this node rang itself, after its transaction committed."""
        services = self._services
        if isinstance(message, ConversationAdvanced):
            self._merge.note(message.conversation_id)
            return
        services.hub.dispatch(message)
        if isinstance(message, EventsAppended) and len(services.typing):
            removed = participants_removed(message)
            if removed is not None:
                services.typing.members_changed(*removed)

    def remote(self, message: Doorbell) -> None:
        """A doorbell from the broker: another node's, or a forgery; see the module doc."""
        services = self._services
        if isinstance(message, RevocationHint):
            self._suspect(message.session_ids)
            return
        if isinstance(message, EventsAppended | SessionsRevoked):
            return  # never decoded from the wire; refuse rather than trust
        if isinstance(message, ConversationAdvanced):
            self._merge.note(message.conversation_id)  # merges only what the store holds
            return
        services.hub.dispatch(message)
        if (
            isinstance(message, StreamsAdvanced)
            and message.removed_from is not None
            and len(services.typing)
        ):
            members = frozenset(pk for pk, _ in message.targets)
            services.typing.members_changed(message.removed_from, members)

    def _suspect(self, session_ids: tuple[str, ...]) -> None:
        hub = self._services.hub
        live = [sid for sid in session_ids if hub.sockets_of_session(sid)]
        if not live:
            return
        self._suspects.update(live)
        if self._checking is None:
            self._checking = asyncio.get_running_loop().create_task(self._check())

    async def _check(self) -> None:
        """Close the suspected sessions the store says ended; one lookup at a time, the
        hints that arrive meanwhile wait for the next."""
        try:
            while self._suspects:
                batch, self._suspects = list(self._suspects), set()
                await close_revoked(self._services, batch)
        except Exception:
            log.exception("revocation check failed; the periodic sweep will retry")
        finally:
            self._checking = None

    async def close(self) -> None:
        await self._merge.close()
        if self._checking is not None:
            self._checking.cancel()
            await asyncio.gather(self._checking, return_exceptions=True)


async def close_revoked(services: Services, session_ids: list[str]) -> None:
    """Close this node's sockets of those sessions the store says ended, with the store's
    reason and wipe flag (for revocation hints, and the sweep that repairs lost ones)."""
    from chinwag.server.handlers.sessions import revoked_among

    revoked = await revoked_among(services, session_ids)
    by_ending: dict[tuple[str, bool], list[str]] = {}
    for session_id, ending in revoked.items():
        by_ending.setdefault((ending.reason, ending.wipe), []).append(session_id)
    for (reason, wipe), ids in by_ending.items():
        services.hub.dispatch(SessionsRevoked(session_ids=tuple(ids), reason=reason, wipe=wipe))
