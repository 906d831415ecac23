"""``chinwag apps``: create, list, show, update — JSON shapes, human output, app errors."""

from __future__ import annotations

import json

from chinwag.server.handlers.apps import DEFAULT_MAX_TOKEN_AGE, DEFAULT_SESSION_LIFETIME
from tests.cli.conftest import Cli

APP_FIELDS = {
    "app_id",
    "name",
    "environment",
    "session_lifetime",
    "require_nonce",
    "max_token_age",
    "allow_anonymous",
    "conversation_policy",
    "created_at",
    "updated_at",
}


def test_create_staging_app_gets_a_development_key(cli: Cli) -> None:
    created = cli.json("apps", "create", "My app")
    assert set(created) == APP_FIELDS | {"development_key"}
    assert created["name"] == "My app"
    assert created["environment"] == "staging"
    assert created["require_nonce"] is True
    assert created["allow_anonymous"] is False
    assert created["session_lifetime"] == DEFAULT_SESSION_LIFETIME
    assert created["max_token_age"] == DEFAULT_MAX_TOKEN_AGE
    assert created["conversation_policy"] == "open"
    assert created["development_key"]["alg"] == "ES256"
    assert set(created["development_key"]) == {"kid", "alg"}
    keys = cli.json("keys", "list", created["app_id"])["keys"]
    assert [(k["kid"], k["development"]) for k in keys] == [
        (created["development_key"]["kid"], True)
    ]


def test_create_production_app_with_every_option(cli: Cli) -> None:
    created = cli.json(
        "apps",
        "create",
        "Prod",
        "--production",
        "--allow-anonymous",
        "--no-nonce",
        "--session-lifetime",
        "3600",
        "--max-token-age",
        "60",
    )
    assert created["environment"] == "production"
    assert created["development_key"] is None
    assert created["allow_anonymous"] is True
    assert created["require_nonce"] is False
    assert (created["session_lifetime"], created["max_token_age"]) == (3600, 60)
    assert cli.json("keys", "list", created["app_id"]) == {"keys": []}


def test_create_refuses_an_out_of_range_lifetime(cli: Cli) -> None:
    _, error = cli.error("apps", "create", "x", "--session-lifetime", "1")
    assert error["id"] == "invalid_request"
    assert error["data"] == {"property": "session_lifetime"}


def test_list_apps_oldest_first(cli: Cli) -> None:
    assert cli.json("apps", "list") == {"apps": []}
    first = cli.json("apps", "create", "first")
    second = cli.json("apps", "create", "second", "--production")
    listed = cli.json("apps", "list")["apps"]
    assert [a["app_id"] for a in listed] == [first["app_id"], second["app_id"]]
    assert all(set(a) == APP_FIELDS for a in listed)


def test_show_app_lists_keys_without_secrets(cli: Cli, app_id: str) -> None:
    secret = cli.json("keys", "add-secret", app_id)["secret"]
    shown = cli.json("apps", "show", app_id)
    assert shown["app_id"] == app_id
    assert [k["alg"] for k in shown["keys"]] == ["ES256", "HS256"]
    assert all(
        set(k) == {"kid", "app_id", "alg", "enabled", "development", "created_at"}
        for k in shown["keys"]
    )
    assert secret not in cli("apps", "show", app_id, "--json").stdout
    assert secret not in cli("apps", "show", app_id).stdout


def test_update_changes_only_what_is_given(cli: Cli, app_id: str) -> None:
    updated = cli.json(
        "apps", "update", app_id, "--name", "Renamed", "--production", "--no-nonce",
        "--allow-anonymous", "--max-token-age", "120",
    )  # fmt: skip
    assert updated["name"] == "Renamed"
    assert updated["environment"] == "production"
    assert updated["require_nonce"] is False
    assert updated["allow_anonymous"] is True
    assert updated["max_token_age"] == 120
    assert updated["session_lifetime"] == DEFAULT_SESSION_LIFETIME
    back = cli.json("apps", "update", app_id, "--staging", "--nonce", "--no-allow-anonymous")
    assert (back["environment"], back["require_nonce"], back["allow_anonymous"]) == (
        "staging",
        True,
        False,
    )
    assert cli.json("apps", "show", app_id)["name"] == "Renamed"


def test_unknown_app_is_app_not_found(cli: Cli) -> None:
    for command in (["apps", "show"], ["apps", "update", "--name", "x"], ["keys", "list"]):
        _, error = cli.error(*command[:2], "no-such-app", *command[2:])
        assert error["id"] == "app_not_found"
        assert error["data"] == {"app_id": "no-such-app"}


def test_unknown_app_in_human_mode_prints_only_to_stderr(cli: Cli) -> None:
    result = cli("apps", "show", "no-such-app")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "No app with that id." in result.stderr
    assert "app_not_found" in result.stderr


def test_human_output_escapes_untrusted_text(cli: Cli) -> None:
    created = cli.json("apps", "create", "[bold red]pwned[/]\x1b[2J")
    for args in (["apps", "list"], ["apps", "show", created["app_id"]]):
        result = cli(*args)
        assert result.exit_code == 0, result.stderr
        assert "[bold red]pwned[/]" in result.stdout
        assert "\x1b" not in result.stdout


def test_human_create_shows_id_and_development_key(cli: Cli) -> None:
    result = cli("apps", "create", "Human")
    assert result.exit_code == 0, result.stderr
    app = cli.json("apps", "list")["apps"][0]
    key = cli.json("keys", "list", app["app_id"])["keys"][0]
    assert app["app_id"] in result.stdout
    assert key["kid"] in result.stdout


def test_json_stdout_is_exactly_one_object(cli: Cli, app_id: str) -> None:
    result = cli("apps", "show", app_id, "--json")
    decoder = json.JSONDecoder()
    value, end = decoder.raw_decode(result.stdout)
    assert isinstance(value, dict)
    assert result.stdout[end:].strip() == ""


def test_conversation_policy_and_agents_are_set_and_shown(cli: Cli) -> None:
    created = cli.json("apps", "create", "Support", "--conversation-policy", "existing_users")
    app_id = created["app_id"]
    assert created["conversation_policy"] == "existing_users"
    updated = cli.json(
        "apps", "update", app_id, "--conversation-policy", "anonymous_to_agents",
        "--agent", "helpdesk", "--agent", "bot",
    )  # fmt: skip
    assert updated["conversation_policy"] == "anonymous_to_agents"
    assert updated["agents"] == ["bot", "helpdesk"]
    assert cli.json("apps", "update", app_id, "--not-agent", "bot")["agents"] == ["helpdesk"]
    shown = cli.json("apps", "show", app_id)
    assert (shown["conversation_policy"], shown["agents"]) == ("anonymous_to_agents", ["helpdesk"])
    human = cli("apps", "show", app_id).stdout
    assert "anonymous_to_agents" in human
    assert "helpdesk" in human
    _, error = cli.error("apps", "update", app_id, "--conversation-policy", "closed")
    assert (error["id"], error["data"]) == ("invalid_request", {"property": "conversation_policy"})
