"""JSON rendering with orjson, and the error envelope every failure uses."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from chinwag.core.errors import ChinwagError, ErrorId

__all__ = ["JSON", "error_response"]


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(error: ChinwagError, headers: dict[str, str] | None = None) -> JSON:
    return JSON(error.to_json(), status_code=error.status, headers=headers)


def plain_error(
    status: int,
    error_id: ErrorId,
    message: str,
    data: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSON:
    return JSON(
        {"error": {"id": str(error_id), "message": message, "data": data or {}}},
        status_code=status,
        headers=headers,
    )
