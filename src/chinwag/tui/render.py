"""SDK objects as Rich ``Text``: the only way untrusted strings reach the screen.

Display names, message bodies, titles and user ids come from other people. Rich *markup*
would interpret ``[red]`` or ``[link=…]`` in them, so nothing here builds markup strings:
every untrusted string is appended to a ``Text`` as a plain span with a style we choose.
Pure functions of their arguments (the clock's local time zone aside), so tests call them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from rich.text import Text

from chinwag.client import Conversation, Message, MessageState

__all__ = [
    "conversation_label",
    "conversation_title",
    "message_line",
    "messages_text",
    "read_by",
    "status_text",
    "typing_text",
]

ME, OTHER = "bold green", "bold cyan"


def conversation_title(conversation: Conversation, me: str) -> str:
    """The metadata ``title`` if it is a string, else the other participants."""
    title = conversation.metadata.get("title")
    if isinstance(title, str) and title.strip():
        return title
    others = [p for p in conversation.participants if p != me]
    return ", ".join(others) if others else "(just you)"


def conversation_label(conversation: Conversation, me: str) -> Text:
    label = Text(conversation_title(conversation, me), overflow="ellipsis", no_wrap=True)
    if conversation.unread_count:
        label.append("  ")
        label.append(f" {conversation.unread_count} ", style="bold reverse")
    if conversation.left:
        label.append("  (left)", style="dim")
    return label


def read_by(message: Message, marks: Mapping[str, int], me: str) -> list[str]:
    """Who (besides the sender) has read up to this message, by their read marks."""
    if message.position is None:
        return []
    return sorted(u for u, read in marks.items() if u != me and read >= message.position)


def _state(message: Message, readers: list[str]) -> Text:
    if message.state is MessageState.PENDING:
        return Text("  … sending", style="yellow")
    if message.state is MessageState.FAILED:
        return Text("  ✗ failed", style="bold red")
    if readers:
        return Text.assemble(("  ✓✓ read by ", "green"), (", ".join(readers), "green"))
    return Text("  ✓", style="dim")


def message_line(message: Message, me: str, marks: Mapping[str, int]) -> Text:
    """``12:03 alice  body  ✓✓ read by bob`` for one message."""
    stamp = time.strftime("%H:%M", time.localtime(message.sent_at)) if message.sent_at else "--:--"
    line = Text.assemble((stamp, "dim"), " ")
    line.append(message.sender_id, style=ME if message.sender_id == me else OTHER)
    line.append("  ")
    if message.deleted:
        line.append("(deleted)", style="dim italic")
    else:
        line.append(message.text or "(no text part)")
    if message.sender_id == me:
        line.append_text(_state(message, read_by(message, marks, me)))
    return line


def messages_text(messages: Iterable[Message], me: str, marks: Mapping[str, int]) -> Text:
    lines = [message_line(m, me, marks) for m in messages]
    if not lines:
        return Text("No messages yet. Say hello below.", style="dim")
    return Text("\n").join(lines)


def typing_text(typists: Iterable[str]) -> Text:
    names = sorted(typists)
    if not names:
        return Text("")
    verb = " is typing…" if len(names) == 1 else " are typing…"
    return Text.assemble((", ".join(names), "italic"), (verb, "italic dim"))


def status_text(user: str, url: str, *, online: bool, pending: int, note: str = "") -> Text:
    status = Text.assemble(("● online" if online else "○ offline", "green" if online else "red"))
    status.append("  ")
    status.append(user, style="bold")
    status.append(f" @ {url}", style="dim")
    status.append(f"  outbox: {pending} pending" if pending else "  outbox: empty", style="dim")
    if note:
        status.append("  ")
        status.append(note, style="yellow")
    return status
