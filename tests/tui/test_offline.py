"""The terminal client across restarts: offline it shows the store and queues; sign-out wipes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.widgets import ProgressBar, Static

from chinwag.client import Client
from chinwag.tui.app import ChatApp
from tests.client.conftest import Tokens
from tests.client.test_sync import eventually, signed_in
from tests.support import free_port


async def test_offline_restart_shows_the_store_and_queues_what_is_typed(
    make_client: Callable[..., Client], tokens: Tokens
) -> None:
    bob = await signed_in(make_client, tokens, "bob")
    conv = await bob.create_conversation(["alice", "bob"])
    await bob.send_message(conv.id, "see you offline")
    await bob.flush_outbox()
    await bob.close()
    online = ChatApp(
        make_client("alice", identity_token_provider=tokens.provider("alice")), "alice"
    )
    async with online.run_test() as pilot:
        await eventually(lambda: _showing(online, "see you offline"))
        await eventually(lambda: _hidden(online.query_one("#sync", ProgressBar)))
        await pilot.press("ctrl+q")
    # The same device, the server gone: signed in from the saved session, data from the store.
    dead = f"http://127.0.0.1:{free_port()}"
    offline = ChatApp(make_client("alice", base_url=dead), "alice", url=dead)
    async with offline.run_test() as pilot:
        await eventually(lambda: _showing(offline, "see you offline"))
        await pilot.press(*"queued", "enter")
        await eventually(lambda: _showing(offline, "queued  … sending"))
        status = str(offline.query_one("#status", Static).render())
        assert status.startswith("○ offline")
        assert "outbox: 1 pending" in status


async def test_sign_out_ends_the_session_and_deletes_the_users_data(
    make_client: Callable[..., Client], tokens: Tokens, tmp_path: Path
) -> None:
    app = ChatApp(make_client("alice", identity_token_provider=tokens.provider("alice")), "alice")
    async with app.run_test() as pilot:
        await eventually(lambda: _ready(app))
        assert any((tmp_path / "alice").rglob("user-*.sqlite3"))
        await pilot.press("ctrl+o")
    assert app.return_value == "Signed out alice; the local data is deleted."
    assert not any((tmp_path / "alice").rglob("*.sqlite3*"))


async def _showing(app: ChatApp, text: str) -> bool:
    return text in app.pane_text.plain


async def _hidden(widget: ProgressBar) -> bool:
    return not widget.display


async def _ready(app: ChatApp) -> bool:
    return app.ready.is_set()
