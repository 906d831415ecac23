"""``chinwag keys jwks`` and ``chinwag apps update --jwks-url``: register, show, remove."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chinwag.core.keys import Alg, generate_key_pair
from chinwag.server.handlers import audit
from chinwag.server.handlers.api_keys import CLI_CALLER
from tests.cli.conftest import Cli
from tests.support import JwksEndpoint, jwk_for


@pytest.fixture
def endpoint() -> Iterator[JwksEndpoint]:
    with JwksEndpoint() as running:
        running.keys = [jwk_for(generate_key_pair(Alg.ES256), "cli-key")]
        yield running


@pytest.fixture
def insecure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHINWAG_ALLOW_INSECURE_JWKS", "true")


@pytest.mark.usefixtures("insecure")
def test_register_show_and_remove_a_jwks_url(cli: Cli, app_id: str, endpoint: JwksEndpoint) -> None:
    registered = cli.json("keys", "jwks", app_id, endpoint.url)
    assert registered["keys"] == [{"kid": "cli-key", "alg": "ES256"}]
    log = cli.services(lambda services: audit.read(services, CLI_CALLER))
    [entry] = [e for e in log if e.action == "app.jwks.set"]
    assert (entry.caller, entry.target, entry.app_id) == ("cli", f"apps/{app_id}/jwks", app_id)
    shown = cli.json("keys", "jwks", app_id)
    assert shown["url"] == endpoint.url
    assert cli.json("apps", "show", app_id)["jwks_url"] == endpoint.url
    assert cli.json("keys", "jwks", app_id, "--remove")["removed"] is True
    assert cli.json("keys", "jwks", app_id, "--remove")["removed"] is False
    log = cli.services(lambda services: audit.read(services, CLI_CALLER, app_id=app_id))
    assert [e.action for e in log if e.action.startswith("app.jwks.")] == [
        "app.jwks.remove",
        "app.jwks.set",
    ]
    _, error = cli.error("keys", "jwks", app_id)
    assert error["id"] == "not_found"
    assert cli.json("apps", "show", app_id)["jwks_url"] is None


@pytest.mark.usefixtures("insecure")
def test_apps_update_takes_a_jwks_url(cli: Cli, app_id: str, endpoint: JwksEndpoint) -> None:
    updated = cli.json("apps", "update", app_id, "--jwks-url", endpoint.url)
    assert updated["jwks"]["keys"] == [{"kid": "cli-key", "alg": "ES256"}]
    human = cli("keys", "jwks", app_id, endpoint.url)
    assert human.exit_code == 0
    assert "cli-key" in human.stdout


@pytest.mark.usefixtures("insecure")
def test_an_unusable_endpoint_is_refused_with_the_reason(
    cli: Cli, app_id: str, endpoint: JwksEndpoint
) -> None:
    endpoint.mode = "redirect"
    _, error = cli.error("keys", "jwks", app_id, endpoint.url)
    assert error["id"] == "invalid_request"
    assert "redirect" in error["message"]


def test_http_is_refused_without_the_development_flag(
    cli: Cli, app_id: str, endpoint: JwksEndpoint
) -> None:
    _, error = cli.error("keys", "jwks", app_id, endpoint.url)
    assert error["id"] == "invalid_request"
    assert "CHINWAG_ALLOW_INSECURE_JWKS" in error["message"]
    assert endpoint.hits == 0


def test_a_loopback_host_in_integer_form_is_refused(cli: Cli, app_id: str) -> None:
    _, error = cli.error("keys", "jwks", app_id, "https://2130706433/jwks")
    assert error["id"] == "invalid_request"
    assert "public address" in error["message"]
    assert error["data"]["property"] == "jwks_url"
