"""The terminal client across restarts: offline it shows the store and queues; sign-out wipes;
a first sign-in that fails exits with its reason."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.widgets import ProgressBar, Static
from typer.testing import CliRunner

from chinwag.cli.main import app as cli_app
from chinwag.client import Client
from chinwag.server.handlers.sessions import revoke_user_sessions
from chinwag.server.handlers.suspension import set_user_suspended
from chinwag.tui.app import ChatApp
from chinwag.tui.signin import sample_provider
from tests.client.conftest import Tokens
from tests.client.test_sync import eventually, signed_in
from tests.support import RunningServer, free_port, make_app


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


async def test_a_first_sign_in_that_fails_exits_with_the_whole_reason(
    make_client: Callable[..., Client], server: RunningServer
) -> None:
    """A device never signed in has nothing to show offline, and the status line cut the
    reason ("could not sign in: 403"): the app exits 1 with it (``chinwag chat`` prints
    it). A refusal (a production app refuses the sample provider), then no server there."""
    production = await make_app(server.services, production=True)
    provider = sample_provider(server.url, production.app_id, "alice")
    refused = ChatApp(
        make_client("alice", app_id=production.app_id, identity_token_provider=provider),
        "alice",
        url=server.url,
    )
    async with refused.run_test():
        await eventually(lambda: _exited(refused))
    assert refused.return_code == 1
    assert f"could not sign in as alice at {server.url}: 403 sample_provider_forbidden" in str(
        refused.return_value
    )
    dead = f"http://127.0.0.1:{free_port()}"
    unreachable = ChatApp(make_client("bob", base_url=dead), "bob", url=dead)
    async with unreachable.run_test():
        await eventually(lambda: _exited(unreachable))
    assert unreachable.return_code == 1
    assert f"could not sign in as bob at {dead}" in str(unreachable.return_value)


async def test_a_wipe_from_the_app_closes_the_screen_and_says_why(
    make_client: Callable[..., Client], tokens: Tokens, server: RunningServer, tmp_path: Path
) -> None:
    """The app's backend ends the session with ``wipe``: the SDK deletes the data. The screen
    used to stay up, showing what had just been deleted, with no word of why."""
    app = ChatApp(make_client("alice", identity_token_provider=tokens.provider("alice")), "alice")
    async with app.run_test():
        await eventually(lambda: _ready(app))
        await revoke_user_sessions(server.services, tokens.app.app_id, "alice", wipe=True)
        await eventually(lambda: _exited(app))
    assert app.return_code == 1
    assert "Signed out alice: the app ended the session" in str(app.return_value)
    assert not any((tmp_path / "alice").rglob("*.sqlite3*"))


async def test_a_suspension_keeps_the_screen_and_ctrl_r_signs_in_once_lifted(
    make_client: Callable[..., Client], tokens: Tokens, server: RunningServer
) -> None:
    bob = await signed_in(make_client, tokens, "bob")
    conv = await bob.create_conversation(["alice", "bob"])
    await bob.send_message(conv.id, "before")
    await bob.flush_outbox()
    app_id = tokens.app.app_id
    client = make_client("alice", identity_token_provider=tokens.provider("alice"))
    app = ChatApp(client, "alice")
    try:
        async with app.run_test() as pilot:
            await eventually(lambda: _showing(app, "before"))
            await set_user_suspended(server.services, app_id, "alice", True)
            await eventually(lambda: _noting(app, "suspended: messages wait"))
            await pilot.press(*"held", "enter")  # queued on the device, not refused
            await eventually(lambda: _showing(app, "held  … sending"))
            assert app.return_code is None
            await set_user_suspended(server.services, app_id, "alice", False)
            await pilot.press("ctrl+r")

            async def bob_has_it() -> bool:
                return "held" in [m.text for m in await bob.messages(conv.id)]

            await eventually(bob_has_it)
            assert client.is_logged_in(user_id="alice")
    finally:
        await bob.close()


def test_chat_refuses_a_url_without_a_scheme_before_starting() -> None:
    result = CliRunner().invoke(
        cli_app, ["chat", "--app", "a", "--user", "u", "--url", "127.0.0.1:8000"]
    )
    assert result.exit_code == 2
    assert "http://host:port" in result.stderr


async def _exited(app: ChatApp) -> bool:
    return app.return_code is not None


async def _showing(app: ChatApp, text: str) -> bool:
    return text in app.pane_text.plain


async def _noting(app: ChatApp, text: str) -> bool:
    return text in app.note


async def _hidden(widget: ProgressBar) -> bool:
    return not widget.display


async def _ready(app: ChatApp) -> bool:
    return app.ready.is_set()
