"""``chinwag api-keys`` and the audit entries CLI actions leave (caller ``cli``)."""

from __future__ import annotations

from chinwag.server.handlers import audit
from chinwag.server.handlers.api_keys import CLI_CALLER, authenticate_api_key
from chinwag.server.services import Services
from chinwag.server.storage.audit import AuditEntry
from tests.cli.conftest import Cli


def _log(cli: Cli) -> list[AuditEntry]:
    async def read(services: Services) -> list[AuditEntry]:
        return await audit.read(services, CLI_CALLER)

    return cli.services(read)


def test_create_prints_the_key_once_and_it_authenticates(cli: Cli, app_id: str) -> None:
    made = cli.json("api-keys", "create", "--role", "app", "--app", app_id, "--label", "backend")
    assert made["api_key"].startswith(f"cwk_{made['key_id']}_")
    assert made["role"] == "app"
    assert made["app_id"] == app_id
    caller = cli.services(lambda services: authenticate_api_key(services, made["api_key"]))
    assert (caller.key_id, caller.role, caller.app_id) == (made["key_id"], "app", app_id)
    listed = cli.json("api-keys", "list")["api_keys"]
    assert [k["key_id"] for k in listed] == [made["key_id"]]
    assert made["api_key"] not in str(listed)
    assert listed[0]["last_used_at"] is not None


def test_list_and_revoke(cli: Cli) -> None:
    made = cli.json("api-keys", "create", "--role", "admin")
    human = cli("api-keys", "list")
    assert made["key_id"] in human.stdout
    assert "never" in human.stdout
    revoked = cli.json("api-keys", "revoke", made["key_id"])
    assert revoked["revoked_at"] is not None
    _, error = cli.error("api-keys", "revoke", made["key_id"])
    assert error["id"] == "not_found"


def test_an_app_keys_revocation_is_in_its_apps_log(cli: Cli, app_id: str) -> None:
    made = cli.json("api-keys", "create", "--role", "app", "--app", app_id)
    cli.json("api-keys", "revoke", made["key_id"])
    [revoked, created] = [e for e in _log(cli) if e.action.startswith("api_key.")]
    assert (revoked.action, revoked.app_id) == ("api_key.revoke", app_id)
    assert revoked.target == created.target == f"apps/{app_id}/api_keys/{made['key_id']}"


def test_bad_role_and_app_combinations_are_clear_errors(cli: Cli, app_id: str) -> None:
    assert cli.error("api-keys", "create", "--role", "root")[1]["id"] == "invalid_request"
    assert cli.error("api-keys", "create", "--role", "app")[1]["id"] == "invalid_request"
    both = cli.error("api-keys", "create", "--role", "admin", "--app", app_id)[1]
    assert both["id"] == "invalid_request"
    missing = "00000000-0000-4000-8000-000000000000"
    assert cli.error("api-keys", "create", "--role", "app", "--app", missing)[1]["id"] == (
        "app_not_found"
    )


def test_cli_actions_are_audited_as_cli_without_secrets(cli: Cli, app_id: str) -> None:
    secret = cli.json("keys", "add-secret", app_id)
    cli.json("keys", "show-secret", app_id, secret["kid"])
    pair = cli.json("keys", "generate", app_id)
    cli.json("keys", "disable", app_id, pair["kid"])
    cli.json("keys", "delete", app_id, pair["kid"])
    cli.json("apps", "update", app_id, "--session-lifetime", "600")
    key = cli.json("api-keys", "create", "--role", "admin")
    entries = _log(cli)
    assert [e.action for e in entries] == [
        "api_key.create",
        "app.update",
        "key.delete",
        "key.disable",
        "key.generate.key_pair",
        "key.secret_read",
        "key.generate.hmac_secret",
        "app.create",
    ]
    assert {e.caller for e in entries} == {"cli"}
    assert {e.address for e in entries} == {"local"}
    assert {e.app_id for e in entries[1:]} == {app_id}
    assert entries[2].target == f"apps/{app_id}/keys/{pair['kid']}"
    text = str(entries)
    assert secret["secret"] not in text
    assert pair["private_key_pem"] not in text
    assert key["api_key"] not in text
