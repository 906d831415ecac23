"""The device's local SQLite store: one file per app and user.

Why SQLite on the device: queries must answer offline and instantly (Layer's
"local-database-first"), and the outbox must survive a crash, so it has to be on disk
before ``send_message`` returns. Why one file per user: a user switch can then never show
user A's conversations to user B (a recurring bug elsewhere); wiping is deleting a file.

The stdlib ``sqlite3`` runs on one connection in the store's own single worker thread, so
calls take turns in order and the connection is never used by two
threads at once. Each write is one transaction: a page of messages is one
``executemany``; a batch of events and the cursor that follows them commit together, so a
crash can never leave the cursor ahead of the data (or behind it, beyond a harmless
re-apply: applying an event twice is a no-op).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from chinwag.client import apply
from chinwag.client.announcements import list_announcements
from chinwag.client.apply import ApplyResult
from chinwag.client.errors import NotAuthenticated
from chinwag.client.local_schema import open_schema
from chinwag.client.models import Announcement, Conversation, Message, MessagePart, MessageState
from chinwag.client.vault import create_private_file

__all__ = ["OutboxEntry", "Store", "StoreClosed", "remove_store_files", "store_path"]


class StoreClosed(NotAuthenticated):
    """The user's local data was closed or wiped (signed out) while a call was on its way."""


_T = TypeVar("_T")


def store_path(directory: Path, app_id: str, user_id: str) -> Path:
    """Where one user's data lives; the user id is hashed (it may hold any character)."""
    digest = hashlib.sha256(user_id.encode()).hexdigest()[:32]
    return directory / app_id / f"user-{digest}.sqlite3"


class OutboxEntry:
    __slots__ = ("attempts", "conversation_id", "message_id", "parts", "seq")

    def __init__(
        self, seq: int, message_id: str, conversation_id: str, parts: list[Any], attempts: int
    ) -> None:
        self.seq = seq
        self.message_id = message_id
        self.conversation_id = conversation_id
        self.parts = parts
        self.attempts = attempts


class Store:
    """Async façade over one SQLite connection; see the module docstring for why."""

    def __init__(self, path: Path, conn: sqlite3.Connection, executor: ThreadPoolExecutor) -> None:
        self.path = path
        self._conn = conn
        # One thread per store, for its whole life: calls queue on it in order. An
        # asyncio.Lock is not enough: a cancelled await releases the lock while its
        # thread is still inside sqlite3, and two threads on one connection crash.
        self._executor = executor
        self._closed = False

    @classmethod
    async def open(cls, path: Path) -> Store:
        def _open() -> sqlite3.Connection:
            create_private_file(path)  # before SQLite writes: its -wal/-shm copy the mode
            conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            open_schema(conn)
            return conn

        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chinwag-store")
        conn = await asyncio.get_running_loop().run_in_executor(executor, _open)
        return cls(path, conn, executor)

    async def _run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``fn`` in a transaction on the store's thread.

        A call that loses the race with a sign-out (the store closed or deleted under it)
        raises :class:`StoreClosed`, a :class:`NotAuthenticated`, never sqlite3's or the
        executor's own errors.
        """
        if self._closed:
            raise StoreClosed("The local store")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, _in_transaction, self._conn, fn)
        except (sqlite3.ProgrammingError, RuntimeError) as exc:
            if self._closed:
                raise StoreClosed("The local store") from exc
            raise

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._conn.close)
        self._executor.shutdown(wait=False)

    async def destroy(self) -> None:
        """Close and delete the file (and its WAL): what deauthentication promises."""
        await self.close()
        await asyncio.to_thread(remove_store_files, self.path)

    # -- meta -------------------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        def _get(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            return None if row is None else str(row[0])

        return await self._run(_get)

    async def set_meta(self, key: str, value: str) -> None:
        await self._run(lambda conn: _set_meta(conn, key, value))

    async def cursor(self) -> int:
        return int(await self.get_meta("cursor") or 0)

    # -- bulk sync --------------------------------------------------------------------

    async def upsert_conversations(self, conversations: list[dict[str, Any]]) -> None:
        await self._run(lambda conn: apply.upsert_conversations(conn, conversations, True))

    async def insert_messages(self, messages: list[dict[str, Any]], me: str) -> None:
        """One page of history in one transaction (``executemany``)."""
        await self._run(lambda conn: apply.insert_messages(conn, messages, me, count=False))

    async def apply_events(
        self, events: Iterable[tuple[int, dict[str, Any]]], me: str, session_id: str
    ) -> ApplyResult:
        """Apply events in order and move the cursor, all in one transaction."""
        batch = list(events)
        return await self._run(lambda conn: apply.apply_events(conn, batch, me, session_id))

    # -- queries ----------------------------------------------------------------------

    async def conversations(self) -> list[Conversation]:
        """All conversations, most recent message first, with unread counts."""
        return await self._run(_conversations)

    async def conversation(self, conversation_id: str) -> Conversation | None:
        found = await self._run(lambda conn: _conversations(conn, conversation_id))
        return found[0] if found else None

    async def messages(
        self,
        conversation_id: str,
        *,
        after: int | None = None,
        before: int | None = None,
        limit: int | None = None,
    ) -> list[Message]:
        """Messages by position, ascending; pending ones (no position yet) last, in order.
        ``after`` alone includes the pending ones: "the newest n and what I am sending"."""

        def _query(conn: sqlite3.Connection) -> list[Message]:
            sql = "SELECT * FROM messages WHERE conversation_id = ?"
            args: list[Any] = [conversation_id]
            if after is not None:  # pending messages come after every position
                pending = " OR position IS NULL" if before is None else ""
                sql += f" AND (position > ?{pending})"
                args.append(after)
            if before is not None:
                sql += " AND position < ?"
                args.append(before)
            if before is not None and limit is not None:
                sql += " ORDER BY position IS NULL DESC, position DESC, rowid DESC LIMIT ?"
                rows = conn.execute(sql, [*args, limit]).fetchall()[::-1]
            else:
                sql += " ORDER BY position IS NULL, position, rowid"
                if limit is not None:
                    sql += " LIMIT ?"
                    args.append(limit)
                rows = conn.execute(sql, args).fetchall()
            return [_message(row) for row in rows]

        return await self._run(_query)

    async def announcements(self) -> list[Announcement]:
        """Announcements from the app, newest first."""
        return await self._run(list_announcements)

    async def count_messages(self) -> int:
        return await self._run(
            lambda conn: int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])
        )

    # -- outbox -----------------------------------------------------------------------

    async def enqueue(
        self, message_id: str, conversation_id: str, sender_id: str, parts: list[dict[str, str]]
    ) -> Message:
        """Store a message and its outbox entry together: durable before we return."""
        body = json.dumps(parts, separators=(",", ":"))

        def _enqueue(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO messages (id, conversation_id, position, sender_id, parts, state)"
                " VALUES (?, ?, NULL, ?, ?, 'pending')",
                (message_id, conversation_id, sender_id, body),
            )
            conn.execute(
                "INSERT INTO outbox (message_id, conversation_id, parts) VALUES (?, ?, ?)",
                (message_id, conversation_id, body),
            )

        await self._run(_enqueue)
        return Message(
            id=message_id,
            conversation_id=conversation_id,
            position=None,
            sender_id=sender_id,
            parts=tuple(MessagePart(p["mime_type"], p["body"]) for p in parts),
            sent_at=None,
            state=MessageState.PENDING,
        )

    async def outbox(self) -> list[OutboxEntry]:
        def _list(conn: sqlite3.Connection) -> list[OutboxEntry]:
            rows = conn.execute(
                "SELECT seq, message_id, conversation_id, parts, attempts FROM outbox ORDER BY seq"
            ).fetchall()
            return [OutboxEntry(r[0], r[1], r[2], json.loads(r[3]), r[4]) for r in rows]

        return await self._run(_list)

    async def acknowledge(self, message: dict[str, Any], me: str) -> None:
        """The server has the message: fill in its position and drop the outbox entry."""

        def _ack(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM outbox WHERE message_id = ?", (message["id"],))
            apply.insert_messages(conn, [message], me, count=True)
            apply.sent_by_me(conn, message)

        await self._run(_ack)

    async def fail(self, message_id: str) -> None:
        def _fail(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM outbox WHERE message_id = ?", (message_id,))
            conn.execute("UPDATE messages SET state = 'failed' WHERE id = ?", (message_id,))

        await self._run(_fail)

    async def note_attempt(self, message_id: str) -> None:
        await self._run(
            lambda conn: conn.execute(
                "UPDATE outbox SET attempts = attempts + 1 WHERE message_id = ?", (message_id,)
            )
        )

    async def drop_outbox(self) -> None:
        def _drop(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM messages WHERE id IN (SELECT message_id FROM outbox)")
            conn.execute("DELETE FROM outbox")

        await self._run(_drop)

    async def mark_synced(self, head: int) -> None:
        """The first sync is done and valid at stream position ``head``."""

        def _mark(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT value FROM meta WHERE key = 'cursor'").fetchone()
            _set_meta(conn, "cursor", str(max(head, int(row[0]) if row else 0)))
            _set_meta(conn, "synced", "1")

        await self._run(_mark)

    async def forget_stream(self) -> None:
        """Keep the data but start over on a new stream (an anonymous user who logged in)."""
        await self._run(
            lambda conn: conn.execute("DELETE FROM meta WHERE key IN ('cursor', 'synced')")
        )

    async def forget_conversations(self) -> None:
        """Drop every conversation and message but keep the outbox (anonymous upgrade)."""

        def _forget(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM conversations")
            conn.execute("DELETE FROM messages WHERE id NOT IN (SELECT message_id FROM outbox)")
            conn.execute("DELETE FROM meta WHERE key IN ('cursor', 'synced')")

        await self._run(_forget)


def remove_store_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def _in_transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], _T]) -> _T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def _set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def _message(row: tuple[Any, ...]) -> Message:
    mid, cid, position, sender, parts, sent_at, state, deleted, bot = row
    return Message(
        id=mid,
        conversation_id=cid,
        position=position,
        sender_id=sender,
        parts=tuple(MessagePart(p["mime_type"], p["body"]) for p in json.loads(parts)),
        sent_at=sent_at,
        state=MessageState(state),
        deleted=bool(deleted),
        bot=bool(bot),
    )


def _conversations(conn: sqlite3.Connection, only: str | None = None) -> list[Conversation]:
    sql = (
        "SELECT id, participants, metadata, is_distinct, created_at, created_by, last_position,"
        " last_message_at, read_position, delivered_position, unread_count, has_left"
        " FROM conversations"
    )
    args: tuple[str, ...] = ()
    if only is not None:
        sql += " WHERE id = ?"
        args = (only,)
    sql += " ORDER BY coalesce(last_message_at, created_at, 0) DESC, id"
    return [
        Conversation(
            id=r[0],
            participants=tuple(json.loads(r[1])),
            metadata=json.loads(r[2]),
            distinct=bool(r[3]),
            created_at=r[4],
            created_by=r[5],
            last_position=r[6],
            last_message_at=r[7],
            read_position=r[8],
            delivered_position=r[9],
            unread_count=r[10],
            left=bool(r[11]),
        )
        for r in conn.execute(sql, args).fetchall()
    ]
