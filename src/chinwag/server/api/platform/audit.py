"""/v1/platform/audit: the log of platform and CLI actions (admin key only)."""

from __future__ import annotations

from fastapi import APIRouter, Query

from chinwag.server.api.deps import ServicesDep
from chinwag.server.api.platform.auth import Platform
from chinwag.server.api.platform.common import PREFIX, READ_ERRORS
from chinwag.server.api.platform.models import AuditPage, audit_view
from chinwag.server.api.responses import JSON
from chinwag.server.handlers import audit

__all__ = ["router"]

router = APIRouter(prefix=PREFIX, tags=["platform: audit"])


@router.get("/audit", response_model=AuditPage, responses=READ_ERRORS)
async def read_audit(
    caller: Platform,
    services: ServicesDep,
    app_id: str | None = Query(default=None, max_length=64),
    since: float | None = Query(
        default=None, allow_inf_nan=False, description="Only entries at or after"
    ),
    before: int | None = Query(
        default=None, ge=1, le=2**63 - 1, description="`next_before` of a page"
    ),
    limit: int = Query(default=100, ge=1, le=audit.MAX_PAGE),
) -> JSON:
    """Newest first. Entries name the caller (``cli`` or ``api_key:<id>``), the action,
    its target, the time and the client address; never a secret or a token."""
    entries = await audit.read(
        services, caller, app_id=app_id, since=since, before_id=before, limit=limit
    )
    next_before = entries[-1].id if len(entries) == limit else None
    return JSON({"entries": [audit_view(e) for e in entries], "next_before": next_before})
