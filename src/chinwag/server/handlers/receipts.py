"""Read and delivery receipts as per-user watermarks, one pair per membership.

A receipt only ever moves a watermark forward: read never goes back, delivered never falls
below read, and a position beyond the newest message is clamped to it. Because the marks
belong to the user, not the device, a read on one device is a read on all of them; every
participant's stream gets the new pair (nothing is written when nothing moved).
"""

from __future__ import annotations

from typing import Any

from chinwag.core.events import EventType
from chinwag.server.handlers.auth import Authenticated, require_live_session
from chinwag.server.handlers.conversations import append, invalid, load, require_active, visibility
from chinwag.server.handlers.messages import find_message
from chinwag.server.rate_limits import Action
from chinwag.server.services import Services
from chinwag.server.storage import conversations as store
from chinwag.server.storage import messages as message_store
from chinwag.server.storage.conversations import ConversationRow, MemberRow
from chinwag.server.storage.database import Transaction

__all__ = ["RECEIPT_TYPES", "mark_message_receipt", "mark_receipt", "next_marks"]

RECEIPT_TYPES = ("read", "delivered")


def next_marks(kind: str, position: int, *, read: int, delivered: int) -> tuple[int, int]:
    """The (read, delivered) pair after a receipt; both only grow."""
    if kind == "read":
        read = max(read, position)
    delivered = max(delivered, read, position)
    return read, delivered


def _check(kind: object, position: object) -> tuple[str, int]:
    if kind not in RECEIPT_TYPES:
        raise invalid("type", "expected read or delivered")
    if isinstance(position, bool) or not isinstance(position, int) or position < 0:
        raise invalid("position", "expected a non-negative integer")
    return str(kind), position


async def mark_receipt(
    services: Services,
    caller: Authenticated,
    conversation_id: str,
    kind: str,
    position: int,
) -> dict[str, Any]:
    """Move the caller's watermark to ``position``; returns the marks and the unread count."""
    await services.rate_limits.charge(Action.RECEIPTS, caller)
    kind, position = _check(kind, position)
    async with services.db.transaction() as tx:
        conv, member = await load(tx.conn, caller, str(conversation_id), lock=True)
        return await _apply(services, tx, caller, conv, member, kind, position)


async def mark_message_receipt(
    services: Services, caller: Authenticated, message_id: str, kind: str
) -> dict[str, Any]:
    """A receipt at the position of one message."""
    await services.rate_limits.charge(Action.RECEIPTS, caller)
    kind, _ = _check(kind, 0)
    async with services.db.transaction() as tx:
        row, conv, member = await find_message(tx.conn, caller, message_id, lock=True)
        return await _apply(services, tx, caller, conv, member, kind, row.position)


async def _apply(
    services: Services,
    tx: Transaction,
    caller: Authenticated,
    conv: ConversationRow,
    member: MemberRow,
    kind: str,
    position: int,
) -> dict[str, Any]:
    await require_live_session(tx.conn, caller.session.id, services.now())
    require_active(member)
    read, delivered = next_marks(
        kind,
        min(position, conv.last_position),
        read=member.read_position,
        delivered=member.delivered_position,
    )
    if (read, delivered) != (member.read_position, member.delivered_position):
        readers = await store.active_member_pks(tx.conn, conv.id)
        data = {
            "conversation_id": conv.public_id,
            "user_id": caller.user.user_id,
            "read_position": read,
            "delivered_position": delivered,
        }
        # The append first: it merges the conversation into the readers' streams, locking
        # their users rows and then writing participants rows; taking this participants
        # row before those locks could deadlock against a merge of the caller's stream.
        await append(services, tx, conv.id, caller.app_id, EventType.RECEIPT, data, readers)
        await store.set_read_delivered(
            tx.conn, conv.id, member.user_pk, read_position=read, delivered_position=delivered
        )
    unread = await message_store.unread_count(
        tx.conn, conv.id, visibility(member), read_position=read
    )
    return {"read_position": read, "delivered_position": delivered, "unread_count": unread}
