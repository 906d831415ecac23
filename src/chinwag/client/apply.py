"""How each server event changes the local store: idempotent, synchronous SQL.

Every rule here can run twice with the same result, because replays overlap: the first
sync reads the stream head before its snapshot and then replays from it, and a crash can
land between a socket frame and its commit. So: creating an existing id is a no-op,
positions and receipts only move forward (``max``), deleting twice deletes once.

These functions run inside :class:`~chinwag.client.store.Store`'s worker thread and
transaction; they never commit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from chinwag.client.announcements import store_announcement
from chinwag.client.models import Announcement, Message, Receipt
from chinwag.core.sync_cursor import CursorVerdict, classify

__all__ = [
    "ApplyResult",
    "apply_events",
    "insert_messages",
    "sent_by_me",
    "upsert_conversations",
]


@dataclass(slots=True)
class ApplyResult:
    cursor: int = 0
    applied: list[dict[str, Any]] = field(default_factory=list)
    gap: bool = False
    """An event skipped ahead: the caller must fetch ``after=cursor`` before going on."""
    revoked: dict[str, Any] | None = None
    """The ``session.revoked`` data of this device's own session: the caller must act on
    it (renew, or wipe when it says so) before applying anything after it."""
    login_requests: list[Message] = field(default_factory=list)
    missing_conversations: set[str] = field(default_factory=set)
    messages: list[Message] = field(default_factory=list)
    """Messages this device did not have before this batch (the ``message`` event): from
    others, or sent from the user's other devices; never a replay or this device's own."""
    receipts: list[Receipt] = field(default_factory=list)
    announcements: list[Announcement] = field(default_factory=list)
    """Announcements new to this device (the ``announcement`` event)."""


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


_UPSERT = """
INSERT INTO conversations (id, participants, metadata, is_distinct, created_at, created_by,
    last_position, last_message_at, read_position, delivered_position, unread_count, has_left)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    participants = excluded.participants, metadata = excluded.metadata,
    is_distinct = excluded.is_distinct, created_at = excluded.created_at,
    created_by = excluded.created_by,
    last_message_at = CASE WHEN excluded.last_position >= last_position
        THEN coalesce(excluded.last_message_at, last_message_at) ELSE last_message_at END,
    last_position = max(last_position, excluded.last_position)
"""
_PER_USER = """,
    read_position = max(read_position, excluded.read_position),
    delivered_position = max(delivered_position, excluded.delivered_position),
    unread_count = excluded.unread_count, has_left = excluded.has_left
"""


def upsert_conversations(
    conn: sqlite3.Connection, conversations: list[dict[str, Any]], per_user: bool
) -> None:
    """Insert or refresh conversations; ``per_user`` when the JSON has read state too."""
    rows = []
    for c in conversations:
        last = c.get("last_message") or {}
        rows.append(
            (
                c["id"],
                _dumps(c.get("participants", [])),
                _dumps(c.get("metadata", {})),
                int(bool(c.get("distinct", False))),
                c.get("created_at"),
                c.get("created_by"),
                int(c.get("last_position") or 0),
                last.get("sent_at"),
                int(c.get("read_position") or 0),
                int(c.get("delivered_position") or 0),
                int(c.get("unread_count") or 0),
                int(bool(c.get("left", False))),
            )
        )
    conn.executemany(_UPSERT + (_PER_USER if per_user else ""), rows)


_INSERT_MESSAGE = """
INSERT INTO messages (id, conversation_id, position, sender_id, parts, sent_at, state, deleted,
    bot)
VALUES (?, ?, ?, ?, ?, ?, 'sent', ?, ?)
ON CONFLICT (id) DO UPDATE SET position = excluded.position, sent_at = excluded.sent_at,
    state = 'sent' WHERE messages.position IS NULL
"""
_BUMP_LAST = """
UPDATE conversations SET
    last_message_at = CASE WHEN ? >= last_position THEN ? ELSE last_message_at END,
    last_position = max(last_position, ?)
WHERE id = ?
"""


def insert_messages(
    conn: sqlite3.Connection, messages: list[dict[str, Any]], me: str, *, count: bool
) -> set[str]:
    """Store messages (a page of history, or live ones when ``count``); return unknown
    conversation ids. With ``count``, a new message from someone else raises the unread
    count — history pages don't, because the snapshot's count already includes them."""
    fresh: set[str] = set()
    if count:
        for m in messages:
            row = conn.execute("SELECT 1 FROM messages WHERE id = ?", (m["id"],)).fetchone()
            if row is None:
                fresh.add(m["id"])
    conn.executemany(
        _INSERT_MESSAGE,
        [
            (
                m["id"],
                m["conversation_id"],
                m["position"],
                m["sender_id"],
                _dumps(m["parts"]),
                m.get("sent_at"),
                int(bool(m.get("deleted", False))),
                int(bool(m.get("bot", False))),
            )
            for m in messages
        ],
    )
    newest: dict[str, dict[str, Any]] = {}
    for m in messages:
        seen = newest.get(m["conversation_id"])
        if seen is None or m["position"] > seen["position"]:
            newest[m["conversation_id"]] = m
    missing: set[str] = set()
    for cid, m in newest.items():
        cur = conn.execute(_BUMP_LAST, (m["position"], m.get("sent_at"), m["position"], cid))
        if cur.rowcount == 0:
            missing.add(cid)
    for m in messages:
        if m["id"] in fresh and m["sender_id"] != me:
            conn.execute(
                "UPDATE conversations SET unread_count = unread_count + 1"
                " WHERE id = ? AND read_position < ?",
                (m["conversation_id"], m["position"]),
            )
    return missing


def sent_by_me(conn: sqlite3.Connection, message: dict[str, Any]) -> None:
    """The server's rule, applied here too: sending marks the conversation read and
    delivered for the sender up to that message. The server writes no ``receipt`` event for
    it (that would be a second stream write per message), so every device of the sender
    derives it from the ``message.created`` it gets anyway."""
    position = message.get("position")
    if position is None:
        return
    conn.execute(
        "UPDATE conversations SET read_position = max(read_position, ?),"
        " delivered_position = max(delivered_position, ?) WHERE id = ?",
        (position, position, message["conversation_id"]),
    )
    _recount_unread(conn, message["conversation_id"], message["sender_id"])


def _recount_unread(conn: sqlite3.Connection, cid: str, me: str) -> None:
    conn.execute(
        "UPDATE conversations SET unread_count = (SELECT count(*) FROM messages m"
        " WHERE m.conversation_id = conversations.id AND m.position > conversations.read_position"
        " AND m.sender_id != ? AND m.deleted = 0) WHERE id = ?",
        (me, cid),
    )


class _Context:
    def __init__(self, conn: sqlite3.Connection, me: str, session_id: str) -> None:
        self.conn = conn
        self.me = me
        self.session_id = session_id
        self.result = ApplyResult()

    def known(self, cid: str) -> bool:
        row = self.conn.execute("SELECT 1 FROM conversations WHERE id = ?", (cid,)).fetchone()
        if row is None:
            self.result.missing_conversations.add(cid)
        return row is not None


def _conversation_created(ctx: _Context, data: dict[str, Any]) -> None:
    upsert_conversations(ctx.conn, [data["conversation"]], per_user=False)
    ctx.conn.execute(
        "UPDATE conversations SET has_left = 0 WHERE id = ?", (data["conversation"]["id"],)
    )


def _patched(meta: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """The server's metadata patch rule (sets, then deletes) on a local copy. Applying a
    patch twice gives what applying it once did, so an overlapping replay is harmless."""
    for path, value in (patch.get("set") or {}).items():
        *parents, leaf = path.split(".")
        node = meta
        for key in parents:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[leaf] = value
    for path in patch.get("delete") or []:
        *parents, leaf = path.split(".")
        parent: Any = meta
        for key in parents:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict):
            parent.pop(leaf, None)
    return meta


def _conversation_updated(ctx: _Context, data: dict[str, Any]) -> None:
    """What changed: a metadata patch, or the participants (an upgraded user moved in)."""
    cid = data["conversation_id"]
    if not ctx.known(cid):
        return
    if "metadata" in data:
        row = ctx.conn.execute("SELECT metadata FROM conversations WHERE id = ?", (cid,)).fetchone()
        meta = _patched(orjson.loads(row[0] or "{}"), data["metadata"])
        ctx.conn.execute("UPDATE conversations SET metadata = ? WHERE id = ?", (_dumps(meta), cid))
    if "participants" in data:
        ctx.conn.execute(
            "UPDATE conversations SET participants = ? WHERE id = ?",
            (_dumps(data["participants"]), cid),
        )
    if "distinct" in data:
        ctx.conn.execute(
            "UPDATE conversations SET is_distinct = ? WHERE id = ?",
            (int(bool(data["distinct"])), cid),
        )


def _participants(ctx: _Context, data: dict[str, Any]) -> None:
    if ctx.known(data["conversation_id"]):
        ctx.conn.execute(
            "UPDATE conversations SET participants = ? WHERE id = ?",
            (_dumps(data["participants"]), data["conversation_id"]),
        )


def _left(ctx: _Context, data: dict[str, Any]) -> None:
    ctx.conn.execute(
        "UPDATE conversations SET has_left = 1 WHERE id = ?", (data["conversation_id"],)
    )


def _conversation_deleted(ctx: _Context, data: dict[str, Any]) -> None:
    cid = data["conversation_id"]
    ctx.conn.execute("DELETE FROM conversations WHERE id = ?", (cid,))
    if data.get("mode") == "my_devices" and data.get("up_to_position") is not None:
        ctx.conn.execute(
            "DELETE FROM messages WHERE conversation_id = ? AND position <= ?",
            (cid, data["up_to_position"]),
        )
    else:
        ctx.conn.execute(
            "DELETE FROM messages WHERE conversation_id = ? AND position IS NOT NULL", (cid,)
        )


def _message_created(ctx: _Context, data: dict[str, Any]) -> None:
    message = data["message"]
    known = ctx.conn.execute("SELECT 1 FROM messages WHERE id = ?", (message["id"],)).fetchone()
    ctx.result.missing_conversations |= insert_messages(ctx.conn, [message], ctx.me, count=True)
    if message["sender_id"] == ctx.me:
        sent_by_me(ctx.conn, message)
    parsed = Message.from_json(message)
    if known is None:
        ctx.result.messages.append(parsed)
    if parsed.requests_login and parsed.sender_id != ctx.me:
        ctx.result.login_requests.append(parsed)


def _message_deleted(ctx: _Context, data: dict[str, Any]) -> None:
    if data.get("mode") == "my_devices":
        ctx.conn.execute("DELETE FROM messages WHERE id = ?", (data["message_id"],))
    else:
        ctx.conn.execute(
            "UPDATE messages SET deleted = 1, parts = '[]' WHERE id = ?", (data["message_id"],)
        )
    _recount_unread(ctx.conn, data["conversation_id"], ctx.me)


def _receipt(ctx: _Context, data: dict[str, Any]) -> None:
    ctx.result.receipts.append(
        Receipt(
            data["conversation_id"],
            data["user_id"],
            int(data["read_position"]),
            int(data["delivered_position"]),
        )
    )
    if data["user_id"] != ctx.me:
        return
    ctx.conn.execute(
        "UPDATE conversations SET read_position = max(read_position, ?),"
        " delivered_position = max(delivered_position, ?) WHERE id = ?",
        (data["read_position"], data["delivered_position"], data["conversation_id"]),
    )
    _recount_unread(ctx.conn, data["conversation_id"], ctx.me)


def _identity(ctx: _Context, data: dict[str, Any]) -> None:
    user = data["user"]
    ctx.conn.execute(
        "INSERT INTO users (user_id, display_name, avatar_url, anonymous) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (user_id) DO UPDATE SET display_name = excluded.display_name,"
        " avatar_url = excluded.avatar_url, anonymous = excluded.anonymous",
        (user["user_id"], user.get("display_name"), user.get("avatar_url"), user.get("anonymous")),
    )


def _announcement_created(ctx: _Context, data: dict[str, Any]) -> None:
    stored = store_announcement(ctx.conn, data["announcement"])
    if stored is not None:  # None: a replay, already stored and announced
        ctx.result.announcements.append(stored)


def _session_revoked(ctx: _Context, data: dict[str, Any]) -> None:
    if data.get("session_id") == ctx.session_id:
        ctx.result.revoked = data


_HANDLERS: dict[str, Callable[[_Context, dict[str, Any]], None]] = {
    "conversation.created": _conversation_created,
    "conversation.updated": _conversation_updated,
    "conversation.participants_added": _participants,
    "conversation.participants_removed": _participants,
    "conversation.left": _left,
    "conversation.deleted": _conversation_deleted,
    "message.created": _message_created,
    "message.deleted": _message_deleted,
    "receipt": _receipt,
    "identity.updated": _identity,
    "session.revoked": _session_revoked,
    "announcement.created": _announcement_created,
}


def apply_events(
    conn: sqlite3.Connection,
    batch: list[tuple[int, dict[str, Any]]],
    me: str,
    session_id: str,
) -> ApplyResult:
    """Apply ``(cursor, event)`` pairs in order; stop at a gap or at our own revocation."""
    ctx = _Context(conn, me, session_id)
    row = conn.execute("SELECT value FROM meta WHERE key = 'cursor'").fetchone()
    cursor = int(row[0]) if row else 0
    for position, event in batch:
        verdict = classify(cursor, position)
        if verdict is CursorVerdict.DUPLICATE:
            continue
        if verdict is CursorVerdict.GAP:
            ctx.result.gap = True
            break
        handler = _HANDLERS.get(str(event.get("type")))
        if handler is not None:  # unknown types are skipped: newer servers may add some
            handler(ctx, event.get("data") or {})
        ctx.result.applied.append(event)
        cursor = position
        if ctx.result.revoked is not None:
            break
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('cursor', ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (str(cursor),),
    )
    ctx.result.cursor = cursor
    return ctx.result
