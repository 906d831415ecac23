"""Keep session tokens out of uvicorn's logs.

Browsers cannot set headers on a WebSocket, so the web client sends its session token as
``/v1/websocket?session_token=…``, and uvicorn logs every WebSocket's path *with* its query
(``"WebSocket /v1/websocket?session_token=cws_…" [accepted]``) at INFO. A filter on
uvicorn's loggers rewrites the value to ``[redacted]`` before any handler sees it; the access
log gets the same filter in case a token is ever put in an HTTP query.
"""

from __future__ import annotations

import logging
import re

__all__ = ["TokenRedaction", "install_log_redaction"]

_TOKEN_IN_QUERY = re.compile(r"(session_token=)[^&\s\"']*")
_LOGGERS = ("uvicorn.error", "uvicorn.access")


def redact(text: str) -> str:
    return _TOKEN_IN_QUERY.sub(r"\1[redacted]", text)


class TokenRedaction(logging.Filter):
    """Rewrites ``session_token=…`` in a record's message and string arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def install_log_redaction() -> None:
    """Idempotent: each of uvicorn's loggers gets one :class:`TokenRedaction`."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, TokenRedaction) for f in logger.filters):
            logger.addFilter(TokenRedaction())
