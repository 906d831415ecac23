"""Conversations: who may see them, how they are created, listed and changed.

Authorization is one rule applied everywhere through :func:`load`: only a user with a
participant row sees a conversation (anyone else gets 404, never 403, so ids leak nothing);
a former participant keeps read access to the history before they left and gets 403 on
writes. Every write locks the conversation row first (PostgreSQL), then participant rows,
then users' stream heads — one order everywhere, so concurrent writers cannot deadlock.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.core.errors import AccessDenied, InvalidRequest, NotFound
from chinwag.core.events import EventType
from chinwag.core.ids import is_valid_uuid, user_id_problem
from chinwag.server.handlers.actors import Actor
from chinwag.server.handlers.auth import Authenticated, refuse_ended, require_live_session
from chinwag.server.handlers.emit import emit
from chinwag.server.handlers.metadata import check_metadata
from chinwag.server.rate_limits import ReadPage
from chinwag.server.services import Services
from chinwag.server.storage import blocks as block_store
from chinwag.server.storage import conversations as store
from chinwag.server.storage import engines
from chinwag.server.storage import events as event_store
from chinwag.server.storage import messages as message_store
from chinwag.server.storage.conversations import ConversationRow, MemberRow
from chinwag.server.storage.database import Transaction
from chinwag.server.storage.messages import MessageRow, Visibility

__all__ = [
    "Render",
    "active_participant_pks",
    "append",
    "check_metadata",
    "check_user_ids",
    "emit",
    "get_conversation",
    "invalid",
    "list_conversations",
    "load",
    "lock_conversation",
    "membership",
    "message_json",
    "require_active",
    "shared_json",
    "shared_view",
    "view",
    "visibility",
]

SORTS = ("last_message", "created_at")


def invalid(prop: str, problem: str) -> InvalidRequest:
    return InvalidRequest.of_property(prop, problem)


async def append(
    services: Services,
    tx: Transaction,
    conv_id: str,
    app_id: str,
    event_type: EventType,
    data: dict[str, Any],
    user_pks: list[int],
    *,
    webhook: bool = True,
) -> None:
    """``webhook``: as in :func:`~chinwag.server.storage.events.append_event`."""
    appended = await event_store.append_event(
        tx.conn,
        app_id=app_id,
        event_type=event_type,
        data=data,
        user_pks=user_pks,
        now=services.now(),
        conversation_id=conv_id,
        webhook=webhook,
    )
    emit(services, tx, appended)


def message_json(
    row: MessageRow, conversation_id: str, *, parts: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    """``conversation_id``: the conversation's public id; ``parts``: ``row.parts`` already
    decoded, when the caller has them."""
    return {
        "id": row.public_id,
        "conversation_id": conversation_id,
        "position": row.position,
        "sender_id": row.sender_id,
        "parts": orjson.loads(row.parts) if parts is None else parts,
        "sent_at": row.sent_at,
        "deleted": row.deleted_at is not None,
        "bot": row.sender_bot,
    }


def check_user_ids(value: object, prop: str, limit: int) -> list[str]:
    """A list of valid user ids, de-duplicated in order."""
    if not isinstance(value, list):
        raise invalid(prop, "expected a list of user ids")
    seen: dict[str, None] = {}
    for item in value:
        problem = user_id_problem(item)
        if problem is not None:
            raise invalid(prop, f"every user id {problem}")
        seen[item] = None
        if len(seen) > limit:
            raise invalid(prop, f"at most {limit} participants")
    return list(seen)


async def load(
    conn: AsyncConnection,
    caller: Actor,
    conversation_id: str,
    *,
    lock: bool = False,
    live_session: tuple[str, float] | None = None,
) -> tuple[ConversationRow, MemberRow]:
    """The conversation and the caller's membership; 404 unless they are or were a member.

    One joined read, except when locking on PostgreSQL: there the conversation's row lock
    is taken first (:func:`lock_conversation`) and the membership read after it, so it is
    the one the lock holder before us left (see ``storage.conversations.get_membership``).

    ``live_session``: (session id, now): the caller's session must be live, or 401 before
    anything else (``require_live_session``)."""
    if lock and engines.locks_rows(conn):
        conv = await lock_conversation(conn, caller, conversation_id, live_session=live_session)
        return conv, await membership(conn, conv, caller)
    if live_session is not None:
        await require_live_session(conn, *live_session)
    if not is_valid_uuid(conversation_id):
        raise NotFound("No conversation with that id.")
    found = await store.get_membership(conn, caller.app_id, conversation_id, caller.user.pk)
    if found is None:
        raise NotFound("No conversation with that id.")
    return found


async def lock_conversation(
    conn: AsyncConnection,
    caller: Actor,
    conversation_id: str,
    *,
    live_session: tuple[str, float] | None = None,
) -> ConversationRow:
    """PostgreSQL: the conversation with its row lock taken, 404 if there is none; not yet
    whether the caller is a member (the caller reads that after the lock, or a send's
    insert checks it: ``storage.message_send``). ``live_session`` as for :func:`load`,
    read by the lock's own statement: one round trip fewer on every send."""
    if not is_valid_uuid(conversation_id):
        if live_session is not None:
            await require_live_session(conn, *live_session)  # 401 before 404
        raise NotFound("No conversation with that id.")
    if live_session is None:
        conv = await store.get_conversation(
            conn, caller.app_id, conversation_id=conversation_id, lock=True
        )
    else:
        session_id, now = live_session
        locked = await store.get_locked_with_session(
            conn, caller.app_id, conversation_id, session_id
        )
        if locked is None:
            await require_live_session(conn, session_id, now)  # 401 before 404
            conv = None
        else:
            conv, session = locked
            refuse_ended(session, now)
    if conv is None:
        raise NotFound("No conversation with that id.")
    return conv


async def membership(conn: AsyncConnection, conv: ConversationRow, caller: Actor) -> MemberRow:
    """The caller's participant row in ``conv``, active or former; 404 if they never were
    one. On PostgreSQL read after the conversation's lock (:func:`load`)."""
    member = await store.get_member(conn, conv.id, caller.user.pk)
    if member is None:
        raise NotFound("No conversation with that id.")
    return member


def require_active(member: MemberRow) -> None:
    if not member.active:
        raise AccessDenied()


def visibility(member: MemberRow) -> Visibility:
    return Visibility(
        user_pk=member.user_pk, above=member.hidden_position, up_to=member.left_position
    )


async def shared_json(
    conn: AsyncConnection, conv: ConversationRow, last: MessageRow | None
) -> dict[str, Any]:
    """The conversation as every participant sees it (no per-user fields)."""
    people = await store.member_user_ids(conn, conv.id)
    creator = await store.user_ids_by_pk(conn, [conv.created_by_pk] if conv.created_by_pk else [])
    return {
        "id": conv.public_id,
        "distinct": conv.distinct,
        "metadata": orjson.loads(conv.metadata),
        "participants": [user_id for _, user_id in people],
        "created_at": conv.created_at,
        "created_by": creator.get(conv.created_by_pk or 0),
        "last_message": message_json(last, conv.public_id) if last else None,
        "last_position": conv.last_position,
    }


async def shared_view(conn: AsyncConnection, conv: ConversationRow) -> dict[str, Any]:
    """:func:`shared_json` with the conversation's newest message as stored (a deleted one
    shows as deleted): no one user reads it, so no one user's blocks or hides apply. The
    platform API's answers, and what newcomers are told of a conversation."""
    last = None
    if conv.last_message_id is not None:
        last = await message_store.get_message(conn, conv.last_message_id)
    return await shared_json(conn, conv, last)


async def view(conn: AsyncConnection, conv: ConversationRow, member: MemberRow) -> dict[str, Any]:
    """The conversation as ``member`` sees it, with their watermarks and unread count."""
    seen = visibility(member)
    body = await shared_json(conn, conv, await message_store.last_visible(conn, conv.id, seen))
    if member.left_position is not None:
        body["last_position"] = member.left_position
    if not member.active:
        body.update(_frozen(member), distinct=False)
    body["unread_count"] = await message_store.unread_count(
        conn, conv.id, seen, read_position=member.read_position
    )
    body["read_position"] = member.read_position
    body["delivered_position"] = member.delivered_position
    body["left"] = not member.active
    return body


def _frozen(member: MemberRow) -> dict[str, Any]:
    """What a former participant sees of metadata and participants: the conversation as
    it was when they left. (A row that left before snapshots were kept shows neither.)"""
    frozen = orjson.loads(member.left_snapshot or '{"metadata":{},"participants":[]}')
    return {"metadata": frozen["metadata"], "participants": frozen["participants"]}


async def get_conversation(
    services: Services, caller: Authenticated, conversation_id: str
) -> dict[str, Any]:
    async with services.db.read() as conn:
        conv, member = await load(conn, caller, conversation_id)
        return await view(conn, conv, member)


async def active_participant_pks(
    services: Services, caller: Authenticated, conversation_id: str
) -> list[int]:
    """Who is in the conversation now (for relaying typing), less those who blocked the
    caller; the caller must be one of them."""
    async with services.db.read() as conn:
        conv, member = await load(conn, caller, conversation_id)
        require_active(member)
        blockers = await block_store.blockers_of(conn, caller.app_id, caller.user.user_id)
        return [pk for pk, _ in await store.member_user_ids(conn, conv.id) if pk not in blockers]


def _encode_cursor(sort: str, value: float, conversation_id: str) -> str:
    raw = orjson.dumps([sort, value, conversation_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: str) -> tuple[float, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        kind, value, last_id = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
        if kind != sort or not isinstance(value, int | float) or not is_valid_uuid(last_id):
            raise ValueError(cursor)
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise invalid("cursor", "not a cursor this server issued for this sort") from None
    return float(value), str(last_id)


Render = Callable[[AsyncConnection, ConversationRow, MemberRow], Awaitable[dict[str, Any]]]
"""How a listed conversation is shown: as its member sees it (:func:`view`), or as every
participant does (the platform API)."""


MAX_PAGE_BYTES = 1024 * 1024
"""A page of conversations ends before the one that would take its JSON past this."""
CONVERSATION_COST = 8 * 1024
"""What each conversation listed counts against the read budget besides its bytes: it
took four statements (~0.13 ms of CPU on SQLite), where a message of a page took one row."""


async def list_conversations(
    services: Services,
    caller: Actor,
    *,
    sort: str,
    limit: int,
    cursor: str | None,
    render: Render = view,
) -> dict[str, Any]:
    """The conversations ``caller``'s own list shows, newest first, one page; the platform
    API pages a user's list by the same cursors with a different ``render``.

    A page also ends before the conversation that would take it past
    :data:`MAX_PAGE_BYTES` of JSON (at least one comes): each may carry 1,000
    participants, 16 KiB of metadata and a 64 KiB last message, so 100 of them were up to
    ~9 MB held and rendered at once. A device's page is charged to its read budget by
    those bytes, each conversation counting :data:`CONVERSATION_COST` more for the reads
    that built it."""
    if sort not in SORTS:
        raise invalid("sort", "expected last_message or created_at")
    after = _decode_cursor(cursor, sort) if cursor else None
    reading: AbstractAsyncContextManager[ReadPage] = (
        services.rate_limits.reading(caller, item_cost=CONVERSATION_COST)
        if isinstance(caller, Authenticated)
        else nullcontext(ReadPage())  # the platform's list: charged per request by its key
    )
    items: list[dict[str, Any]] = []
    async with reading as served, services.db.read() as conn:
        rows = await store.list_for_user(
            conn, caller.app_id, caller.user.pk, sort=sort, limit=limit + 1, after=after
        )
        for conv, member, _ in rows[:limit]:
            item = await render(conn, conv, member)
            size = len(orjson.dumps(item))
            if items and served.served + size > MAX_PAGE_BYTES:
                break
            items.append(item)
            served.served += size
        served.items = len(items)
    next_cursor = None
    if len(rows) > len(items):
        last_conv, _, last_value = rows[len(items) - 1]
        next_cursor = _encode_cursor(sort, last_value, last_conv.id)
    return {"conversations": items, "next_cursor": next_cursor}
