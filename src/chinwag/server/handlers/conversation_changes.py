"""Changing a conversation: metadata, participants, leaving, deleting.

Each change is written together with the events that tell the affected users, in one
transaction under the conversation's row lock. Any change of participants makes a distinct
conversation non-distinct (its key no longer names its participant set).
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.core.errors import NotFound, ParticipantsBlocked
from chinwag.core.events import EventType
from chinwag.core.ids import user_id_problem
from chinwag.core.webhook_events import (
    ParticipantsChange,
    WebhookEventType,
    participants_changed,
)
from chinwag.server.handlers.auth import Authenticated
from chinwag.server.handlers.conversation_policy import participant_pks
from chinwag.server.handlers.conversations import (
    append,
    check_user_ids,
    invalid,
    load,
    require_active,
    shared_view,
    view,
)
from chinwag.server.handlers.metadata import apply_patch, check_budget, parse_patch
from chinwag.server.rate_limits import Action
from chinwag.server.services import Services
from chinwag.server.storage import blocks as block_store
from chinwag.server.storage import conversations as store
from chinwag.server.storage import outbox as outbox_store
from chinwag.server.storage import users as user_store
from chinwag.server.storage.conversations import ConversationRow
from chinwag.server.storage.database import Transaction

__all__ = [
    "CONVERSATION_DELETE_MODES",
    "add_participants",
    "announce_participants_changed",
    "delete_conversation",
    "depart",
    "leave",
    "remove_participant",
    "update_metadata",
]

CONVERSATION_DELETE_MODES = ("all_participants", "my_devices")


async def update_metadata(
    services: Services, caller: Authenticated, conversation_id: str, changes: object
) -> dict[str, Any]:
    """Apply a dotted-path patch; the participants are told the patch, not the result."""
    await services.rate_limits.charge(Action.METADATA, caller)
    limit = services.settings.max_metadata_bytes
    patch = parse_patch(changes, limit)
    async with services.db.transaction() as tx:
        conv, member = await load(tx.conn, caller, conversation_id, lock=True)
        require_active(member)
        old = orjson.loads(conv.metadata)
        new = apply_patch(old, patch)
        if new != old:
            check_budget(new, limit)
            await store.update_conversation(tx.conn, conv.id, metadata=orjson.dumps(new).decode())
            conv, member = await load(tx.conn, caller, conversation_id)
            readers = [pk for pk, _ in await store.member_user_ids(tx.conn, conv.id)]
            data = {"conversation_id": conv.public_id, "metadata": patch}
            await append(
                services, tx, conv.id, caller.app_id, EventType.CONVERSATION_UPDATED, data, readers
            )
        return await view(tx.conn, conv, member)


async def add_participants(
    services: Services, caller: Authenticated, conversation_id: str, user_ids: object
) -> dict[str, Any]:
    """New members get ``conversation.created``; the others ``participants_added``."""
    limit = services.settings.max_participants
    named = check_user_ids(user_ids, "user_ids", limit)
    if not named:
        raise invalid("user_ids", "expected at least one user id")
    await services.rate_limits.charge(Action.PARTICIPANTS, caller, len(named))
    now = services.now()
    async with services.db.transaction() as tx:
        conv, member = await load(tx.conn, caller, conversation_id, lock=True)
        require_active(member)
        pks = await participant_pks(tx.conn, caller, named, now=now)
        members = await store.member_user_ids(tx.conn, conv.id)
        before = [pk for pk, _ in members]
        new = [pks[u] for u in named if pks[u] not in before]
        newcomers = {u: pks[u] for u in named if pks[u] not in before}
        await _refuse_blocked(tx.conn, caller.app_id, members, newcomers)
        if len(before) + len(new) > limit:
            raise invalid("user_ids", f"at most {limit} participants")
        if new:
            await store.add_members(tx.conn, conv.id, new, now=now, position=conv.last_position)
            await store.clear_distinct(tx.conn, conv.id)
            conv, member = await load(tx.conn, caller, conversation_id)
            shared = await shared_view(tx.conn, conv)
            await append(
                services, tx, conv.id, caller.app_id, EventType.CONVERSATION_CREATED,
                {"conversation": shared}, new, webhook=False,
            )  # fmt: skip
            added = [u for u in named if pks[u] in new]
            data = {
                "conversation_id": conv.public_id,
                "user_ids": added,
                "participants": shared["participants"],
            }
            await append(
                services, tx, conv.id, caller.app_id, EventType.PARTICIPANTS_ADDED, data, before,
                webhook=False,
            )  # fmt: skip
            await announce_participants_changed(
                services, tx, caller.app_id,
                participants_changed(
                    ParticipantsChange.ADDED, conv.public_id, added, shared["participants"]
                ),
            )  # fmt: skip
        return await view(tx.conn, conv, member)


async def _refuse_blocked(
    conn: AsyncConnection, app_id: str, members: list[tuple[int, str]], named: dict[str, int]
) -> None:
    """403 when a newcomer blocked a member or a member blocked a newcomer (blocks among
    the members already there do not stop anyone joining)."""
    everyone = {user_id: pk for pk, user_id in members} | named
    if await block_store.any_block(conn, app_id, named, everyone) or await block_store.any_block(
        conn, app_id, everyone, named
    ):
        raise ParticipantsBlocked()


async def announce_participants_changed(
    services: Services, tx: Transaction, app_id: str, data: dict[str, Any]
) -> None:
    """The one ``conversation.participants_changed`` webhook of a change (the stream events
    are each reader's side of it: ``core.webhook_events``); ``data`` from
    :func:`~chinwag.core.webhook_events.participants_changed`."""
    written = await outbox_store.write_webhook(
        tx.conn, app_id=app_id, event_type=WebhookEventType.CONVERSATION_PARTICIPANTS_CHANGED,
        data=data, now=services.now(),
    )  # fmt: skip
    if written:
        tx.after_commit(services.outbox_written)


async def depart(
    services: Services,
    tx: Transaction,
    conv: ConversationRow,
    user_pk: int,
    user_id: str,
    change: ParticipantsChange,
) -> None:
    """``user_pk`` stops being a participant; they keep the history up to now, and the
    metadata and participants as they are now (``left_snapshot``), never what comes later.
    ``change``: how, for the app's webhook (left, or removed by someone else)."""
    people = await store.member_user_ids(tx.conn, conv.id)
    remaining = [(pk, u) for pk, u in people if pk != user_pk]
    others = [u for _, u in remaining]
    snapshot = f'{{"metadata":{conv.metadata},"participants":{orjson.dumps(others).decode()}}}'
    # The appends first: each merges the conversation into its readers' streams (users
    # rows locked, then participants rows written), and the leaver's participants row
    # written before those locks could deadlock against a merge of their stream. The
    # conversation is locked, so its log ends at last_position either way.
    left = {"conversation_id": conv.public_id, "position": conv.last_position}
    await append(
        services, tx, conv.id, conv.app_id, EventType.CONVERSATION_LEFT, left, [user_pk],
        webhook=False,
    )  # fmt: skip
    data = {"conversation_id": conv.public_id, "user_ids": [user_id], "participants": others}
    await append(
        services, tx, conv.id, conv.app_id, EventType.PARTICIPANTS_REMOVED, data,
        [pk for pk, _ in remaining], webhook=False,
    )  # fmt: skip
    await announce_participants_changed(
        services, tx, conv.app_id, participants_changed(change, conv.public_id, [user_id], others)
    )
    await store.mark_left(
        tx.conn, conv.id, user_pk, now=services.now(), position=conv.last_position,
        snapshot=snapshot,
    )  # fmt: skip
    await store.clear_distinct(tx.conn, conv.id)


async def remove_participant(
    services: Services, caller: Authenticated, conversation_id: str, user_id: str
) -> None:
    async with services.db.transaction() as tx:
        conv, member = await load(tx.conn, caller, conversation_id, lock=True)
        require_active(member)
        target = None
        if user_id_problem(user_id) is None:
            target = await user_store.get_user(tx.conn, caller.app_id, user_id)
        gone = await store.get_member(tx.conn, conv.id, target.pk) if target else None
        if target is None or gone is None or not gone.active:
            raise NotFound("No participant with that user id in this conversation.")
        # Removing oneself is leaving, whichever call said it.
        own = target.pk == caller.user.pk
        change = ParticipantsChange.LEFT if own else ParticipantsChange.REMOVED
        await depart(services, tx, conv, target.pk, target.user_id, change)


async def leave(services: Services, caller: Authenticated, conversation_id: str) -> None:
    async with services.db.transaction() as tx:
        conv, member = await load(tx.conn, caller, conversation_id, lock=True)
        require_active(member)
        await depart(
            services, tx, conv, caller.user.pk, caller.user.user_id, ParticipantsChange.LEFT
        )


async def delete_conversation(
    services: Services, caller: Authenticated, conversation_id: str, *, mode: str
) -> None:
    """``all_participants`` ends the conversation for everyone; ``my_devices`` hides its
    history so far for the caller only (a former participant may do that too)."""
    if mode not in CONVERSATION_DELETE_MODES:
        raise invalid("mode", "expected all_participants or my_devices")
    async with services.db.transaction() as tx:
        conv, member = await load(tx.conn, caller, conversation_id, lock=True)
        up_to = conv.last_position if member.left_position is None else member.left_position
        data = {"conversation_id": conv.public_id, "mode": mode, "up_to_position": up_to}
        if mode == "my_devices":
            if up_to > member.hidden_position:
                read = max(member.read_position, up_to)
                await store.set_marks(
                    tx.conn, conv.id, member.user_pk, hidden_position=up_to, read_position=read,
                    delivered_position=max(member.delivered_position, read),
                )  # fmt: skip
                await append(
                    services, tx, conv.id, caller.app_id, EventType.CONVERSATION_DELETED,
                    data, [member.user_pk],
                )  # fmt: skip
            return
        require_active(member)
        readers = [pk for pk, _ in await store.member_user_ids(tx.conn, conv.id)]
        await store.update_conversation(
            tx.conn, conv.id, deleted_at=services.now(), distinct_key=None
        )
        await append(
            services, tx, conv.id, caller.app_id, EventType.CONVERSATION_DELETED, data, readers
        )
