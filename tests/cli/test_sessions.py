"""``chinwag sessions revoke``."""

from __future__ import annotations

from chinwag.server.handlers.auth import create_anonymous_session
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
