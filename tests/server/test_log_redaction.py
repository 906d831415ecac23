"""The redaction filter on its own: what it rewrites, what it drops, what it leaves."""

from __future__ import annotations

import logging

from chinwag.server.log_redaction import REDACTED, RedactCredentials, install_redaction, redact


def _record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, msg, args, None)


def test_query_credentials_are_redacted_and_the_rest_kept() -> None:
    line = "/v1/websocket?after=3&session_token=cws_abc.def&x=1"
    assert redact(line) == f"/v1/websocket?after=3&session_token={REDACTED}&x=1"
    assert redact("/v1/users/team%2Fcarol") == "/v1/users/team%2Fcarol"


def test_bare_session_tokens_and_jwts_are_redacted() -> None:
    assert redact("Bearer cws_abc.def") == f"Bearer {REDACTED}"
    assert redact("token eyJhbGciOi.eyJzdWIi.c2ln end") == f"token {REDACTED} end"


def test_platform_api_keys_are_redacted() -> None:
    key = "cwk_abcdefgh_" + "x" * 43
    assert redact(f"Bearer {key} rest") == f"Bearer {REDACTED} rest"
    assert redact(f"/v1/platform/apps?api_key={key}") == f"/v1/platform/apps?api_key={REDACTED}"


def test_the_filter_rewrites_arguments_and_drops_frames() -> None:
    keep = _record('%s - "%s %s"', "127.0.0.1", "GET", "/x?session_token=cws_a.b")
    assert RedactCredentials().filter(keep)
    assert keep.getMessage() == f'127.0.0.1 - "GET /x?session_token={REDACTED}"'
    header = _record("< %s: %s", "Authorization", "Basic dXNlcjpwYXNz")
    assert RedactCredentials().filter(header)
    assert header.getMessage() == f"< Authorization: {REDACTED}"
    assert not RedactCredentials().filter(_record("< %s", "TEXT 'a message body' [14 bytes]"))


def test_installing_twice_adds_one_filter() -> None:
    install_redaction(("chinwag.test.redaction",))
    install_redaction(("chinwag.test.redaction",))
    filters = logging.getLogger("chinwag.test.redaction").filters
    assert sum(isinstance(f, RedactCredentials) for f in filters) == 1
