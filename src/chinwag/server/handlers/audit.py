"""The audit log of platform and CLI actions: who, what, which thing, when, from where.

``target`` names the thing acted on as a path (``apps/<app id>/keys/<kid>``); when it
starts with ``apps/<id>`` that app is recorded too, so the log can be read per app. ``data``
carries the action's non-secret details; any field whose name says it holds a secret or
token is dropped before it is written, so a careless caller still cannot leak one here.
"""

from __future__ import annotations

from typing import Any

from chinwag.clock import SystemClock
from chinwag.core.errors import Forbidden
from chinwag.core.ids import is_valid_uuid
from chinwag.server.handlers.api_keys import PlatformCaller
from chinwag.server.services import Services
from chinwag.server.storage import audit as store
from chinwag.server.storage.audit import AuditEntry
from chinwag.server.storage.database import Transaction

__all__ = ["MAX_PAGE", "app_of", "append", "read", "record"]

MAX_PAGE = 200
_SECRET_WORDS = ("secret", "token", "private", "password", "key_pem", "signature")


def app_of(target: str) -> str | None:
    """The app a target path belongs to, if it names one."""
    parts = target.split("/", 2)
    if len(parts) >= 2 and parts[0] == "apps" and is_valid_uuid(parts[1]):
        return parts[1]
    return None


def _scrub(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if not any(w in k.lower() for w in _SECRET_WORDS)}


async def record(
    tx: Transaction,
    caller: PlatformCaller,
    action: str,
    target: str,
    address: str | None,
    *,
    now: float | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Write one entry inside ``tx`` (so it commits or rolls back with the action).

    ``now`` is the handler's clock reading; without one the system clock is read.
    """
    await store.insert_entry(
        tx.conn,
        at=SystemClock().now() if now is None else now,
        caller=caller.audit_name,
        action=action,
        app_id=app_of(target) or caller.app_id,
        target=target,
        address=address,
        data=_scrub(data or {}),
    )


async def append(
    services: Services,
    caller: PlatformCaller,
    action: str,
    target: str,
    address: str | None,
    data: dict[str, Any] | None = None,
) -> None:
    """:func:`record` in a transaction of its own, for an action whose handler committed
    its own (an entry is then written only for an action that succeeded)."""
    async with services.db.transaction() as tx:
        await record(tx, caller, action, target, address, now=services.now(), data=data)


async def read(
    services: Services,
    caller: PlatformCaller,
    *,
    app_id: str | None = None,
    since: float | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Newest first; admin keys only (the log spans apps and names API keys)."""
    if not caller.is_admin:
        raise Forbidden("Reading the audit log needs an admin API key.")
    async with services.db.read() as conn:
        return await store.list_entries(
            conn,
            app_id=app_id,
            since=since,
            before_id=before_id,
            limit=max(1, min(limit, MAX_PAGE)),
        )
