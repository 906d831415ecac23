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

import re
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.core.errors import AccessDenied, ChinwagError, IdInUse, MessageTooLarge, NotFound
from chinwag.core.events import EventType
from chinwag.core.ids import is_valid_uuid
from chinwag.server import metrics
from chinwag.server.broker import ConversationAdvanced
from chinwag.server.handlers.actors import Actor, AuditHook, FanoutCharge, audited
from chinwag.server.handlers.auth import Authenticated, refuse_ended
from chinwag.server.handlers.conversations import (
    append,
    emit,
    invalid,
    load,
    lock_conversation,
    membership,
    message_json,
    require_active,
    visibility,
)
from chinwag.server.rate_limits import Action
from chinwag.server.services import Services
from chinwag.server.storage import blocks as block_store
from chinwag.server.storage import conversations as store
from chinwag.server.storage import messages as message_store
from chinwag.server.storage.conversations import ConversationRow, MemberRow
from chinwag.server.storage.database import Transaction
from chinwag.server.storage.events import event_payload
from chinwag.server.storage.member_fanout import EAGER_MEMBERS, MergesAtCommit, append_message
from chinwag.server.storage.message_send import (
    SentEvent,
    Stored,
    joins_event,
    store_sent,
    store_sent_together,
)
from chinwag.server.storage.messages import MessageRow
from chinwag.server.storage.outbox import message_outbox
from chinwag.server.storage.spans import ReadMarks

__all__ = [
    "DELETE_MODES",
    "MAX_PARTS",
    "check_parts",
    "delete_message",
    "find_message",
    "list_messages",
    "send_as",
    "send_message",
    "store_message",
]

MAX_PARTS = 1000
MAX_MIME_TYPE = 256
DELETE_MODES = ("all_participants", "my_devices")
_MEDIA_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*"
_MIME_TYPE = re.compile(rf"{_MEDIA_NAME}/{_MEDIA_NAME}(?:[ \t]*;[^\x00-\x1f\x7f]*)?")
"""RFC 6838's ``type/subtype`` (then parameters, unchecked): a receiving client picks how
to show a part by it, so "nope" would be a part no client can ever render."""


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
        if _MIME_TYPE.fullmatch(mime) is None:
            raise invalid("parts", "mime_type must be a media type: type/subtype[; parameters]")
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
    checked = _checked(services, message_id, parts)
    job = _Send(services, caller, str(conversation_id), checked)
    return await services.db.write(job, key=str(conversation_id), leaves_work=True)


@dataclass(frozen=True, slots=True)
class _Send:
    """A user's send as a write job: alone (called), or with the other sends of its batch
    (``together``, on a PostgreSQL lane: ``storage/batching.py``)."""

    services: Services
    caller: Authenticated
    conversation_id: str
    checked: CheckedMessage

    async def __call__(self, tx: Transaction) -> tuple[dict[str, Any], bool]:
        # Every refusal below comes before the first write: sends share transactions
        # (``Database.write``), and a refusal must leave nothing behind for the others.
        # The session is checked first, with the conversation's lock (``load``).
        live = (self.caller.session.id, self.services.now())
        return await store_message(
            self.services, tx, self.caller, self.conversation_id, self.checked, live_session=live
        )

    @staticmethod
    async def together(tx: Transaction, jobs: list[_Send]) -> list[Sent | ChinwagError] | None:
        return await _send_together(tx, jobs)


Sent = tuple[dict[str, Any], bool]
"""A send's answer: the message, and whether this send created it (not a retry's)."""


async def _send_together(tx: Transaction, jobs: list[_Send]) -> list[Sent | ChinwagError] | None:
    """A batch of sends in a few round trips where one by one each costs two (its lock
    with the session check, its insert): the locks of all their conversations (the first
    alone, which begins the transaction, then the rest together), then the inserts
    together, a round per send to the same conversation (``store_sent_together``: each
    event is built for its conversation's next position). Each send is what
    :func:`store_message` does in a small conversation, in the same order; the merges
    into members' streams stay the batch's (``MergesAtCommit``).

    A send refused before it writes (its session ended) or that inserts nothing (a retry
    of a stored id, a sender who left) is answered as one by one, and costs the others
    nothing: a retrying client cannot make its neighbours' batches run again. None,
    having written nothing but taken locks, when the batch needs the one-by-one path (a
    conversation not found, a big one, an engine that writes the event apart)."""
    if not joins_event(tx.conn) or any(not is_valid_uuid(j.conversation_id) for j in jobs):
        return None
    services = jobs[0].services
    now = services.now()
    keys = [
        {"app_id": j.caller.app_id, "conversation_id": j.conversation_id,
         "session_id": j.caller.session.id}
        for j in jobs
    ]  # fmt: skip
    locked = await store.get_locked_with_sessions(tx.conn, keys)
    if locked is None or any(c.participant_count > EAGER_MEMBERS for c, _ in locked):
        return None
    answers: list[Sent | ChinwagError | None] = [None] * len(jobs)
    waiting: list[int] = []
    for index, (_, session) in enumerate(locked):
        try:
            refuse_ended(session, now)
            waiting.append(index)
        except ChinwagError as refusal:
            answers[index] = refusal
    last = {conv.id: conv.last_position for conv, _ in locked}
    not_inserted: list[int] = []
    while waiting:
        turn: dict[str, int] = {}  # a conversation's first waiting send
        for index in waiting:
            turn.setdefault(locked[index][0].id, index)
        sends = [
            _pending(services, jobs[i].caller, locked[i][0], jobs[i].checked, now, last[c] + 1)
            for c, i in turn.items()
        ]
        stored = await store_sent_together(tx.conn, [(p.values, p.event) for p in sends])
        for index, sent, inserted in zip(turn.values(), sends, stored, strict=True):
            if inserted is None:
                not_inserted.append(index)
                continue
            last[sent.conv.id] = inserted.position
            answers[index] = _merged_at_commit(services, tx, jobs[index].caller, sent, inserted)
        taken = set(turn.values())
        waiting = [index for index in waiting if index not in taken]
    for index in not_inserted:  # read-only: what one by one answers them
        job, conv = jobs[index], locked[index][0]
        try:
            answers[index] = await _not_inserted(services, tx, job.caller, conv, job.checked)
        except ChinwagError as refusal:
            answers[index] = refusal
    answered = [answer for answer in answers if answer is not None]
    if len(answered) != len(jobs):
        raise RuntimeError("a send of the batch went unanswered")
    return answered


async def send_as(
    services: Services,
    actor: Actor,
    conversation_id: str,
    message_id: str,
    parts: object,
    *,
    audit: AuditHook | None = None,
    charge: FanoutCharge | None = None,
) -> tuple[dict[str, Any], bool]:
    """What :func:`send_message` does, for a user (or bot) the app's server speaks as
    (the platform API): the same rules and idempotence, no session to check.

    ``charge`` is told the conversation's participants (each stream gets the message)
    before the write, from a read of its row; an unknown conversation costs nothing (the
    write answers 404)."""
    checked = _checked(services, message_id, parts)
    if charge is not None:
        await charge(await _members(services, actor.app_id, str(conversation_id)))

    async def write_message(tx: Transaction) -> tuple[dict[str, Any], bool]:
        found, created = await store_message(services, tx, actor, str(conversation_id), checked)
        if created:
            await audited(tx, audit)
        return found, created

    return await services.db.write(write_message, key=str(conversation_id), leaves_work=True)


async def _members(services: Services, app_id: str, conversation_id: str) -> int:
    """The conversation's participant count (0 if none), read before the send's write."""

    async def read(conn: AsyncConnection) -> int:
        conv = await store.get_conversation(conn, app_id, conversation_id=conversation_id)
        return conv.participant_count if conv is not None else 0

    return await services.db.quick_read(read)


@dataclass(frozen=True, slots=True)
class CheckedMessage:
    message_id: str
    parts: list[dict[str, str]]
    encoded: str


def _checked(services: Services, message_id: str, parts: object) -> CheckedMessage:
    if not is_valid_uuid(message_id):
        raise invalid("id", "expected a lower-case UUID chosen by the client")
    clean = check_parts(parts, services.settings.max_message_bytes)
    return CheckedMessage(message_id, clean, orjson.dumps(clean).decode())


async def store_message(
    services: Services,
    tx: Transaction,
    sender: Actor,
    conversation_id: str,
    msg: CheckedMessage,
    *,
    live_session: tuple[str, float] | None = None,
) -> tuple[dict[str, Any], bool]:
    """Insert ``msg`` from ``sender`` (an active participant) and write ``message.created``
    to the conversation's log, merged into the members' streams (but those who blocked the
    sender) at once in a small conversation, after commit or when read in a big one.
    ``live_session``: the sender's session, which must be live (``load``)."""
    now = services.now()
    member: MemberRow | None = None
    if joins_event(tx.conn):  # the insert checks the membership (``message_send``)
        conv = await lock_conversation(tx.conn, sender, conversation_id, live_session=live_session)
    else:
        conv, member = await load(
            tx.conn, sender, conversation_id, lock=True, live_session=live_session
        )
        require_active(member)
    # On PostgreSQL the event is written with the message, so it is built first, for the
    # position the message will take (the conversation's row lock makes it the next one).
    body: dict[str, Any] | None = None
    stored: bytes | None = None
    eager = conv.participant_count <= EAGER_MEMBERS
    at_commit = False
    pending: _Pending | None = None
    if joins_event(tx.conn):
        pending = _pending(services, sender, conv, msg, now, conv.last_position + 1)
        values, body, stored = pending.values, pending.body, pending.event.payload
        # Merged with the batch's other sends just before the commit (``MergesAtCommit``)
        # when its rows are all written here; else the merges left by the sends before it
        # are done first, or this send's merge would take their positions.
        at_commit = eager and pending.event.outbox is not None
        if not at_commit:
            await tx.settle()
        inserted = await store_sent(tx.conn, values, pending.event)
    else:
        values = _new_values(services, sender, conv, msg, now)
        inserted = await store_sent(tx.conn, values)
    if inserted is None:
        return await _not_inserted(services, tx, sender, conv, msg, member)
    if at_commit and pending is not None:
        return _merged_at_commit(services, tx, sender, pending, inserted)
    position = inserted.position
    if body is None:
        body = message_json(_sent_row(values, sender, position), conv.public_id, parts=msg.parts)
    tx.after_commit(metrics.messages_stored)
    # Sending marks the conversation read and received for the sender: written with the
    # merge, which locks users' rows before participants' (spans.py).
    appended = await append_message(
        tx.conn, app_id=sender.app_id, conversation_id=conv.id, position=position,
        event_type=EventType.MESSAGE_CREATED, data={"message": body}, now=now, eager=eager,
        stored=stored, marks=ReadMarks(sender.user.pk, position), outbox=inserted.outbox,
    )  # fmt: skip
    emit(services, tx, appended)  # in a big conversation: no readers yet, only the outbox
    if not eager:
        advanced = ConversationAdvanced(conv.id, position)
        tx.after_commit(lambda: services.publish(advanced))
    return body, True


async def _not_inserted(
    services: Services,
    tx: Transaction,
    sender: Actor,
    conv: ConversationRow,
    msg: CheckedMessage,
    member: MemberRow | None = None,
) -> Sent:
    """The answer to a send whose insert wrote nothing: the sender is not an active
    member (``member``, when already read: it is), or its id is taken, by a message it
    repeats or by another (409)."""
    if member is None:  # refused by the insert, or the id is taken: which one
        require_active(await membership(tx.conn, conv, sender))
    existing = await message_store.get_message_by_public_id(tx.conn, sender.app_id, msg.message_id)
    if existing is None:
        raise IdInUse("That message id is already in use.")
    repeated = _repeat(existing, sender, conv, msg.encoded)
    # A retry is what a sender does when the first try's answer never came: perhaps its
    # node died between the commit and the doorbell, and the message is stored but no
    # other node heard of it. Ring again, as a prompt to read the store: every node
    # checks its members of the conversation connected there (``live_merge``), a read for
    # those behind and nothing for the others.
    again = ConversationAdvanced(conv.id, existing.position)
    tx.after_commit(lambda: services.publish(again))
    return repeated, False


def _new_values(
    services: Services, sender: Actor, conv: ConversationRow, msg: CheckedMessage, now: float
) -> dict[str, Any]:
    """The message's row, but its position (the insert takes the next one)."""
    return {
        "id": str(uuid.UUID(bytes=services.random(16), version=4)),
        "app_id": sender.app_id,
        "public_id": msg.message_id,
        "conversation_id": conv.id,
        "sender_pk": sender.user.pk,
        "parts": msg.encoded,
        "size": sum(len(p["body"].encode()) for p in msg.parts),
        "sent_at": now,
        "deleted_at": None,
    }


@dataclass(frozen=True, slots=True)
class _Pending:
    """A new message on PostgreSQL, built for the position it will take, with its event
    (and its outbox rows, if any are owed) to write in the insert's own statement."""

    conv: ConversationRow
    values: dict[str, Any]
    body: dict[str, Any]
    event: SentEvent


def _pending(
    services: Services,
    sender: Actor,
    conv: ConversationRow,
    msg: CheckedMessage,
    now: float,
    position: int,
) -> _Pending:
    values = _new_values(services, sender, conv, msg, now)
    body = message_json(_sent_row(values, sender, position), conv.public_id, parts=msg.parts)
    data = {"message": body}
    stored = event_payload(EventType.MESSAGE_CREATED, data, now)
    outbox = message_outbox(sender.app_id, data, conv.id, now)
    return _Pending(
        conv, values, body, SentEvent(EventType.MESSAGE_CREATED, stored, position, outbox)
    )


def _merged_at_commit(
    services: Services, tx: Transaction, sender: Actor, sent: _Pending, inserted: Stored
) -> tuple[dict[str, Any], bool]:
    """A new message whose rows are all written: merged into its members' streams with the
    batch's other sends just before the commit, announced after it."""
    tx.after_commit(metrics.messages_stored)
    tx.before_commit(MergesAtCommit).add(
        app_id=sender.app_id, conversation_id=sent.conv.id, position=inserted.position,
        stored=sent.event.payload, marks=ReadMarks(sender.user.pk, inserted.position),
        outbox=bool(inserted.outbox), announce=lambda appended: emit(services, tx, appended),
    )  # fmt: skip
    return sent.body, True


def _sent_row(values: dict[str, Any], sender: Actor, position: int) -> MessageRow:
    return MessageRow(
        id=values["id"],
        app_id=values["app_id"],
        public_id=values["public_id"],
        conversation_id=values["conversation_id"],
        position=position,
        sender_pk=values["sender_pk"],
        sender_id=sender.user.user_id,
        parts=values["parts"],
        size=values["size"],
        sent_at=values["sent_at"],
        deleted_at=None,
        sender_bot=sender.user.bot,
    )


def _repeat(
    existing: MessageRow, caller: Actor, conv: ConversationRow, encoded: str
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
    return message_json(existing, conv.public_id)


async def list_messages(
    services: Services,
    caller: Authenticated,
    conversation_id: str,
    *,
    after: int | None,
    before: int | None,
    limit: int,
) -> dict[str, Any]:
    """A page, charged to the caller's read budget (``Action.READ_KIB``) by its bodies."""
    async with services.rate_limits.reading(caller) as served, services.db.read() as conn:
        conv, member = await load(conn, caller, conversation_id)
        rows, has_more = await message_store.page(
            conn, conv.id, visibility(member), after=after, before=before, limit=limit
        )
        served.served, served.items = sum(row.size for row in rows), len(rows)
    return {"messages": [message_json(r, conv.public_id) for r in rows], "has_more": has_more}


async def find_message(
    conn: AsyncConnection, caller: Authenticated, message_id: str, *, lock: bool = False
) -> tuple[MessageRow, ConversationRow, MemberRow]:
    """A message the caller can see, with its conversation and their membership; else 404."""
    row = None
    if is_valid_uuid(message_id):
        row = await message_store.get_message_by_public_id(conn, caller.app_id, message_id)
    conv = member = None
    if row is not None:
        conv = await store.get_conversation(conn, caller.app_id, key=row.conversation_id, lock=lock)
        member = await store.get_member(conn, conv.id, caller.user.pk) if conv else None
    if row is None or conv is None or member is None:
        raise NotFound("No message with that id.")
    seen = visibility(member)
    if row.position <= seen.above or (seen.up_to is not None and row.position > seen.up_to):
        raise NotFound("No message with that id.")
    if row.sender_id is not None and await block_store.has_blocked(
        conn, caller.user.pk, row.sender_id
    ):
        raise NotFound("No message with that id.")  # hidden from the blocker, as in pages
    return row, conv, member


async def delete_message(
    services: Services, caller: Authenticated, message_id: str, *, mode: str
) -> None:
    """Delete for everyone (the sender, while a participant) or hide on the caller's devices."""
    if mode not in DELETE_MODES:
        raise invalid("mode", "expected all_participants or my_devices")
    async with services.db.transaction() as tx:
        row, conv, member = await find_message(tx.conn, caller, message_id, lock=True)
        data = {"conversation_id": conv.public_id, "message_id": row.public_id, "mode": mode}
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
