"""Keep credentials out of the logs the server does not write itself.

Browsers cannot set headers on a WebSocket, so the session token may ride in the query
string (``/v1/websocket?session_token=…``), and uvicorn writes every request line, query
included, to ``uvicorn.access`` (and a socket's to ``uvicorn.error``: ``"WebSocket …"
[accepted]``). A log file is read by more people, kept longer and copied further than a
database, so a token in it is a leaked session. :class:`RedactCredentials` rewrites such
values to ``[redacted]`` before any handler formats the record; the query parameter itself
stays supported.

At DEBUG, the WebSocket library logs each frame with its text (message bodies, session
data): those records are dropped.
"""

from __future__ import annotations

import logging
import re

__all__ = ["REDACTED", "RedactCredentials", "install_redaction", "redact"]

REDACTED = "[redacted]"
REDACTED_LOGGERS = ("uvicorn.access", "uvicorn.error", "websockets.server", "websockets")

_QUERY_SECRET = re.compile(
    r"\b(session_token|identity_token|access_token|api_key|token|nonce|secret)=[^&\s\"'#]*",
    re.IGNORECASE,
)
_SESSION_TOKEN = re.compile(r"\bcw[sk]_[A-Za-z0-9_.~-]+")
"""A session token (``cws_``) or a platform API key (``cwk_``)."""
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_FRAME_MESSAGES = frozenset({"< %s", "> %s"})
"""How the websockets library logs a frame (``logger.debug("< %s", frame)``)."""
_HEADER_MESSAGES = frozenset({"< %s: %s", "> %s: %s"})
"""How it logs a handshake header at DEBUG."""
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


def redact(text: str) -> str:
    """``text`` with query-string credentials, session tokens, API keys and JWTs replaced."""
    text = _QUERY_SECRET.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    text = _SESSION_TOKEN.sub(REDACTED, text)
    return _JWT.sub(REDACTED, text)


class RedactCredentials(logging.Filter):
    """Rewrites a record's message and string arguments; drops frame dumps."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg in _FRAME_MESSAGES:
            return False
        if record.msg in _HEADER_MESSAGES and isinstance(record.args, tuple):
            name = str(record.args[0]).lower() if record.args else ""
            if name in _SECRET_HEADERS:
                record.args = (record.args[0], REDACTED)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            args = record.args.items()
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in args}
        return True


def install_redaction(names: tuple[str, ...] = REDACTED_LOGGERS) -> None:
    """Add the filter to each logger once (idempotent: every app the process creates
    calls this). A logger's filter sees the records logged on it, which is how uvicorn
    logs, whatever handlers its log config installs later."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactCredentials) for f in logger.filters):
            logger.addFilter(RedactCredentials())
