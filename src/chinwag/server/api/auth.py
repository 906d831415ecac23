"""/v1/nonces, /v1/sessions, /v1/me and the development sample identity provider."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from chinwag.server.api.deps import (
    Caller,
    ServicesDep,
    bearer_token,
    client_address,
    json_body,
    json_body_schema,
    services_of,
)
from chinwag.server.api.responses import JSON
from chinwag.server.handlers import auth, upgrade
from chinwag.server.handlers.auth import NewSession, user_json
from chinwag.server.services import Services

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["identity and sessions"])

# The sign-in endpoints take the bare Request and validate their bodies themselves
# (``json_body``): they are the busiest unauthenticated endpoints, and FastAPI's dependency
# solving and body injection cost more than the rest of issuing a nonce. Same validation,
# same errors, same OpenAPI (``json_body_schema``).

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
        "issued_at": new.session.created_at,
        "server_time": new.session.created_at,
        "user": user_json(new.user),
    }


async def _limited(request: Request) -> Services:
    """The services, once this client's auth rate allows another request (else 429)."""
    services = services_of(request)
    await services.rate_limits.charge_address(client_address(request))
    return services


@router.post("/nonces", status_code=201, openapi_extra=json_body_schema(NonceRequest))
async def create_nonce(request: Request) -> JSON:
    """A single-use nonce for the app, valid 10 minutes."""
    services = await _limited(request)
    body = await json_body(request, NonceRequest)
    nonce = await auth.issue_app_nonce(services, body.app_id)
    return JSON({"nonce": nonce.value, "expires_at": nonce.expires_at}, status_code=201)


@router.post("/sessions", status_code=201, openapi_extra=json_body_schema(SessionRequest))
async def create_session(request: Request) -> JSON:
    """Exchange an identity token signed by the app's backend for a session; with an
    anonymous session's bearer token, also upgrade that anonymous user."""
    services = await _limited(request)
    body = await json_body(request, SessionRequest)
    found = await upgrade.anonymous_upgrade(
        services, bearer_token(request), body.app_id, body.anonymous_data
    )
    then = upgrade.upgrade_hook(services, found) if found else None
    new = await auth.create_session(services, body.app_id, body.identity_token, then)
    return JSON(_session_json(new), status_code=201)


@router.post(
    "/sessions/anonymous",
    status_code=201,
    openapi_extra=json_body_schema(AnonymousSessionRequest),
)
async def create_anonymous_session(request: Request) -> JSON:
    services = await _limited(request)
    body = await json_body(request, AnonymousSessionRequest)
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
    tags=["development"],
    openapi_extra=json_body_schema(SampleTokenRequest),
)
async def sample_identity_token(request: Request) -> JSON:
    """Development only: sign an identity token for any user of a *staging* app."""
    services = await _limited(request)
    body = await json_body(request, SampleTokenRequest)
    token = await auth.sample_identity_token(
        services, body.app_id, body.user_id, body.nonce, body.display_name
    )
    return JSON({"identity_token": token}, status_code=201)
