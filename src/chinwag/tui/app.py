"""The terminal chat client: conversations, messages, compose, typing, receipts.

Everything shown is read from the SDK's local store, so the screen works offline and shows
the outbox as it is. SDK events only mark the screen stale; one loop reloads it, so a burst
of a hundred events costs one redraw. Read marks of the other participants are those seen
by this run (the protocol sends them as events; the server has no query for them).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.widgets import Footer, Input, OptionList, ProgressBar, Static
from textual.widgets.option_list import Option

from chinwag.client import (
    Client,
    ClientError,
    ClientEvent,
    ConnectionState,
    Conversation,
    Message,
    OfflineError,
    Receipt,
    Suspended,
    SyncProgress,
    Typing,
    TypingState,
)
from chinwag.tui import render

__all__ = ["ChatApp"]

HISTORY = 200
"""Messages shown per conversation: the newest, plus whatever is still being sent."""
TYPING_EVERY = 1.5
"""Seconds between repeated ``started`` updates while the user types (server pauses at 2.5)."""


class ChatApp(App[str]):
    """``ChatApp(client, user_id).run()``; the client is connected and closed by the app."""

    TITLE = "chinwag chat"
    CSS = """
    #status { height: 1; background: $panel; }
    #conversations { width: 32; height: 1fr; }
    #pane { height: 1fr; border: round $primary; }
    #typing { height: 1; color: $text-muted; }
    #sync { height: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+n", "new_conversation", "New conversation"),
        Binding("ctrl+o", "sign_out", "Sign out (wipe)"),
        Binding("ctrl+r", "sign_in_again", "Sign in again"),
        Binding("ctrl+q", "quit", "Quit"),
    ]

    def __init__(self, client: Client, user_id: str, *, url: str = "") -> None:
        super().__init__()
        self.client = client
        self.user_id = user_id
        self.url = url
        self.current: str | None = None
        self.conversation_ids: list[str] = []
        self.marks: dict[str, dict[str, int]] = {}
        self.typists: dict[str, set[str]] = {}
        self.pane_text = Text("")
        self.note = "signing in…"
        self.pending = 0
        self.ready = asyncio.Event()
        """Set once signed in and the first screen is drawn (tests wait on it)."""
        self._dirty = asyncio.Event()
        self._typing_sent_at: float | None = None
        self._unsubscribe: list[Callable[[], None]] = []
        self._signing_out = False

    def compose(self) -> ComposeResult:
        yield Static(id="status")
        with Horizontal():
            yield OptionList(id="conversations")
            with Vertical():
                with VerticalScroll(id="pane"):
                    yield Static(id="messages")
                yield Static(id="typing")
                yield Input(placeholder="Message  (/new USER… starts a conversation)", id="compose")
        yield ProgressBar(id="sync", total=1, show_eta=False)
        yield Footer()

    async def on_mount(self) -> None:
        for event, handler in (
            (ClientEvent.RECEIPT, self._sdk_receipt),
            (ClientEvent.MESSAGE, self._sdk_message),
            (ClientEvent.TYPING, self._sdk_typing),
            (ClientEvent.SYNC_PROGRESS, self._sdk_progress),
            (ClientEvent.SYNCED, self._sdk_synced),
            (ClientEvent.ERROR, self._sdk_error),
            (ClientEvent.CONNECTED, self._sdk_connected),
            (ClientEvent.DEAUTHENTICATED, self._sdk_deauthenticated),
        ):
            self._unsubscribe.append(self.client.on(event, handler))
        for event in (
            ClientEvent.CHANGES,
            ClientEvent.DISCONNECTED,
            ClientEvent.MESSAGE_SENT,
            ClientEvent.MESSAGE_FAILED,
        ):
            self._unsubscribe.append(self.client.on(event, self._stale))
        self.query_one("#compose", Input).focus()
        self._draw_status()
        self.run_worker(self._sign_in(), exclusive=True, group="sign-in")
        self.run_worker(self._redraw_forever(), group="redraw")

    async def on_unmount(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        await self.client.close()

    # -- SDK events: mark stale, remember what the store does not keep ------------------

    def _stale(self, *_: Any) -> None:
        self._dirty.set()

    def _sdk_receipt(self, receipt: Receipt) -> None:
        self._read(receipt.conversation_id, receipt.user_id, receipt.read_position)

    def _sdk_message(self, message: Message) -> None:
        """Sending marks read for the sender (the server's rule; it writes no receipt)."""
        if message.position is not None:
            self._read(message.conversation_id, message.sender_id, message.position)

    def _read(self, conversation_id: str, user_id: str, position: int) -> None:
        marks = self.marks.setdefault(conversation_id, {})
        marks[user_id] = max(marks.get(user_id, 0), position)
        self._dirty.set()

    def _sdk_typing(self, typing: Typing) -> None:
        typists = self.typists.setdefault(typing.conversation_id, set())
        if typing.state is TypingState.STARTED:
            typists.add(typing.user_id)
        else:
            typists.discard(typing.user_id)
        self._dirty.set()

    def _sdk_progress(self, progress: SyncProgress) -> None:
        bar = self.query_one("#sync", ProgressBar)
        bar.update(total=max(progress.messages_total, 1), progress=progress.messages)

    def _sdk_synced(self) -> None:
        self.query_one("#sync", ProgressBar).display = False
        self._dirty.set()

    def _sdk_connected(self) -> None:
        self.note = ""  # whatever went wrong before, the server answers again
        self._dirty.set()

    def _sdk_deauthenticated(self, reason: str) -> None:
        """The session ended without this screen asking. The screen used to stay up showing
        data the SDK had just deleted (a wipe), or a conversation nobody could write to (the
        provider stopped), with no word of why. A suspension keeps the data and the queue:
        the screen stays, says so, and ctrl+r asks again once the app lifts it."""
        if self._signing_out:
            return  # action_sign_out exits with its own words
        if reason == "suspended":
            self.note = "suspended: messages wait; ctrl+r to sign in again"
            self._draw_status()
            return
        why = _ENDINGS.get(reason, f"the session ended ({reason})")
        self.exit(f"Signed out {self.user_id}: {why}.", return_code=1)

    def _sdk_error(self, exc: BaseException) -> None:
        if isinstance(exc, Suspended):
            return  # ``deauthenticated("suspended")`` set a note that says what to do
        self.note = f"{type(exc).__name__}: {exc}"[:120]
        self._draw_status()

    # -- background work ----------------------------------------------------------------

    async def _sign_in(self) -> None:
        try:
            await self.client.connect()
            if not self.client.is_logged_in(user_id=self.user_id):
                await self.client.authenticate(self.user_id)
        except (ClientError, OSError) as exc:
            if self.client.user is None:
                # Never signed in on this device: nothing to show offline, and the reason
                # (a wrong app id, a production app, no server there) did not fit the
                # status line. ``chinwag chat`` prints it whole and exits 1.
                where = f" at {self.url}" if self.url else ""
                self.exit(f"could not sign in as {self.user_id}{where}: {exc}", return_code=1)
                return
            self.note = f"could not sign in: {exc}"[:200]
            self._draw_status()
            return
        self.note = ""
        self._dirty.set()

    async def _redraw_forever(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self.redraw()
            except ClientError as exc:  # signed out underneath us, offline mark_read
                self.note = str(exc)[:120]
            except NoMatches:
                return  # the app is closing: its widgets are gone
            await asyncio.sleep(0.05)  # let a burst of events settle into one redraw

    async def redraw(self) -> None:
        """Reload from the store: the list, the open conversation, the status line."""
        if self.client.user is None:
            return
        conversations = await self.client.conversations()
        self._draw_list(conversations)
        current = next((c for c in conversations if c.id == self.current), None)
        if current is not None:
            await self._draw_conversation(current)
        self.pending = await self.client.pending_count()
        self._draw_status()
        self.ready.set()

    def _draw_list(self, conversations: list[Conversation]) -> None:
        if self.current is None and conversations:
            self.current = conversations[0].id
        ids = [c.id for c in conversations]
        options = self.query_one("#conversations", OptionList)
        labels = [render.conversation_label(c, self.user_id) for c in conversations]
        if ids != self.conversation_ids:
            options.set_options(
                Option(label, id=c.id) for label, c in zip(labels, conversations, strict=True)
            )
            self.conversation_ids = ids
        else:
            for label, c in zip(labels, conversations, strict=True):
                options.replace_option_prompt(c.id, label)
        if self.current in ids:
            options.highlighted = ids.index(self.current)

    async def _draw_conversation(self, conversation: Conversation) -> None:
        after = max(0, conversation.last_position - HISTORY)
        messages = await self.client.messages(conversation.id, after=after)
        marks = self.marks.get(conversation.id, {})
        self.pane_text = render.messages_text(messages, self.user_id, marks)
        self.query_one("#messages", Static).update(self.pane_text)
        self.query_one("#pane", VerticalScroll).scroll_end(animate=False)
        typists = self.typists.get(conversation.id, set())
        self.query_one("#typing", Static).update(render.typing_text(typists))
        if conversation.unread_count and conversation.last_position > conversation.read_position:
            # Offline (or suspended) the mark is not sent; the next redraw after
            # reconnecting (or signing in again) tries again.
            with contextlib.suppress(OfflineError, Suspended):
                await self.client.mark_read(conversation.id, conversation.last_position)

    def _draw_status(self) -> None:
        online = self.client.connection_state is ConnectionState.CONNECTED
        self.query_one("#status", Static).update(
            render.status_text(
                self.user_id, self.url, online=online, pending=self.pending, note=self.note
            )
        )

    # -- the user's input ---------------------------------------------------------------

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        chosen = event.option.id
        if chosen is not None and chosen != self.current:
            self.current = chosen
            self._dirty.set()

    async def on_input_changed(self, event: Input.Changed) -> None:
        if self.current is None or event.value.startswith("/"):
            return
        now = asyncio.get_running_loop().time()
        if event.value and (
            self._typing_sent_at is None or now - self._typing_sent_at > TYPING_EVERY
        ):
            self._typing_sent_at = now
            await self.client.set_typing(self.current, TypingState.STARTED)
        elif not event.value and self._typing_sent_at is not None:
            self._typing_sent_at = None
            await self.client.set_typing(self.current, TypingState.FINISHED)

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        event.input.value = ""
        if not text:
            return
        try:
            if text.startswith("/"):
                await self._command(text)
            elif self.current is None:
                self.note = "no conversation yet: /new USER starts one"
            else:
                await self.client.send_message(self.current, text)
        except ClientError as exc:
            self.note = str(exc)[:120]
        self._dirty.set()

    async def _command(self, text: str) -> None:
        name, *args = text.split()
        if name == "/new" and args:
            participants = sorted({self.user_id, *args})
            conversation = await self.client.create_conversation(participants, distinct=True)
            self.current = conversation.id
        elif name == "/signout":
            await self.action_sign_out()
        else:
            self.note = "commands: /new USER…, /signout"

    def action_new_conversation(self) -> None:
        compose = self.query_one("#compose", Input)
        compose.value = "/new "
        compose.cursor_position = len(compose.value)
        compose.focus()

    def action_sign_in_again(self) -> None:
        """After a suspension is lifted (or a sign-in failed), without restarting."""
        if not self.client.is_logged_in(user_id=self.user_id):
            self.note = "signing in…"
            self._draw_status()
            self.run_worker(self._sign_in(), exclusive=True, group="sign-in")

    async def action_sign_out(self) -> None:
        """Deliver the outbox, end the session, delete this user's data on the device."""
        self._signing_out = True
        try:
            await self.client.deauthenticate()
        except ClientError as exc:
            self._signing_out = False
            self.note = f"not signed out: {exc}"[:120]
            self._draw_status()
            return
        self.exit(f"Signed out {self.user_id}; the local data is deleted.")


_ENDINGS = {
    "wiped": "the app ended the session and this device's copy of the data is deleted",
    "stopped": "the app ended the session and did not sign in again; the local data is deleted",
    "deauthenticated": "the session ended; the local data is deleted",
}
"""What each ``deauthenticated`` reason means to the person at the terminal."""
