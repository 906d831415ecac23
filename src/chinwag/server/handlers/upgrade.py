"""Anonymous → identified: what happens to an anonymous user's data when they sign in.

The upgrade runs inside the sign-in's own transaction, right after the new session is
opened, so either both happen or neither does. Revoking the anonymous session comes first:
of two concurrent sign-ins presenting the same anonymous token only one revokes it, and
only that one moves (or discards) the anonymous user's conversations.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from chinwag.core.errors import AuthenticationRequired
from chinwag.core.events import EventType
from chinwag.core.webhook_events import ParticipantsChange, participants_changed
from chinwag.server.broker import SessionsRevoked
from chinwag.server.handlers.auth import Authenticated, authenticate
from chinwag.server.handlers.conversation_changes import announce_participants_changed, depart
from chinwag.server.handlers.conversations import emit, invalid, shared_json
from chinwag.server.services import Services
from chinwag.server.storage import conversations as store
from chinwag.server.storage import events as event_store
from chinwag.server.storage import messages as message_store
from chinwag.server.storage import push as push_store
from chinwag.server.storage import sessions as session_store
from chinwag.server.storage.conversations import MemberRow
from chinwag.server.storage.database import Transaction
from chinwag.server.storage.records import UserRecord

__all__ = ["ANONYMOUS_DATA", "SessionHook", "Upgrade", "anonymous_upgrade", "upgrade_hook"]

ANONYMOUS_DATA = ("keep", "discard")
SessionHook = Callable[[Transaction, UserRecord], Awaitable[None]]
"""Run by ``auth.create_session`` inside its transaction once the new session is open."""


@dataclass(frozen=True, slots=True)
class Upgrade:
    anonymous: Authenticated
    mode: str


async def anonymous_upgrade(
    services: Services, token: str | None, app_id: str, mode: object
) -> Upgrade | None:
    """The upgrade a sign-in asks for: only a live anonymous session of the same app counts;
    any other bearer token is ignored (the sign-in itself does not depend on it)."""
    if mode not in ANONYMOUS_DATA:
        raise invalid("anonymous_data", "expected keep or discard")
    if token is None:
        return None
    try:
        caller = await authenticate(services, token)
    except AuthenticationRequired:
        return None
    if not caller.user.anonymous or caller.app_id != app_id:
        return None
    return Upgrade(anonymous=caller, mode=str(mode))


def upgrade_hook(services: Services, upgrade: Upgrade) -> SessionHook:
    async def hook(tx: Transaction, user: UserRecord) -> None:
        await _upgrade(services, tx, upgrade, user)

    return hook


async def _upgrade(services: Services, tx: Transaction, upgrade: Upgrade, user: UserRecord) -> None:
    anon = upgrade.anonymous
    now = services.now()
    if not await session_store.revoke_session(tx.conn, anon.session.id, now=now, reason="upgraded"):
        return
    await push_store.forget_sessions(tx.conn, [anon.session.id])
    if upgrade.mode == "keep":
        await _move(services, tx, anon.user, user)
    else:
        await _discard(services, tx, anon.user)
    for event_type, data in (
        (EventType.SESSION_REVOKED, {"session_id": anon.session.id, "reason": "upgraded"}),
        (
            EventType.USER_UPGRADED,
            {"from_user_id": anon.user.user_id, "to_user_id": user.user_id,
             "anonymous_data": upgrade.mode},
        ),
    ):  # fmt: skip
        appended = await event_store.append_event(
            tx.conn, app_id=anon.app_id, event_type=event_type, data=data,
            user_pks=[anon.user.pk], now=now,
        )  # fmt: skip
        emit(services, tx, appended)
    revoked = SessionsRevoked(session_ids=(anon.session.id,), reason="upgraded")
    tx.after_commit(lambda: services.publish(revoked))


async def _discard(services: Services, tx: Transaction, anon: UserRecord) -> None:
    for member in await store.memberships_of(tx.conn, anon.pk):
        conv = await store.get_conversation(
            tx.conn, anon.app_id, key=member.conversation_id, lock=True
        )
        if conv is not None and member.active:
            await depart(services, tx, conv, anon.pk, anon.user_id, ParticipantsChange.LEFT)


async def _move(services: Services, tx: Transaction, anon: UserRecord, user: UserRecord) -> None:
    """Memberships, sent messages, watermarks and hidden messages pass to ``user``."""
    moved: list[tuple[str, bool]] = []
    for theirs in await store.memberships_of(tx.conn, anon.pk):
        conv = await store.get_conversation(
            tx.conn, anon.app_id, key=theirs.conversation_id, lock=True
        )
        if conv is None:
            continue
        joined = await _take_over(tx, theirs, anon, user, services.now())
        await message_store.reassign_sender(tx.conn, conv.id, anon.pk, user.pk)
        if conv.created_by_pk == anon.pk:
            await store.update_conversation(tx.conn, conv.id, created_by_pk=user.pk)
        await store.clear_distinct(tx.conn, conv.id)
        if theirs.active:
            moved.append((conv.id, joined))
    await message_store.reassign_hidden(tx.conn, anon.pk, user.pk)
    for conversation_id, joined in moved:
        await _announce(services, tx, conversation_id, anon, user, joined=joined)


async def _take_over(
    tx: Transaction, theirs: MemberRow, anon: UserRecord, user: UserRecord, now: float
) -> bool:
    """Whether ``user`` became an active participant by it (was not one before)."""
    conv_id = theirs.conversation_id
    mine = await store.get_member(tx.conn, conv_id, user.pk)
    if mine is None:
        await store.reassign_member(tx.conn, conv_id, anon.pk, user.pk)
        return theirs.active
    await store.delete_member(tx.conn, conv_id, anon.pk)
    if theirs.active and not mine.active:
        await store.add_members(tx.conn, conv_id, [user.pk], now=now, position=mine.joined_position)
    read = max(mine.read_position, theirs.read_position)
    await store.set_marks(
        tx.conn, conv_id, user.pk, read_position=read,
        delivered_position=max(mine.delivered_position, theirs.delivered_position, read),
    )  # fmt: skip
    return theirs.active and not mine.active


async def _announce(
    services: Services,
    tx: Transaction,
    conversation_id: str,
    anon: UserRecord,
    user: UserRecord,
    *,
    joined: bool,
) -> None:
    """``conversation.created`` to the identified user; the others see it updated.

    Those are the readers' sides. The app hears of the change the way it hears of any
    change of participants (``core.webhook_events``): ``user`` was added (unless already a
    participant: ``joined``) and ``anon`` left, each a ``participants_changed`` with the
    participants after the upgrade. Not ``conversation.created`` (the conversation is not
    new) nor ``conversation.updated`` (its metadata did not change).
    """
    conv = await store.get_conversation(tx.conn, user.app_id, key=conversation_id)
    assert conv is not None
    last = None
    if conv.last_message_id is not None:
        last = await message_store.get_message(tx.conn, conv.last_message_id)
    shared = await shared_json(tx.conn, conv, last)
    others = [pk for pk, _ in await store.member_user_ids(tx.conn, conv.id) if pk != user.pk]
    changed = {
        "conversation_id": conv.public_id,
        "participants": shared["participants"],
        "distinct": shared["distinct"],
    }
    for event_type, data, readers in (
        (EventType.CONVERSATION_CREATED, {"conversation": shared}, [user.pk]),
        (EventType.CONVERSATION_UPDATED, changed, others),
    ):
        appended = await event_store.append_event(
            tx.conn, app_id=user.app_id, event_type=event_type, data=data, user_pks=readers,
            now=services.now(), conversation_id=conv.id, webhook=False,
        )  # fmt: skip
        emit(services, tx, appended)
    came = [(ParticipantsChange.ADDED, user.user_id)] if joined else []
    for change, user_id in (*came, (ParticipantsChange.LEFT, anon.user_id)):
        await announce_participants_changed(
            services, tx, user.app_id,
            participants_changed(change, conv.public_id, [user_id], shared["participants"]),
        )  # fmt: skip
