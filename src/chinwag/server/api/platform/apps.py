"""/v1/platform/apps: create, read and update apps, and suspend them.

The rules are ``handlers.apps``' — the same the ``chinwag apps`` commands use — so the CLI
and the HTTP API cannot disagree about what an app may be.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from chinwag.server.api.deps import ServicesDep
from chinwag.server.api.platform.auth import Platform, require_admin, require_app_access
from chinwag.server.api.platform.common import PREFIX, READ_ERRORS, WRITE_ERRORS, audited
from chinwag.server.api.platform.models import (
    App,
    AppCreate,
    AppList,
    AppUpdate,
    app_view,
    key_view,
)
from chinwag.server.api.responses import JSON
from chinwag.server.handlers import apps as handlers
from chinwag.server.handlers import suspension
from chinwag.server.handlers.apps import DEFAULT_MAX_TOKEN_AGE, DEFAULT_SESSION_LIFETIME

__all__ = ["router"]

router = APIRouter(prefix=f"{PREFIX}/apps", tags=["platform: apps"])


@router.post("", status_code=201, response_model=App, responses=WRITE_ERRORS)
async def create_app(
    body: AppCreate, caller: Platform, services: ServicesDep, request: Request
) -> JSON:
    """Create an app (admin key). A staging app comes with a development key, whose
    private key is in this answer."""
    require_admin(caller, "Creating an app")
    record, dev = await handlers.create_app(
        services,
        body.name,
        production=body.environment == "production",
        allow_anonymous=body.allow_anonymous,
        require_nonce=body.require_nonce,
        session_lifetime=DEFAULT_SESSION_LIFETIME
        if body.session_lifetime is None
        else body.session_lifetime,
        max_token_age=DEFAULT_MAX_TOKEN_AGE if body.max_token_age is None else body.max_token_age,
        conversation_policy=body.conversation_policy,
    )
    view = app_view(record)
    if dev is not None:
        view["development_key"] = {**key_view(dev.record), "private_key_pem": dev.private_key_pem}
    await audited(request, caller, "app.create", f"apps/{record.id}", {"name": record.name})
    return JSON(view, status_code=201)


@router.get("", response_model=AppList, responses=READ_ERRORS)
async def list_apps(caller: Platform, services: ServicesDep) -> JSON:
    """Every app for an admin key; an app key sees only its own."""
    apps = await handlers.list_apps(services)
    return JSON({"apps": [app_view(a) for a in apps if caller.is_admin or a.id == caller.app_id]})


@router.get("/{app_id}", response_model=App, responses=READ_ERRORS)
async def get_app(app_id: str, caller: Platform, services: ServicesDep) -> JSON:
    require_app_access(caller, app_id)
    return JSON(app_view(await handlers.get_app(services, app_id)))


@router.patch("/{app_id}", response_model=App, responses=WRITE_ERRORS)
async def update_app(
    app_id: str, body: AppUpdate, caller: Platform, services: ServicesDep, request: Request
) -> JSON:
    """Change name, environment, policy or lifetimes (``session_lifetime`` applies to
    sessions opened from now on); add or remove agents."""
    require_app_access(caller, app_id)
    changes = body.model_dump(exclude={"agents_add", "agents_remove"}, exclude_none=True)
    record = await handlers.update_app(services, app_id, **changes)
    if body.agents_add or body.agents_remove:
        await handlers.set_agents(services, app_id, add=body.agents_add, remove=body.agents_remove)
        changes["agents"] = {"add": body.agents_add, "remove": body.agents_remove}
    await audited(request, caller, "app.update", f"apps/{app_id}", changes)
    return JSON(app_view(record))


async def _suspend(
    app_id: str, suspended: bool, caller: Platform, services: ServicesDep, request: Request
) -> JSON:
    require_admin(caller, "Suspending an app")
    record, ended = await suspension.set_app_suspended(services, app_id, suspended)
    action = "app.suspend" if suspended else "app.unsuspend"
    await audited(request, caller, action, f"apps/{app_id}", {"ended_sessions": len(ended)})
    return JSON(app_view(record))


@router.post("/{app_id}/suspend", response_model=App, responses=WRITE_ERRORS)
async def suspend_app(
    app_id: str, caller: Platform, services: ServicesDep, request: Request
) -> JSON:
    """Admin key: refuse the app's sign-ins (403 ``app_suspended``) and end its sessions."""
    return await _suspend(app_id, True, caller, services, request)


@router.post("/{app_id}/unsuspend", response_model=App, responses=WRITE_ERRORS)
async def unsuspend_app(
    app_id: str, caller: Platform, services: ServicesDep, request: Request
) -> JSON:
    """Admin key: let the app's users sign in again (ended sessions stay ended)."""
    return await _suspend(app_id, False, caller, services, request)
