"""The local store: idempotent event application, cursor rules, queries and the outbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chinwag.client.models import MessageState
from chinwag.client.store import Store, store_path

C1 = "00000000-0000-4000-8000-000000000001"
C2 = "00000000-0000-4000-8000-000000000002"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(store_path(tmp_path, "app", "alice"))
    yield opened
    await opened.close()


def conversation(cid: str, **extra: Any) -> dict[str, Any]:
    return {"id": cid, "participants": ["alice", "bob"], "created_at": 1.0, **extra}


def message(cid: str, position: int, sender: str = "bob", mid: str | None = None) -> dict[str, Any]:
    return {
        "id": mid or f"{cid[:-4]}{position:04d}",
        "conversation_id": cid,
        "position": position,
        "sender_id": sender,
        "parts": [{"mime_type": "text/plain", "body": f"m{position}"}],
        "sent_at": 100.0 + position,
    }


def created(msg: dict[str, Any]) -> dict[str, Any]:
    return {"type": "message.created", "data": {"message": msg}}


async def test_events_apply_once_even_when_replayed(store: Store) -> None:
    events = [
        (1, {"type": "conversation.created", "data": {"conversation": conversation(C1)}}),
        (2, created(message(C1, 1))),
        (3, created(message(C1, 2))),
    ]
    first = await store.apply_events(events, "alice", "s1")
    again = await store.apply_events(events, "alice", "s1")
    assert first.cursor == again.cursor == 3
    assert again.applied == []
    assert [m.position for m in await store.messages(C1)] == [1, 2]
    (conv,) = await store.conversations()
    assert conv.unread_count == 2
    assert conv.last_position == 2


async def test_a_gap_stops_application_at_the_cursor(store: Store) -> None:
    result = await store.apply_events(
        [(1, {"type": "identity.updated", "data": {"user": {"user_id": "bob"}}}), (3, {})],
        "alice",
        "s1",
    )
    assert result.gap
    assert await store.cursor() == 1


async def test_message_for_unknown_conversation_is_reported(store: Store) -> None:
    result = await store.apply_events([(1, created(message(C2, 5)))], "alice", "s1")
    assert result.missing_conversations == {C2}


async def test_own_receipt_recounts_unread(store: Store) -> None:
    await store.upsert_conversations([conversation(C1, last_position=0)])
    await store.apply_events([(i, created(message(C1, i))) for i in range(1, 5)], "alice", "s")
    receipt = {
        "type": "receipt",
        "data": {
            "conversation_id": C1,
            "user_id": "alice",
            "read_position": 3,
            "delivered_position": 4,
        },
    }
    await store.apply_events([(5, receipt)], "alice", "s")
    conv = await store.conversation(C1)
    assert conv is not None
    assert (conv.read_position, conv.unread_count) == (3, 1)


async def test_conversations_sorted_by_last_message(store: Store) -> None:
    await store.upsert_conversations(
        [
            conversation(C1, last_position=1, last_message={"sent_at": 5.0}),
            conversation(C2, last_position=1, last_message={"sent_at": 9.0}),
        ]
    )
    assert [c.id for c in await store.conversations()] == [C2, C1]


async def test_only_our_session_revocation_counts(store: Store) -> None:
    other = {"type": "session.revoked", "data": {"session_id": "s2", "reason": "logout"}}
    mine = {"type": "session.revoked", "data": {"session_id": "s1", "reason": "revoked"}}
    assert not (await store.apply_events([(1, other)], "alice", "s1")).revoked
    assert (await store.apply_events([(2, mine)], "alice", "s1")).revoked


async def test_outbox_keeps_order_and_ack_fills_position(store: Store) -> None:
    await store.upsert_conversations([conversation(C1)])
    for i in range(3):
        await store.enqueue(f"id-{i}", C1, "alice", [{"mime_type": "text/plain", "body": str(i)}])
    assert [e.message_id for e in await store.outbox()] == ["id-0", "id-1", "id-2"]
    pending = await store.messages(C1)
    assert [m.state for m in pending] == [MessageState.PENDING] * 3
    await store.acknowledge(message(C1, 7, sender="alice", mid="id-0"), "alice")
    assert [e.message_id for e in await store.outbox()] == ["id-1", "id-2"]
    listed = await store.messages(C1)
    assert [(m.id, m.position) for m in listed] == [("id-0", 7), ("id-1", None), ("id-2", None)]
    conv = await store.conversation(C1)
    assert conv is not None
    assert conv.unread_count == 0


async def test_history_page_is_one_bulk_insert(store: Store) -> None:
    await store.upsert_conversations([conversation(C1, last_position=500, unread_count=3)])
    await store.insert_messages([message(C1, i) for i in range(1, 501)], "alice")
    assert await store.count_messages() == 500
    last = await store.messages(C1, before=501, limit=2)
    assert [m.position for m in last] == [499, 500]
    conv = await store.conversation(C1)
    assert conv is not None
    assert conv.unread_count == 3


async def test_destroy_deletes_the_file(tmp_path: Path) -> None:
    path = store_path(tmp_path, "app", "bob")
    store = await Store.open(path)
    await store.set_meta("x", "y")
    await store.destroy()
    assert not path.exists()


def updated(cid: str, **changes: Any) -> dict[str, Any]:
    return {"type": "conversation.updated", "data": {"conversation_id": cid, **changes}}


async def test_metadata_patches_apply_on_top_of_a_newer_snapshot_without_going_back(
    store: Store,
) -> None:
    """A first sync replays patches the snapshot already holds: the result must not move."""
    now = {"title": "two", "tags": {"keep": "y"}}
    await store.upsert_conversations([conversation(C1, metadata=now)])
    events = [
        (1, updated(C1, metadata={"set": {"title": "one", "tags.drop": "x"}, "delete": []})),
        (2, updated(C1, metadata={"set": {"title": "two"}, "delete": ["tags.drop"]})),
        (3, updated(C1, participants=["alice", "carol"], distinct=False)),
    ]
    await store.apply_events(events, "alice", "s1")
    conv = await store.conversation(C1)
    assert conv is not None
    assert conv.metadata == now
    assert conv.participants == ("alice", "carol")
    missing = await store.apply_events(
        [(4, updated(C2, metadata={"set": {}, "delete": []}))], "alice", "s1"
    )
    assert missing.missing_conversations == {C2}


async def test_messages_after_a_position_include_the_pending_ones(store: Store) -> None:
    await store.upsert_conversations([conversation(C1)])
    await store.insert_messages([message(C1, p) for p in (1, 2, 3)], "alice")
    await store.enqueue("00000000-0000-4000-8000-00000000ffff", C1, "alice", [])
    recent = await store.messages(C1, after=1)
    assert [m.position for m in recent] == [2, 3, None]
    assert [m.position for m in await store.messages(C1, after=1, before=3)] == [2]
