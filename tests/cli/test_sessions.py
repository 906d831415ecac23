"""``chinwag sessions revoke``."""

from __future__ import annotations

from chinwag.server.handlers.auth import create_anonymous_session
from chinwag.server.services import Services
from chinwag.server.storage import sessions as session_store
from chinwag.server.storage.records import SessionRecord
from tests.cli.conftest import Cli


def test_revoke_ends_the_users_sessions_once(cli: Cli) -> None:
    app_id = str(cli.json("apps", "create", "anon app", "--allow-anonymous")["app_id"])
    first = cli.services(lambda services: create_anonymous_session(services, app_id))
    user_id = first.user.user_id
    revoked = cli.json("sessions", "revoke", app_id, user_id)
    assert revoked == {
        "app_id": app_id,
        "user_id": user_id,
        "revoked_session_ids": [first.session.id],
        "wipe": False,
    }
    assert cli.json("sessions", "revoke", app_id, user_id)["revoked_session_ids"] == []


def test_revoke_unknown_user_is_not_found(cli: Cli, app_id: str) -> None:
    _, error = cli.error("sessions", "revoke", app_id, "nobody")
    assert error["id"] == "not_found"


def test_revoke_human_output_names_the_count(cli: Cli) -> None:
    app_id = str(cli.json("apps", "create", "anon app", "--allow-anonymous")["app_id"])
    made = cli.services(lambda services: create_anonymous_session(services, app_id))
    result = cli("sessions", "revoke", app_id, made.user.user_id)
    assert result.exit_code == 0
    assert "revoked 1 session(s)" in result.stdout


def test_revoke_with_wipe_stores_and_reports_it(cli: Cli) -> None:
    app_id = str(cli.json("apps", "create", "anon app", "--allow-anonymous")["app_id"])
    made = cli.services(lambda services: create_anonymous_session(services, app_id))
    revoked = cli.json("sessions", "revoke", app_id, made.user.user_id, "--wipe")
    assert revoked["wipe"] is True
    assert revoked["revoked_session_ids"] == [made.session.id]

    async def stored(services: Services) -> SessionRecord | None:
        async with services.db.read() as conn:
            return await session_store.get_session(conn, made.session.id)

    record = cli.services(stored)
    assert record is not None
    assert record.revoked_reason == "revoked"
    assert record.wipe is True
    human = cli("sessions", "revoke", app_id, made.user.user_id, "--wipe")
    assert "wipe" in human.stdout
