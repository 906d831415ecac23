"""/v1/nonces, /v1/sessions, /v1/me and the development sample identity provider."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from chinwag.server.api.deps import (
    Caller,
    ServicesDep,
    SessionCaller,
    bearer_token,
    client_address,
    json_body,
    json_body_schema,
    services_of,
)
from chinwag.server.api.models import IdentityToken, Me, Nonce, Session
from chinwag.server.api.openapi import errors, optional_session
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


DeviceLabelField = Field(
    default=None,
    max_length=128,
    description="What this device calls itself (\"Alice's iPhone\"); shown in the app's "
    "session list (platform API).",
)


class SessionRequest(BaseModel):
    app_id: str = AppIdField
    identity_token: str = Field(min_length=1, max_length=65536)
    anonymous_data: Literal["keep", "discard"] = "keep"
    device_label: str | None = DeviceLabelField


class AnonymousSessionRequest(BaseModel):
    app_id: str = AppIdField
    device_label: str | None = DeviceLabelField


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


_SIGN_IN_ERRORS = (400, 404, 413, 422, 429)


@router.post(
    "/nonces",
    status_code=201,
    response_model=Nonce,
    responses=errors(*_SIGN_IN_ERRORS),
    openapi_extra=json_body_schema(NonceRequest),
)
async def create_nonce(request: Request) -> JSON:
    """A single-use nonce for the app, valid 10 minutes."""
    services = await _limited(request)
    body = await json_body(request, NonceRequest)
    nonce = await auth.issue_app_nonce(services, body.app_id)
    return JSON({"nonce": nonce.value, "expires_at": nonce.expires_at}, status_code=201)


@router.post(
    "/sessions",
    status_code=201,
    response_model=Session,
    responses=errors(*_SIGN_IN_ERRORS, 401, 403),
    openapi_extra={**json_body_schema(SessionRequest), **optional_session},
)
async def create_session(request: Request) -> JSON:
    """Exchange an identity token signed by the app's backend for a session; with an
    anonymous session's bearer token, also upgrade that anonymous user."""
    services = await _limited(request)
    body = await json_body(request, SessionRequest)
    found = await upgrade.anonymous_upgrade(
        services, bearer_token(request), body.app_id, body.anonymous_data
    )
    then = upgrade.upgrade_hook(services, found) if found else None
    device = auth.Device(address=client_address(request), label=body.device_label)
    new = await auth.create_session(services, body.app_id, body.identity_token, then, device)
    return JSON(_session_json(new), status_code=201)


@router.post(
    "/sessions/anonymous",
    status_code=201,
    response_model=Session,
    responses=errors(*_SIGN_IN_ERRORS, 403),
    openapi_extra=json_body_schema(AnonymousSessionRequest),
)
async def create_anonymous_session(request: Request) -> JSON:
    """A session for a new anonymous user, on an app that allows them."""
    services = await _limited(request)
    body = await json_body(request, AnonymousSessionRequest)
    device = auth.Device(address=client_address(request), label=body.device_label)
    new = await auth.create_anonymous_session(services, body.app_id, device)
    return JSON(_session_json(new), status_code=201)


@router.get("/me", response_model=Me, responses=errors(401))
async def me(caller: Caller) -> JSON:
    """The caller's session and user."""
    return JSON(
        {
            "app_id": caller.app_id,
            "session_id": caller.session.id,
            "session_expires_at": caller.session.expires_at,
            "user": user_json(caller.user),
        }
    )


@router.delete("/sessions/current", status_code=204, responses=errors(401))
async def delete_current_session(caller: SessionCaller, services: ServicesDep) -> Response:
    """Log out: the token is dead at once (never refused by the request limit)."""
    await auth.end_session(services, caller)
    return Response(status_code=204)


@router.post(
    "/dev/identity_tokens",
    status_code=201,
    tags=["development"],
    response_model=IdentityToken,
    responses=errors(*_SIGN_IN_ERRORS, 401, 403),
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
