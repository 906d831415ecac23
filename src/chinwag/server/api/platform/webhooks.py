"""/v1/platform/apps/{app_id}/webhooks: an app's webhook endpoints and their deliveries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from chinwag.server.api.deps import ServicesDep, client_address
from chinwag.server.api.openapi import errors
from chinwag.server.api.platform.auth import PlatformCaller, platform_caller, require_app_access
from chinwag.server.api.platform.webhook_models import (
    Delivery,
    DeliveryPage,
    Webhook,
    WebhookIn,
    WebhookList,
    WebhookPatch,
    WebhookWithSecret,
)
from chinwag.server.api.responses import JSON
from chinwag.server.handlers import webhooks

__all__ = ["router"]

router = APIRouter(prefix="/v1/platform/apps/{app_id}/webhooks", tags=["platform: webhooks"])

Platform = Annotated[PlatformCaller, Depends(platform_caller)]


@router.post(
    "", status_code=201, response_model=WebhookWithSecret, responses=errors(401, 404, 413, 422)
)
async def create_webhook(
    app_id: str, body: WebhookIn, caller: Platform, services: ServicesDep, request: Request
) -> JSON:
    """Register an endpoint for event types; the answer holds its `whsec_` secret, once."""
    require_app_access(caller, app_id)
    found, secret = await webhooks.create_endpoint(
        services, caller, app_id, body.model_dump(), client_address(request)
    )
    return JSON({**found, "secret": secret}, status_code=201)


@router.get("", response_model=WebhookList, responses=errors(401, 404))
async def list_webhooks(app_id: str, caller: Platform, services: ServicesDep) -> JSON:
    require_app_access(caller, app_id)
    return JSON({"webhooks": await webhooks.list_endpoints(services, app_id)})


@router.get("/{endpoint_id}", response_model=Webhook, responses=errors(401, 404))
async def get_webhook(
    app_id: str, endpoint_id: str, caller: Platform, services: ServicesDep
) -> JSON:
    """The endpoint, with ``disabled_reason`` when chinwag gave up on it."""
    require_app_access(caller, app_id)
    return JSON(await webhooks.get_endpoint(services, app_id, endpoint_id))


@router.patch("/{endpoint_id}", response_model=Webhook, responses=errors(401, 404, 413, 422))
async def patch_webhook(
    app_id: str,
    endpoint_id: str,
    body: WebhookPatch,
    caller: Platform,
    services: ServicesDep,
    request: Request,
) -> JSON:
    """Change url, event types, description, or enable it again (pending deliveries resume)."""
    require_app_access(caller, app_id)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    found = await webhooks.update_endpoint(
        services, caller, app_id, endpoint_id, changes, client_address(request)
    )
    return JSON(found)


@router.delete("/{endpoint_id}", status_code=204, responses=errors(401, 404))
async def delete_webhook(
    app_id: str, endpoint_id: str, caller: Platform, services: ServicesDep, request: Request
) -> Response:
    require_app_access(caller, app_id)
    await webhooks.delete_endpoint(services, caller, app_id, endpoint_id, client_address(request))
    return Response(status_code=204)


@router.post(
    "/{endpoint_id}/rotate-secret", response_model=WebhookWithSecret, responses=errors(401, 404)
)
async def rotate_secret(
    app_id: str, endpoint_id: str, caller: Platform, services: ServicesDep, request: Request
) -> JSON:
    """A new secret; for 24 h deliveries carry a signature with each (two `v1,` entries)."""
    require_app_access(caller, app_id)
    found, secret = await webhooks.rotate_secret(
        services, caller, app_id, endpoint_id, client_address(request)
    )
    return JSON({**found, "secret": secret})


@router.get(
    "/{endpoint_id}/deliveries", response_model=DeliveryPage, responses=errors(401, 404, 422)
)
async def list_deliveries(
    app_id: str,
    endpoint_id: str,
    caller: Platform,
    services: ServicesDep,
    status: Annotated[str | None, Query(pattern="^(pending|delivered|failed)$")] = None,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> JSON:
    """Newest first, with status, attempts and the last error."""
    require_app_access(caller, app_id)
    found = await webhooks.list_deliveries(
        services, app_id, endpoint_id, status=status, before=before, limit=limit
    )
    next_before = found[-1]["id"] if len(found) == limit else None
    return JSON({"deliveries": found, "next_before": next_before})


@router.post(
    "/{endpoint_id}/deliveries/{delivery_id}/replay",
    status_code=202,
    response_model=Delivery,
    responses=errors(401, 404),
)
async def replay_delivery(
    app_id: str,
    endpoint_id: str,
    delivery_id: str,
    caller: Platform,
    services: ServicesDep,
    request: Request,
) -> JSON:
    """Send a delivery again (same `webhook-id`), whatever its status."""
    require_app_access(caller, app_id)
    found = await webhooks.replay_delivery(
        services, caller, app_id, endpoint_id, delivery_id, client_address(request)
    )
    return JSON(found, status_code=202)
