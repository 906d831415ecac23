"""``chinwag chat`` in a real terminal: tmux runs it, we type, and read the screen back."""

from __future__ import annotations

import asyncio
import secrets
import shlex
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from chinwag.client import Client, ClientEvent, Message
from tests.client.conftest import Tokens
from tests.client.test_events import collect
from tests.client.test_sync import eventually, signed_in
from tests.support import AppFixture, RunningServer

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


class Tmux:
    """A private tmux server (its own socket), so tests never touch anyone's sessions."""

    def __init__(self) -> None:
        self.socket = f"chinwag-test-{secrets.token_hex(4)}"

    async def __call__(self, *args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            "tmux", "-L", self.socket, *args, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await process.communicate()
        return out.decode()

    async def screen(self) -> str:
        return await self("capture-pane", "-p", "-t", "chat")


async def test_chinwag_chat_in_tmux_shows_and_sends_messages(
    make_client: Callable[..., Client],
    tokens: Tokens,
    server: RunningServer,
    app: AppFixture,
    tmp_path: Path,
) -> None:
    bob = await signed_in(make_client, tokens, "bob")
    bob_got = collect(bob, ClientEvent.MESSAGE)
    conv = await bob.create_conversation(["alice", "bob"])
    await bob.send_message(conv.id, "hi from bob [bold]")
    await bob.flush_outbox()
    command = [sys.executable, "-m", "chinwag.cli.main", "chat", "--app", app.app_id]
    command += ["--user", "alice", "--url", server.url, "--store", str(tmp_path / "alice")]
    tmux = Tmux()
    try:
        await tmux("new-session", "-d", "-s", "chat", "-x", "120", "-y", "30", shlex.join(command))

        async def on_screen() -> bool:
            return "hi from bob [bold]" in await tmux.screen()

        try:
            await eventually(on_screen, timeout=15)  # signed in through the sample provider
        except TimeoutError:
            raise AssertionError(await tmux.screen()) from None
        await tmux("send-keys", "-t", "chat", "-l", "hello from tmux")
        await tmux("send-keys", "-t", "chat", "Enter")

        async def bob_has_it() -> bool:
            return any(isinstance(m, Message) and m.text == "hello from tmux" for m in bob_got)

        await eventually(bob_has_it)

        async def shown_as_sent() -> bool:
            screen = await tmux.screen()
            return "● online" in screen and "hello from tmux  ✓" in screen

        await eventually(shown_as_sent)
    finally:
        await tmux("kill-server")
        await bob.close()
