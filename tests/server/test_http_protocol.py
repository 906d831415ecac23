"""The uvicorn hooks GuardedHttpProtocol overrides still exist (a rename would silently
disable the request deadline or the upgrade cap; the behaviour is tested in
test_websocket_limits.py)."""

from __future__ import annotations

import inspect

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from chinwag.server.http_protocol import GuardedHttpProtocol, guarded_http_protocol
from chinwag.server.serving import uvicorn_config
from chinwag.server.settings import Settings


def test_the_overridden_hooks_are_uvicorns() -> None:
    overridden = {
        name
        for name, member in vars(GuardedHttpProtocol).items()
        if inspect.isfunction(member) and not name.startswith("_")
    }
    assert overridden == {
        "connection_made",
        "connection_lost",
        "on_message_begin",
        "on_message_complete",
        "handle_websocket_upgrade",
    }
    for name in overridden:
        assert inspect.isfunction(getattr(HttpToolsProtocol, name)), name


def test_uvicorn_config_carries_the_limits() -> None:
    settings = Settings(request_timeout=3, max_connections=50, max_message_bytes=1000)
    config = uvicorn_config(object(), settings, port=1)
    assert issubclass(config.http, GuardedHttpProtocol)  # type: ignore[arg-type]
    assert config.http.request_timeout == 3  # type: ignore[union-attr]
    assert config.limit_concurrency == 51
    assert config.ws_max_size == 2 * 1000 + 16 * 1024
    assert config.ws_per_message_deflate is False
    assert config.port == 1
    assert guarded_http_protocol(7).request_timeout == 7
