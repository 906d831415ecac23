"""/v1/platform/apps/{app_id}/push-gateway: where chinwag sends wake-ups for offline devices."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from chinwag.server.api.deps import ServicesDep, client_address
from chinwag.server.api.openapi import errors
from chinwag.server.api.platform.auth import PlatformCaller, platform_caller, require_app_access
from chinwag.server.api.platform.webhook_models import NewPushGateway, PushGateway, PushGatewayIn
from chinwag.server.api.responses import JSON
from chinwag.server.handlers import push

__all__ = ["router"]

router = APIRouter(prefix="/v1/platform/apps/{app_id}/push-gateway", tags=["platform: push"])

Platform = Annotated[PlatformCaller, Depends(platform_caller)]


@router.put("", response_model=NewPushGateway, responses=errors(401, 404, 413, 422))
async def put_gateway(
    app_id: str, body: PushGatewayIn, caller: Platform, services: ServicesDep, request: Request
) -> JSON:
    """Configure the gateway; the first time, the answer holds its `whsec_` secret."""
    require_app_access(caller, app_id)
    found, secret = await push.put_gateway(
        services, caller, app_id, body.model_dump(), client_address(request)
    )
    return JSON({**found, "secret": secret})


@router.get("", response_model=PushGateway, responses=errors(401, 404))
async def get_gateway(app_id: str, caller: Platform, services: ServicesDep) -> JSON:
    require_app_access(caller, app_id)
    return JSON(await push.get_gateway(services, app_id))


@router.post("/rotate-secret", response_model=NewPushGateway, responses=errors(401, 404))
async def rotate_secret(
    app_id: str, caller: Platform, services: ServicesDep, request: Request
) -> JSON:
    """A new secret; for 24 h posts carry a signature with each."""
    require_app_access(caller, app_id)
    found, secret = await push.rotate_gateway_secret(
        services, caller, app_id, client_address(request)
    )
    return JSON({**found, "secret": secret})


@router.delete("", status_code=204, responses=errors(401, 404))
async def delete_gateway(
    app_id: str, caller: Platform, services: ServicesDep, request: Request
) -> Response:
    require_app_access(caller, app_id)
    await push.delete_gateway(services, caller, app_id, client_address(request))
    return Response(status_code=204)
