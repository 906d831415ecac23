"""/v1/push_tokens: a device's push token, bound to its session."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from chinwag.server.api.deps import Caller, ServicesDep
from chinwag.server.api.openapi import errors
from chinwag.server.api.platform.webhook_models import PushTokenIn
from chinwag.server.handlers import push

__all__ = ["router"]

router = APIRouter(prefix="/v1/push_tokens", tags=["push"])


@router.post("", status_code=204, responses=errors(401, 413, 422))
async def register_push_token(body: PushTokenIn, caller: Caller, services: ServicesDep) -> Response:
    """Wake this device through the app's push gateway while it has no socket. Replaces the
    session's previous token; ending the session forgets it."""
    await push.register_push_token(services, caller, body.kind, body.token)
    return Response(status_code=204)


@router.delete("", status_code=204, responses=errors(401))
async def forget_push_token(caller: Caller, services: ServicesDep) -> Response:
    await push.forget_push_token(services, caller)
    return Response(status_code=204)
