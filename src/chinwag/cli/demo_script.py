"""The demo's cast: two users on two devices each, chatting from a script over the SDK.

Everything printed is something an SDK event reported, so the demo shows the system
working rather than the script's intentions: a message line when the sender's device queued
it, a line per device it ``arrived`` on (the ``message`` event), ``typing`` as the other
user's device saw it, and ``read by`` when the ``receipt`` came back. Text reaches the
terminal as Rich ``Text`` (plain spans), never as markup.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from rich.console import Console
from rich.text import Text

from chinwag.client import Client, ClientEvent, Message, Receipt, Typing, TypingState

__all__ = ["DEVICES", "SCRIPT", "Cast"]

USERS = ("alice", "bob")
DEVICES = ("phone", "laptop")
SCRIPT = (
    ("alice", "phone", "Hi Bob! This is the chinwag demo: two users, two devices each."),
    ("bob", "laptop", "Hi Alice. Your message reached my laptop and my phone."),
    ("alice", "laptop", "Now I'm typing on my laptop; my phone has this message too."),
    ("bob", "phone", "Typing and read receipts travel over the same socket."),
    ("alice", "phone", "Join us from another terminal with chinwag chat (see above)."),
    ("bob", "laptop", "Or sign in as carol and start a conversation: /new alice bob"),
)
STYLE = {"alice": "bold magenta", "bob": "bold cyan"}

Provider = Callable[[str, bool], Awaitable[str]]


class Cast:
    """Four signed-in clients, one conversation, and the printing of what they report."""

    def __init__(self, console: Console, clients: dict[tuple[str, str], Client]) -> None:
        self.console = console
        self.clients = clients
        self.conversation_id = ""
        self._read: dict[str, int] = {}
        self._typing: dict[str, TypingState] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._shown: set[str] = set()
        """Ids of messages printed: the script's, and those typed by someone who joined."""

    @classmethod
    async def sign_in(
        cls, console: Console, url: str, app_id: str, store: Path, provider: Callable[..., Provider]
    ) -> Cast:
        clients = {}
        for user, device in itertools.product(USERS, DEVICES):
            client = Client(
                url,
                app_id,
                store_dir=store / f"{user}-{device}",
                identity_token_provider=provider(user),
            )
            await client.connect()
            await client.authenticate(user)
            clients[(user, device)] = client
        cast = cls(console, clients)
        await asyncio.gather(*(c.wait_until_synced() for c in clients.values()))
        conversation = await clients[("alice", "phone")].create_conversation(
            list(USERS), distinct=True
        )
        cast.conversation_id = conversation.id
        cast._listen()
        return cast

    def _listen(self) -> None:
        for (user, device), client in self.clients.items():
            client.on(ClientEvent.MESSAGE, lambda m, u=user, d=device: self._arrived(u, d, m))
            if device == DEVICES[0]:  # each user's phone reports what the user sees
                client.on(ClientEvent.TYPING, self._typed)
                client.on(ClientEvent.RECEIPT, self._receipt)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(c.close() for c in self.clients.values()))

    async def play(self, pace: float = 0.9) -> None:
        """The script, round and round, until cancelled."""
        for user, device, text in itertools.cycle(SCRIPT):
            client = self.clients[(user, device)]
            await client.set_typing(self.conversation_id, TypingState.STARTED)
            await asyncio.sleep(pace * 0.6)
            self._shown.add((await client.send_message(self.conversation_id, text)).id)
            self._say(Text.assemble((user, STYLE[user]), f" ({device}): ", text))
            await asyncio.sleep(pace * 0.4)
            await client.set_typing(self.conversation_id, TypingState.FINISHED)

    def _arrived(self, user: str, device: str, message: Message) -> None:
        if message.id not in self._shown:  # from someone who joined with chinwag chat
            self._shown.add(message.id)
            sender = message.sender_id
            self._say(Text.assemble((sender, STYLE.get(sender, "bold")), ": ", message.text))
        self._say(Text.assemble("    ✓ on ", f"{user}'s {device}"), style="green")
        if user != message.sender_id and device == DEVICES[1] and message.position:
            task = asyncio.ensure_future(self._mark_read(user, message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _mark_read(self, user: str, message: Message) -> None:
        assert message.position is not None
        await self.clients[(user, DEVICES[1])].mark_read(message.conversation_id, message.position)

    def _typed(self, typing: Typing) -> None:
        if self._typing.get(typing.user_id) is typing.state:
            return  # both of the other user's devices saw it; say it once
        self._typing[typing.user_id] = typing.state
        if typing.state is TypingState.STARTED:
            self._say(Text.assemble((typing.user_id, "italic"), " is typing…"), style="dim")

    def _receipt(self, receipt: Receipt) -> None:
        if receipt.read_position <= self._read.get(receipt.user_id, 0):
            return
        self._read[receipt.user_id] = receipt.read_position
        self._say(Text.assemble("    ✓✓ read by ", receipt.user_id), style="green")

    def _say(self, line: Text, style: str = "") -> None:
        stamp = Text(time.strftime("%H:%M:%S "), style="dim")
        self.console.print(Text.assemble(stamp, line, style=style) if style else stamp + line)
