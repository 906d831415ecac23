"""Rendering is pure: untrusted strings become plain spans, states read as words."""

from __future__ import annotations

from chinwag.client import Conversation, Message, MessagePart, MessageState
from chinwag.tui import render


def message(text: str, *, sender: str = "bob", position: int | None = 1, **kw: object) -> Message:
    return Message(
        id="m",
        conversation_id="c",
        position=position,
        sender_id=sender,
        parts=(MessagePart("text/plain", text),),
        sent_at=0.0,
        **kw,  # type: ignore[arg-type]
    )


def test_markup_in_bodies_names_and_titles_is_shown_as_typed() -> None:
    line = render.message_line(message("[red]x[/red]", sender="[blink]eve"), "alice", {})
    assert "[blink]eve  [red]x[/red]" in line.plain
    assert all(
        "red" not in str(span.style) and "blink" not in str(span.style) for span in line.spans
    )
    conv = Conversation(id="c", participants=("alice", "[u]bob"), metadata={"title": 3})
    assert render.conversation_label(conv, "alice").plain == "[u]bob"
    assert render.typing_text(["[b]x"]).plain == "[b]x is typing…"


def test_own_messages_show_outbox_state_and_who_read_them() -> None:
    mine = {"alice": 9, "bob": 2, "carol": 1}
    pending = message("hi", sender="alice", position=None, state=MessageState.PENDING)
    assert render.message_line(pending, "alice", mine).plain.endswith("… sending")
    failed = message("hi", sender="alice", state=MessageState.FAILED)
    assert render.message_line(failed, "alice", mine).plain.endswith("✗ failed")
    read = message("hi", sender="alice", position=2)
    assert render.message_line(read, "alice", mine).plain.endswith("✓✓ read by bob")
    unread = message("hi", sender="alice", position=3)
    assert render.message_line(unread, "alice", mine).plain.endswith("✓")
