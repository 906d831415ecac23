"""/v1/nonces, /v1/sessions, /v1/me and the development sample identity provider."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from chinwag.server.api.deps import Caller, ServicesDep, bearer_token, rate_limit_auth
from chinwag.server.api.responses import JSON
from chinwag.server.handlers import auth, upgrade
from chinwag.server.handlers.auth import NewSession, user_json

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["identity and sessions"])

AppIdField = Field(min_length=1, max_length=64, description="The app's id")


class NonceRequest(BaseModel):
    app_id: str = AppIdField


class SessionRequest(BaseModel):
    app_id: str = AppIdField
    identity_token: str = Field(min_length=1, max_length=65536)
    anonymous_data: Literal["keep", "discard"] = "keep"


class AnonymousSessionRequest(BaseModel):
    app_id: str = AppIdField


class SampleTokenRequest(BaseModel):
    app_id: str = AppIdField
    user_id: str = Field(min_length=1, max_length=256)
    nonce: str = Field(min_length=1, max_length=256)
    display_name: str | None = Field(default=None, max_length=128)


def _session_json(new: NewSession) -> dict[str, object]:
    return {
        "session_token": new.token,
        "session_id": new.session.id,
        "expires_at": new.session.expires_at,
        "user": user_json(new.user),
    }


@router.post("/nonces", status_code=201, dependencies=[Depends(rate_limit_auth)])
async def create_nonce(body: NonceRequest, services: ServicesDep) -> JSON:
    """A single-use nonce for the app, valid 10 minutes."""
    nonce = await auth.issue_app_nonce(services, body.app_id)
    return JSON({"nonce": nonce.value, "expires_at": nonce.expires_at}, status_code=201)


@router.post("/sessions", status_code=201, dependencies=[Depends(rate_limit_auth)])
async def create_session(body: SessionRequest, request: Request, services: ServicesDep) -> JSON:
    """Exchange an identity token signed by the app's backend for a session; with an
    anonymous session's bearer token, also upgrade that anonymous user."""
    found = await upgrade.anonymous_upgrade(
        services, bearer_token(request), body.app_id, body.anonymous_data
    )
    then = upgrade.upgrade_hook(services, found) if found else None
    new = await auth.create_session(services, body.app_id, body.identity_token, then)
    return JSON(_session_json(new), status_code=201)


@router.post("/sessions/anonymous", status_code=201, dependencies=[Depends(rate_limit_auth)])
async def create_anonymous_session(body: AnonymousSessionRequest, services: ServicesDep) -> JSON:
    new = await auth.create_anonymous_session(services, body.app_id)
    return JSON(_session_json(new), status_code=201)


@router.get("/me")
async def me(caller: Caller) -> JSON:
    return JSON(
        {
            "app_id": caller.app_id,
            "session_id": caller.session.id,
            "session_expires_at": caller.session.expires_at,
            "user": user_json(caller.user),
        }
    )


@router.delete("/sessions/current", status_code=204)
async def delete_current_session(caller: Caller, services: ServicesDep) -> Response:
    await auth.end_session(services, caller)
    return Response(status_code=204)


@router.post(
    "/dev/identity_tokens",
    status_code=201,
    dependencies=[Depends(rate_limit_auth)],
    tags=["development"],
)
async def sample_identity_token(body: SampleTokenRequest, services: ServicesDep) -> JSON:
    """Development only: sign an identity token for any user of a *staging* app."""
    token = await auth.sample_identity_token(
        services, body.app_id, body.user_id, body.nonce, body.display_name
    )
    return JSON({"identity_token": token}, status_code=201)
