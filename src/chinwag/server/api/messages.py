"""Messages and receipts: send, page, delete, mark read/delivered."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from chinwag.server.api.deps import Caller, ServicesDep
from chinwag.server.api.models import Marks, Message, MessagePage
from chinwag.server.api.openapi import errors
from chinwag.server.api.responses import JSON
from chinwag.server.handlers import messages, receipts

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["messages"])

MAX_POSITION = 2**53
"""Far above any real position, and below every integer column's limit."""


class SendMessage(BaseModel):
    model_config = ConfigDict(
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "0f9d8b4e-3f7a-4c1e-9a51-6b2f1c7d9e10",
                    "parts": [{"mime_type": "text/plain", "body": "hi"}],
                }
            ]
        },
    )

    id: str
    parts: list[Any]


class ConversationReceipt(BaseModel):
    model_config = ConfigDict(
        strict=True, json_schema_extra={"examples": [{"type": "read", "position": 12}]}
    )

    type: str
    position: int


class MessageReceipt(BaseModel):
    model_config = ConfigDict(strict=True)

    type: str


_RESENT = {"description": "The same message sent again: the stored one", "model": Message}
_WRITE_ERRORS = (400, 401, 403, 404, 413, 422)


@router.post(
    "/conversations/{conversation_id}/messages",
    status_code=201,
    response_model=Message,
    responses={200: _RESENT, **errors(*_WRITE_ERRORS, 409)},
)
async def send_message(
    conversation_id: str, body: SendMessage, caller: Caller, services: ServicesDep
) -> JSON:
    """201 for a new message; 200 with the stored one when the same message is sent again."""
    found, created = await messages.send_message(
        services, caller, conversation_id, body.id, body.parts
    )
    return JSON(found, status_code=201 if created else 200)


@router.get(
    "/conversations/{conversation_id}/messages",
    response_model=MessagePage,
    responses=errors(401, 404, 422),
)
async def list_messages(
    conversation_id: str,
    caller: Caller,
    services: ServicesDep,
    after: Annotated[int | None, Query(ge=0, le=MAX_POSITION)] = None,
    before: Annotated[int | None, Query(ge=0, le=MAX_POSITION)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> JSON:
    """Ascending by position: after ``after``, or the newest below ``before`` (or overall)."""
    page = await messages.list_messages(
        services, caller, conversation_id, after=after, before=before, limit=limit
    )
    return JSON(page)


@router.delete("/messages/{message_id}", status_code=204, responses=errors(401, 403, 404, 422))
async def delete_message(
    message_id: str,
    caller: Caller,
    services: ServicesDep,
    mode: Annotated[str, Query(max_length=32)],
) -> Response:
    """Only the sender deletes for everyone (``mode=all_participants``)."""
    await messages.delete_message(services, caller, message_id, mode=mode)
    return Response(status_code=204)


@router.post(
    "/conversations/{conversation_id}/receipts",
    response_model=Marks,
    responses=errors(*_WRITE_ERRORS),
)
async def conversation_receipt(
    conversation_id: str, body: ConversationReceipt, caller: Caller, services: ServicesDep
) -> JSON:
    """Move the caller's read or delivered watermark up to ``position``."""
    marks = await receipts.mark_receipt(services, caller, conversation_id, body.type, body.position)
    return JSON(marks)


@router.post(
    "/messages/{message_id}/receipts", response_model=Marks, responses=errors(*_WRITE_ERRORS)
)
async def message_receipt(
    message_id: str, body: MessageReceipt, caller: Caller, services: ServicesDep
) -> JSON:
    """Move the caller's watermark up to this message."""
    marks = await receipts.mark_message_receipt(services, caller, message_id, body.type)
    return JSON(marks)
