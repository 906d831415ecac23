"""/v1/platform/apps/{app_id}/users and …/sessions: identities, sessions, suspension.

A user id is the app's own string and may contain ``/``. ``GET`` and ``PATCH``
``…/users/{user_id}`` take the rest of the path as the id (``:path``); every route that
would need a suffix after the id takes it in the body or the query instead
(``POST …/users/suspend {"user_id"}``, ``GET …/sessions?user_id=``), so no id can be
mistaken for a route.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from chinwag.core.errors import InvalidRequest
from chinwag.server.api.deps import ServicesDep
from chinwag.server.api.platform.auth import Platform, require_app_access
from chinwag.server.api.platform.common import PREFIX, READ_ERRORS, WRITE_ERRORS, audited
from chinwag.server.api.platform.context import fanout_charge
from chinwag.server.api.platform.models import (
    EndedSessions,
    EndSessions,
    PlatformUser,
    SessionList,
    UserRef,
    UserUpdate,
    session_view,
    user_view,
)
from chinwag.server.api.responses import JSON
from chinwag.server.handlers import identities, sessions, suspension
from chinwag.server.services import Services

__all__ = ["router"]

router = APIRouter(prefix=f"{PREFIX}/apps/{{app_id}}", tags=["platform: users and sessions"])


@router.get("/sessions", response_model=SessionList, responses=READ_ERRORS)
async def list_sessions(
    app_id: str,
    caller: Platform,
    services: ServicesDep,
    user_id: str = Query(min_length=1, max_length=256),
) -> JSON:
    """A user's live sessions: device label, opened, last seen (to the minute), address."""
    require_app_access(caller, app_id)
    found = await sessions.list_user_sessions(services, app_id, user_id)
    return JSON({"user_id": user_id, "sessions": [session_view(s) for s in found]})


async def _end(services: Services, app_id: str, body: EndSessions) -> list[str]:
    chosen = [v for v in (body.session_id, body.user_id, body.issued_before) if v is not None]
    if len(chosen) != 1:
        raise InvalidRequest(
            "Give exactly one of session_id, user_id or issued_before.", status=422
        )
    if body.session_id is not None:
        return await sessions.end_one_session(services, app_id, body.session_id, wipe=body.wipe)
    if body.user_id is not None:
        return await sessions.revoke_user_sessions(services, app_id, body.user_id, wipe=body.wipe)
    return await sessions.end_app_sessions(
        services, app_id, issued_before=body.issued_before, wipe=body.wipe
    )


@router.post("/sessions/end", response_model=EndedSessions, responses=WRITE_ERRORS)
async def end_sessions(
    app_id: str, body: EndSessions, caller: Platform, services: ServicesDep, request: Request
) -> JSON:
    """End one session, all of a user's, or all of the app's opened before a time. The
    tokens are dead at once and the sockets close within a second, on every node; with
    ``wipe`` the devices also delete their local data (a stolen phone)."""
    require_app_access(caller, app_id)
    ended = await _end(services, app_id, body)
    selector = body.model_dump(exclude_none=True)
    await audited(
        request,
        caller,
        "sessions.end",
        f"apps/{app_id}/sessions",
        {**selector, "ended": len(ended)},
    )
    return JSON({"ended_session_ids": ended, "wipe": body.wipe})


async def _suspend(
    app_id: str, body: UserRef, suspended: bool, caller: Platform, request: Request
) -> JSON:
    require_app_access(caller, app_id)
    services: Services = request.app.state.services
    user, ended = await suspension.set_user_suspended(services, app_id, body.user_id, suspended)
    action = "user.suspend" if suspended else "user.unsuspend"
    target = f"apps/{app_id}/users/{body.user_id}"
    await audited(request, caller, action, target, {"ended_sessions": len(ended)})
    return JSON(user_view(user))


@router.post("/users/suspend", response_model=PlatformUser, responses=WRITE_ERRORS)
async def suspend_user(app_id: str, body: UserRef, caller: Platform, request: Request) -> JSON:
    """No new sessions for the user (403 ``user_suspended`` at sign-in, even with a valid
    identity token); their live sessions end and their sockets close."""
    return await _suspend(app_id, body, True, caller, request)


@router.post("/users/unsuspend", response_model=PlatformUser, responses=WRITE_ERRORS)
async def unsuspend_user(app_id: str, body: UserRef, caller: Platform, request: Request) -> JSON:
    """The user may sign in again."""
    return await _suspend(app_id, body, False, caller, request)


@router.get("/users/{user_id:path}", response_model=PlatformUser, responses=READ_ERRORS)
async def get_user(app_id: str, user_id: str, caller: Platform, services: ServicesDep) -> JSON:
    """A user of the app, with the private fields (email, names) and suspension."""
    require_app_access(caller, app_id)
    return JSON(user_view(await identities.get_identity(services, app_id, user_id)))


@router.patch("/users/{user_id:path}", response_model=PlatformUser, responses=WRITE_ERRORS)
async def update_user(
    app_id: str,
    user_id: str,
    body: UserUpdate,
    caller: Platform,
    services: ServicesDep,
    request: Request,
) -> JSON:
    """Set identity fields (only those in the body; ``null`` clears one). Devices of the
    user and of everyone sharing a conversation get ``identity.updated``."""
    require_app_access(caller, app_id)
    profile = body.model_dump(exclude_unset=True)
    charge = fanout_charge(services, caller)
    user = await identities.update_identity(services, app_id, user_id, profile, charge=charge)
    target = f"apps/{app_id}/users/{user_id}"
    await audited(request, caller, "user.update", target, {"fields": sorted(profile)})
    return JSON(user_view(user))
