"""``chinwag users suspend|unsuspend``: the platform API's suspension, from a shell."""

from __future__ import annotations

from chinwag.server.handlers.auth import create_anonymous_session
from chinwag.server.services import Services
from chinwag.server.storage import sessions as session_store
from chinwag.server.storage.records import SessionRecord
from tests.cli.conftest import Cli


def test_suspend_ends_sessions_and_unsuspend_lifts_it(cli: Cli) -> None:
    app_id = str(cli.json("apps", "create", "anon app", "--allow-anonymous")["app_id"])
    made = cli.services(lambda services: create_anonymous_session(services, app_id))
    user_id = made.user.user_id
    suspended = cli.json("users", "suspend", app_id, user_id)
    assert suspended["ended_session_ids"] == [made.session.id]
    assert suspended["suspended_at"] is not None

    async def session(services: Services) -> SessionRecord | None:
        async with services.db.read() as conn:
            return await session_store.get_session(conn, made.session.id)

    ended = cli.services(session)
    assert ended is not None
    assert ended.revoked_reason == "user_suspended"
    lifted = cli.json("users", "unsuspend", app_id, user_id)
    assert lifted["suspended_at"] is None
    human = cli("users", "suspend", app_id, user_id)
    assert human.exit_code == 0
    assert "suspended" in human.stdout


def test_suspending_an_unknown_user_is_not_found(cli: Cli, app_id: str) -> None:
    _, error = cli.error("users", "suspend", app_id, "nobody")
    assert error["id"] == "not_found"
