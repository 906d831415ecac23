"""/v1/events: delta sync of the caller's event stream after a cursor; and the answer to a
plain HTTP request for the WebSocket's path."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Query

from chinwag.core.errors import ErrorId
from chinwag.server.api.deps import Caller, ServicesDep
from chinwag.server.api.models import EventPage
from chinwag.server.api.openapi import errors
from chinwag.server.api.responses import JSON, plain_error
from chinwag.server.handlers import events

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["event stream"])


@router.get("/events", response_model=EventPage, responses=errors(401, 422))
async def read_events(
    caller: Caller,
    services: ServicesDep,
    after: Annotated[int, Query(ge=0, le=2**53)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSON:
    """Events after ``after`` in cursor order, the stream ``head`` and ``has_more``."""
    page = await events.read_events(services, caller, after=after, limit=limit)
    items = [{"cursor": e.pos, "event": orjson.Fragment(e.event_json)} for e in page.events]
    return JSON({"events": items, "head": page.head, "has_more": page.has_more})


@router.get("/websocket", include_in_schema=False)
async def websocket_without_upgrade() -> JSON:
    """426 for a GET without ``Upgrade: websocket`` (a browser tab, curl, a proxy that drops
    the upgrade): a 404 "No such endpoint" said the path was wrong when the request was."""
    return plain_error(
        426,
        ErrorId.INVALID_REQUEST,
        "This is the WebSocket endpoint: connect with a WebSocket client (ws:// or wss://), "
        "which sends 'Upgrade: websocket'. Behind a proxy, check that it passes the upgrade.",
        headers={"Upgrade": "websocket", "Connection": "Upgrade"},
    )
