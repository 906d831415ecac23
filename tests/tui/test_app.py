"""``ChatApp`` headless (Textual's pilot) against a real server and a second SDK client."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from textual.widgets import OptionList

from chinwag.client import Client, ClientEvent, ConnectionState, Message, Typing, TypingState
from chinwag.tui.app import ChatApp
from tests.client.conftest import Tokens
from tests.client.test_events import collect
from tests.client.test_sync import eventually, signed_in
from tests.support import RunningServer

HOSTILE = "[red]x[/red] [link=https://evil.example]y[/link] [bold"


async def test_typed_message_reaches_the_other_user_and_their_markup_shows_literally(
    make_client: Callable[..., Client], tokens: Tokens, server: RunningServer, tmp_path: Path
) -> None:
    bob = await signed_in(make_client, tokens, "bob")
    bob_got = collect(bob, ClientEvent.MESSAGE)
    bob_saw_typing = collect(bob, ClientEvent.TYPING)
    team = await bob.create_conversation(["alice", "bob", "carol"], metadata={"title": "team"})
    await bob.send_message(team.id, "standup at ten?")
    await bob.send_message(team.id, "carol is in")
    await bob.flush_outbox()
    server.clock.advance(60)  # plans is newer: the list shows it first, and the app opens it
    conv = await bob.create_conversation(["alice", "bob"], metadata={"title": "[bold]plans"})
    await bob.send_message(conv.id, "Hi Alice")
    await bob.flush_outbox()
    alice = make_client("alice-tui", identity_token_provider=tokens.provider("alice"))
    app = ChatApp(alice, "alice", url=server.url)
    try:
        async with app.run_test(size=(110, 30)) as pilot:

            async def opened() -> bool:
                # Typing is ephemeral and goes only over an open socket; the pane can show the
                # history (read over REST) before the socket is up, so wait for both.
                return (
                    app.current == conv.id
                    and "Hi Alice" in app.pane_text.plain
                    and alice.connection_state is ConnectionState.CONNECTED
                )

            await eventually(opened)
            title = app.query_one("#conversations", OptionList).get_option(conv.id).prompt
            assert str(title).startswith("[bold]plans")  # a Text shown as typed, not bold
            await pilot.press(*[("space" if c == " " else c) for c in "hello bob"], "enter")

            async def bob_has_it() -> bool:
                return any(isinstance(m, Message) and m.text == "hello bob" for m in bob_got)

            await eventually(bob_has_it)

            async def bob_saw_alice_typing() -> bool:
                # Typing frames are ephemeral and not ordered with stored events: under load
                # the relay's frame may land after the message it preceded.
                return Typing(conv.id, "alice", TypingState.STARTED) in bob_saw_typing

            await eventually(bob_saw_alice_typing)
            await bob.set_typing(conv.id, "started")
            await bob.send_message(conv.id, HOSTILE)
            await bob.flush_outbox()

            async def hostile_shown() -> bool:
                text = app.pane_text.plain
                return HOSTILE in text and "read by bob" in text and unread_badge() == ""

            def unread_badge() -> str:  # alice has the conversation open: she reads it
                label = app.query_one("#conversations", OptionList).get_option(conv.id).prompt
                return str(label).removeprefix("[bold]plans").strip()

            try:
                await eventually(hostile_shown)
            except TimeoutError:
                seen = await alice.conversation(conv.id)
                raise AssertionError((app.pane_text.plain, unread_badge(), seen)) from None
            assert all("red" not in str(span.style) for span in app.pane_text.spans)
            assert "hello bob" in app.pane_text.plain
            await _screenshot(app, tmp_path)
    finally:
        await bob.close()


async def _screenshot(app: ChatApp, tmp_path: Path) -> None:
    """Into tmp_path; with CHINWAG_SCREENSHOTS=DIR into DIR (docs/images), PNG if possible."""
    folder = Path(os.environ.get("CHINWAG_SCREENSHOTS", tmp_path))
    svg = Path(app.save_screenshot("chinwag-chat.svg", str(folder)))
    assert "hello" in svg.read_text()
    converter = shutil.which("rsvg-convert")
    if converter and "CHINWAG_SCREENSHOTS" in os.environ:
        # librsvg drops the leading spaces of Textual's text runs unless told to keep them.
        kept = tmp_path / "kept.svg"
        kept.write_text(svg.read_text().replace("<svg ", '<svg xml:space="preserve" ', 1))
        png = svg.with_suffix(".png")
        subprocess.run([converter, "-o", str(png), str(kept)], check=True, timeout=30)
