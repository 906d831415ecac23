"""The terminal's identity-token sources: a command, a URL, the server's sample provider."""

from __future__ import annotations

import sys

import pytest

from chinwag.client import ServerError, UsageError
from chinwag.tui.signin import command_provider, sample_provider
from tests.support import RunningServer, make_app


async def test_token_command_gets_user_and_nonce_as_arguments_without_a_shell() -> None:
    script = "import sys; print(sys.argv[1] + '/' + sys.argv[2])"
    provide = command_provider(f"{sys.executable} -c {script!r} {{user}} {{nonce}}", "a b;c")
    assert await provide("n-1", False) == "a b;c/n-1"  # one argument each, nothing interpreted


async def test_a_failing_token_command_is_an_error() -> None:
    provide = command_provider(f"{sys.executable} -c 'raise SystemExit(3)'", "alice")
    with pytest.raises(UsageError, match="exited with 3"):
        await provide("n", False)


async def test_the_sample_provider_refuses_production_apps(server: RunningServer) -> None:
    production = await make_app(server.services, production=True)
    provide = sample_provider(server.url, production.app_id, "alice")
    with pytest.raises(ServerError) as refused:
        await provide("any-nonce", False)
    assert refused.value.status == 403
