"""``/v1/platform/apps/{app_id}/jwks``: register, show and remove an app's JWKS URL."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from chinwag.server.api.deps import ServicesDep, client_address
from chinwag.server.api.openapi import errors
from chinwag.server.api.platform.auth import PlatformCaller, platform_caller, require_app_access
from chinwag.server.api.responses import JSON
from chinwag.server.handlers import jwks

__all__ = ["JwksKey", "JwksRejectedKey", "JwksSet", "JwksUrl", "router"]

router = APIRouter(prefix="/v1/platform/apps", tags=["platform: JWKS"])

Platform = Annotated[PlatformCaller, Depends(platform_caller)]
_EXAMPLE_URL = "https://auth.example.com/.well-known/jwks.json"


class JwksUrl(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"url": _EXAMPLE_URL}]}
    )

    url: str = Field(min_length=1, max_length=2048, description="An https:// URL serving a JWK Set")


class JwksKey(BaseModel):
    kid: str
    alg: str = Field(description="The algorithm this key is pinned to")


class JwksRejectedKey(BaseModel):
    kid: str | None
    reason: str = Field(description="Why chinwag will not verify with this key")


class JwksSet(BaseModel):
    """The registered URL and what this node holds of the set (per process)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "app_id": "4b7f1c1e-2f0a-4c53-9d3e-0a1b2c3d4e5f",
                    "url": _EXAMPLE_URL,
                    "keys": [{"kid": "2026-11", "alg": "ES256"}],
                    "rejected": [{"kid": "enc-1", "reason": "'use' must be 'sig' when present"}],
                    "fetched_at": 1795000000.0,
                    "expires_at": 1795000300.0,
                    "last_error": None,
                }
            ]
        },
    )

    app_id: str
    url: str
    keys: list[JwksKey]
    rejected: list[JwksRejectedKey]
    fetched_at: float | None = Field(description="When this node last fetched it")
    expires_at: float | None = Field(description="When this node fetches it again")
    last_error: str | None = Field(description="Why this node's last fetch failed, if it did")


@router.put("/{app_id}/jwks", response_model=JwksSet, responses=errors(400, 401, 404, 413, 422))
async def put_jwks(
    app_id: str, body: JwksUrl, request: Request, caller: Platform, services: ServicesDep
) -> JSON:
    """Register (or replace) the app's JWKS URL. The set is fetched now: an unusable URL or
    set is refused with the reason. Key rotation then needs no call to chinwag."""
    require_app_access(caller, app_id)
    status = await jwks.set_jwks_url(
        services, app_id, body.url, caller=caller, address=client_address(request)
    )
    return JSON(status.to_json())


@router.get("/{app_id}/jwks", response_model=JwksSet, responses=errors(401, 404))
async def get_jwks(app_id: str, caller: Platform, services: ServicesDep) -> JSON:
    """The registered URL and the keys this node currently trusts from it."""
    require_app_access(caller, app_id)
    return JSON((await jwks.jwks_status(services, app_id)).to_json())


@router.delete("/{app_id}/jwks", status_code=204, responses=errors(401, 404))
async def delete_jwks(
    app_id: str, request: Request, caller: Platform, services: ServicesDep
) -> Response:
    """Stop trusting the app's JWKS; uploaded keys are untouched."""
    require_app_access(caller, app_id)
    await jwks.remove_jwks_url(services, app_id, caller=caller, address=client_address(request))
    return Response(status_code=204)
