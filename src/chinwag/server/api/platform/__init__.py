"""The platform API (``/v1/platform/...``): an app's own servers drive chinwag with API keys.

Each module is one resource; :func:`platform_router` gathers them for the app factory.
"""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["platform_router"]


def platform_router() -> APIRouter:
    from chinwag.server.api.platform import (
        apps,
        audit,
        blocks,
        jwks,
        keys,
        messages,
        push,
        reads,
        users,
        webhooks,
    )

    router = APIRouter()
    for module in (apps, keys, messages, reads, blocks, users, audit, jwks, webhooks, push):
        router.include_router(module.router)
    return router
