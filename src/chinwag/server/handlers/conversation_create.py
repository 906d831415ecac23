"""Creating conversations, for a signed-in caller or for the app's own server.

One set of rules for both: participants are valid user ids (at most ``max_participants``),
metadata fits its budget, a distinct conversation is unique per participant set, and
nobody is put into a new conversation with someone who blocked them or whom they blocked
(403 ``participants_blocked``, the same answer whoever blocked whom).

A creator is a user (the caller, or a user the platform API names): they are a participant,
``created_by`` names them, and the app's ``conversation_policy`` applies as if they had
called. With no creator the app itself creates it (``created_by`` is null): the app vouches
for its users, so the policy does not apply and unknown ids are created, as under ``open``.
A distinct conversation is unique per participant set: the insert is ON CONFLICT DO
NOTHING on (app, distinct_key), so of many concurrent creators exactly one inserts and the
rest read its row (200, or 409 when they asked for other metadata).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.core.errors import Conflict, IdInUse, ParticipantsBlocked
from chinwag.core.events import EventType
from chinwag.core.ids import is_valid_uuid
from chinwag.server.handlers.actors import Actor, AuditHook, FanoutCharge, audited, charged
from chinwag.server.handlers.auth import Authenticated
from chinwag.server.handlers.conversation_policy import participant_pks
from chinwag.server.handlers.conversations import (
    append,
    check_user_ids,
    invalid,
    shared_json,
    shared_view,
    view,
)
from chinwag.server.handlers.metadata import check_budget, check_metadata
from chinwag.server.rate_limits import Action
from chinwag.server.services import Services
from chinwag.server.storage import blocks as block_store
from chinwag.server.storage import conversations as store
from chinwag.server.storage.conversations import ConversationRow

__all__ = ["NewConversation", "create_conversation", "create_for", "distinct_key"]


@dataclass(frozen=True, slots=True)
class NewConversation:
    """What to create; ``participants`` already checked by :func:`check_user_ids`."""

    participants: list[str]
    distinct: bool
    metadata: object
    conversation_id: object = None


def distinct_key(user_ids: list[str]) -> str:
    return hashlib.sha256(orjson.dumps(sorted(user_ids))).hexdigest()


async def create_conversation(
    services: Services,
    caller: Authenticated,
    *,
    participants: object,
    distinct: bool,
    metadata: object,
    conversation_id: object = None,
) -> tuple[dict[str, Any], bool]:
    """Create a conversation with the caller in it; returns (conversation, created)."""
    await services.rate_limits.charge(Action.CONVERSATIONS, caller)
    named = check_user_ids(participants, "participants", services.settings.max_participants)
    await services.rate_limits.charge(Action.PARTICIPANTS, caller, len(named))
    wanted = NewConversation(named, distinct, metadata, conversation_id)
    return await create_for(services, caller.app_id, caller, wanted)


async def create_for(
    services: Services,
    app_id: str,
    creator: Actor | None,
    wanted: NewConversation,
    *,
    shared: bool = False,
    audit: AuditHook | None = None,
    charge: FanoutCharge | None = None,
) -> tuple[dict[str, Any], bool]:
    """Create ``wanted`` in ``app_id``, by ``creator`` or (None) by the app itself.

    The answer is the conversation as the creator sees it, or (``shared``, and always
    without a creator) as every participant does. ``charge`` is told the participants
    (each gets the event) before any work."""
    user_ids, meta = _checked(services, creator, wanted)
    await charged(charge, len(user_ids))
    now = services.now()
    new_id = str(uuid.UUID(bytes=services.random(16), version=4))
    public_id = str(wanted.conversation_id or new_id)
    key = distinct_key(user_ids) if wanted.distinct else None
    seen = _Seen(creator, shared or creator is None)
    async with services.db.transaction() as tx:
        pks = await _participants(tx.conn, app_id, creator, user_ids, now)
        row = {
            "id": new_id,
            "public_id": public_id,
            "app_id": app_id,
            "distinct": wanted.distinct,
            "distinct_key": key,
            "metadata": orjson.dumps(meta).decode(),
            "created_by_pk": creator.user.pk if creator is not None else None,
            "created_at": now,
            "last_position": 0,
            "participant_count": 0,
        }
        if not await store.insert_conversation(tx.conn, row):
            found = await _existing(tx.conn, app_id, seen, public_id, key, meta, user_ids)
            return found, False
        ordered = [pks[u] for u in user_ids]
        await store.add_members(tx.conn, new_id, ordered, now=now, position=0)
        conv = await store.get_conversation(tx.conn, app_id, conversation_id=public_id)
        assert conv is not None
        created = await shared_json(tx.conn, conv, None)
        await append(
            services, tx, new_id, app_id, EventType.CONVERSATION_CREATED,
            {"conversation": created}, ordered,
        )  # fmt: skip
        answer = await _answer(tx.conn, conv, seen)
        assert answer is not None
        await audited(tx, audit)
        return answer, True


def _checked(
    services: Services, creator: Actor | None, wanted: NewConversation
) -> tuple[list[str], dict[str, Any]]:
    """The participants (the creator first) and the metadata, checked; else 4xx."""
    limit = services.settings.max_participants
    first = [creator.user.user_id] if creator is not None else []
    user_ids = list(dict.fromkeys([*first, *wanted.participants]))
    if not user_ids:
        raise invalid("participants", "expected at least one user id")
    if len(user_ids) > limit:
        raise invalid("participants", f"at most {limit} participants")
    meta = check_metadata({} if wanted.metadata is None else wanted.metadata)
    check_budget(meta, services.settings.max_metadata_bytes)
    if wanted.conversation_id is not None and not is_valid_uuid(wanted.conversation_id):
        raise invalid("id", "expected a lower-case UUID")
    return user_ids, meta


async def _participants(
    conn: AsyncConnection, app_id: str, creator: Actor | None, user_ids: list[str], now: float
) -> dict[str, int]:
    """user_id → pk: by the app's policy for a creator; created as needed for the app
    itself. 403 ``participants_blocked`` when any of them blocked another."""
    if creator is not None:
        pks = await participant_pks(conn, creator, user_ids, now=now)
    else:
        pks = await store.ensure_users(conn, app_id, user_ids, now)
    if await block_store.any_block(conn, app_id, pks, pks):
        raise ParticipantsBlocked()
    return pks


@dataclass(frozen=True, slots=True)
class _Seen:
    """Whose answer: the creator's view, or (``shared``) every participant's."""

    creator: Actor | None
    shared: bool


async def _answer(
    conn: AsyncConnection, conv: ConversationRow, seen: _Seen, *, active: bool = False
) -> dict[str, Any] | None:
    """The conversation as ``seen`` says; None if the creator is not a member of it (or
    not an active one, when ``active``)."""
    member = None
    if seen.creator is not None:
        member = await store.get_member(conn, conv.id, seen.creator.user.pk)
        if member is None or (active and not member.active):
            return None
    if member is not None and not seen.shared:
        return await view(conn, conv, member)
    return await shared_view(conn, conv)


async def _existing(
    conn: AsyncConnection,
    app_id: str,
    seen: _Seen,
    conversation_id: str,
    key: str | None,
    meta: dict[str, Any],
    user_ids: list[str],
) -> dict[str, Any]:
    """What a create that did not insert answers: the existing distinct one, or 409."""
    if key is not None:
        conv = await store.get_conversation(conn, app_id, distinct_key=key)
        body = await _answer(conn, conv, seen) if conv is not None else None
        if body is not None:
            if meta and meta != body["metadata"]:
                raise Conflict("A distinct conversation with these participants exists.", data=body)
            return body
    conv = await store.get_conversation(conn, app_id, conversation_id=conversation_id)
    body = await _answer(conn, conv, seen, active=True) if conv is not None else None
    if body is not None:
        same = (
            set(body["participants"]) == set(user_ids)
            and body["distinct"] == (key is not None)
            and body["metadata"] == meta
        )
        if same:
            return body
    raise IdInUse("That conversation id is already in use.")
