"""Blocking: a user hides another user's messages and never shares a new conversation
with them.

What a block does, and where:

- the blocker's message pages, unread counts and last messages skip the blocked user's
  messages, old and new (``storage.messages`` filters on ``storage.blocks``); unblocking
  shows them again;
- a message the blocked user sends is not appended to the blocker's stream at all
  (``handlers.messages.store_message``), so it never reaches the blocker's devices live and
  their stream stays dense (no position to skip);
- neither can create a conversation with the other in it, nor add the other to one: 403
  ``participants_blocked``, the same answer whoever blocked whom.

Existing conversations stay as they are: leaving is the user's choice.
"""

from __future__ import annotations

from typing import Any

from chinwag.core.ids import user_id_problem
from chinwag.server.handlers.actors import AuditHook, audited
from chinwag.server.handlers.conversations import invalid
from chinwag.server.services import Services
from chinwag.server.storage import blocks as block_store
from chinwag.server.storage.records import UserRecord

__all__ = ["MAX_BLOCKS", "block", "list_blocks", "unblock"]

MAX_BLOCKS = 1000
"""Users one user may block: every block is a filter on the blocker's message pages and
a check on each conversation they create, and the list is answered whole."""


def _other(blocker: UserRecord, other: str) -> str:
    problem = user_id_problem(other)
    if problem is not None:
        raise invalid("user_id", f"the user id {problem}")
    if other == blocker.user_id:
        raise invalid("user_id", "a user cannot block themself")
    return other


async def block(
    services: Services, blocker: UserRecord, other: str, *, audit: AuditHook | None = None
) -> bool:
    """Block ``other`` (a user id, existing or not); True when the block is new."""
    other = _other(blocker, other)
    async with services.db.transaction() as tx:
        if await block_store.count_blocks_locked(tx.conn, blocker.pk) >= MAX_BLOCKS:
            if await block_store.has_blocked(tx.conn, blocker.pk, other):
                return False  # blocking twice is not an error, even at the cap
            raise invalid("user_id", f"a user may block at most {MAX_BLOCKS} users")
        added = await block_store.add_block(
            tx.conn,
            app_id=blocker.app_id,
            blocker_pk=blocker.pk,
            blocked_user_id=other,
            now=services.now(),
        )
        await audited(tx, audit)
        return added


async def unblock(
    services: Services, blocker: UserRecord, other: str, *, audit: AuditHook | None = None
) -> bool:
    """True when there was a block to lift."""
    other = _other(blocker, other)
    async with services.db.transaction() as tx:
        removed = await block_store.remove_block(
            tx.conn, blocker_pk=blocker.pk, blocked_user_id=other
        )
        await audited(tx, audit)
        return removed


async def list_blocks(services: Services, blocker: UserRecord) -> dict[str, Any]:
    async with services.db.read() as conn:
        rows = await block_store.list_blocked(conn, blocker.pk)
    return {"blocks": [{"user_id": user_id, "blocked_at": at} for user_id, at in rows]}
