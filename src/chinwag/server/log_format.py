"""Logging configuration for ``chinwag serve``: text for people, JSON lines for shippers.

``CHINWAG_LOG_FORMAT=json`` writes one JSON object per line on stdout, for every logger
(chinwag's, uvicorn's, the libraries'): ``time`` (ISO 8601, UTC), ``level``, ``logger``,
``message``, and for uvicorn's access lines the request's fields (``client``, ``method``,
``path``, ``status``, ``http_version``); an exception adds ``exception`` (its traceback).
A line is never split, whatever the message holds, so a shipper can parse each one.

Redaction still applies: the loggers that can carry credentials keep their
:class:`~chinwag.server.log_redaction.RedactCredentials` filter (it runs before any
handler), and the formatter redacts the finished message and traceback once more, so a
token logged by some other logger is caught too.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

from chinwag.server.log_redaction import redact

__all__ = ["JsonFormatter", "json_logging_config"]

_ACCESS_FIELDS = ("client", "method", "path", "http_version", "status")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            line.update(zip(_ACCESS_FIELDS, args, strict=True))
            line["path"] = redact(str(line["path"]))
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(line, default=str).decode()


def json_logging_config(level: str) -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` for the whole process (uvicorn's ``log_config``):
    JSON lines on stdout for every logger, at ``level``. (Text logs keep uvicorn's own
    configuration.)"""
    formatter: dict[str, Any] = {"()": JsonFormatter}
    handler = {"class": "logging.StreamHandler", "formatter": "line", "stream": "ext://sys.stdout"}
    quiet = {"level": "WARNING"}
    uvicorn = {"handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"line": formatter},
        "handlers": {"line": handler},
        "root": {"handlers": ["line"], "level": level.upper()},
        "loggers": {
            "uvicorn": uvicorn,
            "uvicorn.error": uvicorn,
            "uvicorn.access": uvicorn,
            "alembic": quiet,  # a line per migration; the database logs one summary line
        },
    }
