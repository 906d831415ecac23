"""Messages: sending (idempotent by client-chosen id), paging, deleting.

A message id is chosen by the client so a retry after a lost answer cannot post twice:
the same id with the same parts from the same sender in the same conversation answers the
stored message; anything else under that id is 409 ``id_in_use``. The check runs after the
conversation's row lock is taken, so two concurrent sends of one id see each other. It is
the INSERT itself (ON CONFLICT DO NOTHING, which on PostgreSQL waits for a concurrent
inserter of the id to commit); only a send that finds its id taken reads the stored
message, so a new message costs no lookup.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.core.errors import AccessDenied, IdInUse, MessageTooLarge, NotFound
from chinwag.core.events import EventType
from chinwag.core.ids import is_valid_uuid
from chinwag.server.handlers.auth import Authenticated, require_live_session
from chinwag.server.handlers.conversations import (
    append,
    invalid,
    load,
    message_json,
    require_active,
    visibility,
)
from chinwag.server.rate_limits import Action
from chinwag.server.services import Services
from chinwag.server.storage import conversations as store
from chinwag.server.storage import messages as message_store
from chinwag.server.storage.conversations import ConversationRow, MemberRow
from chinwag.server.storage.database import Transaction
from chinwag.server.storage.messages import MessageRow

__all__ = [
    "DELETE_MODES",
    "MAX_PARTS",
    "check_parts",
    "delete_message",
    "find_message",
    "list_messages",
    "send_message",
]

MAX_PARTS = 1000
MAX_MIME_TYPE = 256
DELETE_MODES = ("all_participants", "my_devices")


def check_parts(parts: object, max_bytes: int) -> list[dict[str, str]]:
    """1..1000 ``{"mime_type", "body"}`` objects whose bodies total at most ``max_bytes``."""
    if not isinstance(parts, list) or not 1 <= len(parts) <= MAX_PARTS:
        raise invalid("parts", f"expected a list of 1 to {MAX_PARTS} parts")
    clean: list[dict[str, str]] = []
    size = 0
    for part in parts:
        if not isinstance(part, dict) or set(part) != {"mime_type", "body"}:
            raise invalid("parts", 'each part must be an object with "mime_type" and "body"')
        mime, body = part["mime_type"], part["body"]
        if not isinstance(mime, str) or not 1 <= len(mime) <= MAX_MIME_TYPE:
            raise invalid("parts", f"mime_type must be a string of 1 to {MAX_MIME_TYPE} characters")
        if not isinstance(body, str):
            raise invalid("parts", "body must be a string")
        try:
            mime.encode()
            size += len(body.encode())
        except UnicodeEncodeError:
            raise invalid("parts", "text must be valid Unicode (no lone surrogates)") from None
        if size > max_bytes:
            raise MessageTooLarge(
                f"The message parts total more than {max_bytes} bytes.",
                data={"max_bytes": max_bytes},
            )
        clean.append({"mime_type": mime, "body": body})
    return clean


async def send_message(
    services: Services,
    caller: Authenticated,
    conversation_id: str,
    message_id: str,
    parts: object,
) -> tuple[dict[str, Any], bool]:
    """Store and announce a message; returns (message, created). Retries are answered, not
    repeated."""
    await services.rate_limits.charge(Action.MESSAGES, caller)
    if not is_valid_uuid(message_id):
        raise invalid("id", "expected a lower-case UUID chosen by the client")
    clean = check_parts(parts, services.settings.max_message_bytes)
    encoded = orjson.dumps(clean).decode()

    async def write_message(tx: Transaction) -> tuple[dict[str, Any], bool]:
        # Every refusal below comes before the first write: sends share transactions
        # (``Database.write``), and a refusal must leave nothing behind for the others.
        now = services.now()
        await require_live_session(tx.conn, caller.session.id, now)
        conv, member = await load(tx.conn, caller, str(conversation_id), lock=True)
        require_active(member)
        size = sum(len(p["body"].encode()) for p in clean)
        values = {
            "id": message_id,
            "app_id": caller.app_id,
            "conversation_id": conv.id,
            "sender_pk": caller.user.pk,
            "parts": encoded,
            "size": size,
            "sent_at": now,
            "deleted_at": None,
        }
        position = await message_store.insert_message(tx.conn, values)
        if position is None:
            existing = await message_store.get_message(tx.conn, message_id)
            if existing is None:
                raise IdInUse("That message id is already in use.")
            return _repeat(existing, caller, conv, encoded), False
        await message_store.record_last_message(
            tx.conn, conv.id, position=position, message_id=message_id, now=now
        )
        row = MessageRow(
            id=message_id,
            app_id=caller.app_id,
            conversation_id=conv.id,
            position=position,
            sender_pk=caller.user.pk,
            sender_id=caller.user.user_id,
            parts=encoded,
            size=size,
            sent_at=now,
            deleted_at=None,
        )
        readers = await store.record_send(
            tx.conn, conv.id, sender_pk=caller.user.pk, position=position, at=now
        )
        body = message_json(row, parts=clean)
        await append(
            services, tx, conv.id, caller.app_id, EventType.MESSAGE_CREATED,
            {"message": body}, readers,
        )  # fmt: skip
        return body, True

    return await services.db.write(write_message)


def _repeat(
    existing: MessageRow, caller: Authenticated, conv: ConversationRow, encoded: str
) -> dict[str, Any]:
    same = (
        existing.app_id == caller.app_id
        and existing.conversation_id == conv.id
        and existing.sender_pk == caller.user.pk
        and existing.deleted_at is None
        and orjson.loads(existing.parts) == orjson.loads(encoded)
    )
    if not same:
        raise IdInUse("That message id is already used by a different message.")
    return message_json(existing)


async def list_messages(
    services: Services,
    caller: Authenticated,
    conversation_id: str,
    *,
    after: int | None,
    before: int | None,
    limit: int,
) -> dict[str, Any]:
    async with services.db.read() as conn:
        conv, member = await load(conn, caller, conversation_id)
        rows, has_more = await message_store.page(
            conn, conv.id, visibility(member), after=after, before=before, limit=limit
        )
    return {"messages": [message_json(r) for r in rows], "has_more": has_more}


async def find_message(
    conn: AsyncConnection, caller: Authenticated, message_id: str, *, lock: bool = False
) -> tuple[MessageRow, ConversationRow, MemberRow]:
    """A message the caller can see, with its conversation and their membership; else 404."""
    row = await message_store.get_message(conn, message_id) if is_valid_uuid(message_id) else None
    if row is None or row.app_id != caller.app_id:
        raise NotFound("No message with that id.")
    conv, member = await load(conn, caller, row.conversation_id, lock=lock)
    seen = visibility(member)
    if row.position <= seen.above or (seen.up_to is not None and row.position > seen.up_to):
        raise NotFound("No message with that id.")
    return row, conv, member


async def delete_message(
    services: Services, caller: Authenticated, message_id: str, *, mode: str
) -> None:
    """Delete for everyone (the sender, while a participant) or hide on the caller's devices."""
    if mode not in DELETE_MODES:
        raise invalid("mode", "expected all_participants or my_devices")
    async with services.db.transaction() as tx:
        row, conv, member = await find_message(tx.conn, caller, message_id, lock=True)
        data = {"conversation_id": conv.id, "message_id": row.id, "mode": mode}
        if mode == "my_devices":
            if await message_store.hide_message(tx.conn, caller.user.pk, row.id):
                await append(
                    services, tx, conv.id, caller.app_id, EventType.MESSAGE_DELETED,
                    data, [caller.user.pk],
                )  # fmt: skip
            return
        require_active(member)
        if row.sender_pk != caller.user.pk:
            raise AccessDenied("Only the sender may delete a message for everyone.")
        if await message_store.mark_deleted(tx.conn, row.id, now=services.now()):
            readers = [pk for pk, _ in await store.member_user_ids(tx.conn, conv.id)]
            await append(
                services, tx, conv.id, caller.app_id, EventType.MESSAGE_DELETED, data, readers
            )
