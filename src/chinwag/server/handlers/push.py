"""Push: an app's gateway, and the push tokens devices register for their sessions.

A token is bound to the session that registered it: ending the session (log-out,
revocation, expiry, suspension) deletes it, so a signed-out device is never woken. The
gateway's secret signs every post to it the Standard Webhooks way; it is shown once, when
the gateway is first configured or its secret rotated.
"""

from __future__ import annotations

import re
from typing import Any

from chinwag.core.errors import NotFound
from chinwag.core.webhook_signing import new_secret
from chinwag.server.handlers import audit
from chinwag.server.handlers.apps import get_app
from chinwag.server.handlers.auth import Authenticated, require_live_session
from chinwag.server.handlers.conversations import invalid
from chinwag.server.handlers.webhooks import ROTATION_OVERLAP, check_url
from chinwag.server.services import Services
from chinwag.server.storage import push as store
from chinwag.server.storage.push import GatewayRow

__all__ = [
    "delete_gateway",
    "forget_push_token",
    "gateway_json",
    "get_gateway",
    "put_gateway",
    "register_push_token",
    "rotate_gateway_secret",
]

_KIND = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")
MAX_TOKEN = 4096


def gateway_json(row: GatewayRow) -> dict[str, Any]:
    return {
        "app_id": row.app_id,
        "url": row.url,
        "include_body": row.include_body,
        "enabled": row.enabled,
        "disabled_reason": row.disabled_reason,
        "previous_secret_expires_at": row.previous_secret_until,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def _target(app_id: str) -> str:
    """The audit target: ``apps/<app id>/…``, not the bare id, so the entry carries the
    app even when the caller (an admin key) names none."""
    return f"apps/{app_id}/push-gateway"


async def get_gateway(services: Services, app_id: str) -> dict[str, Any]:
    await get_app(services, app_id)
    async with services.db.read() as conn:
        row = await store.get_gateway(conn, app_id)
    if row is None:
        raise NotFound("This app has no push gateway.")
    return gateway_json(row)


async def put_gateway(
    services: Services, caller: Any, app_id: str, fields: dict[str, Any], address: str
) -> tuple[dict[str, Any], str | None]:
    """Configure the gateway; returns it and, when it is new, its secret (shown once).
    Enabling clears the reason it was disabled."""
    await get_app(services, app_id)
    url = check_url(services, fields["url"])
    now = services.now()
    values: dict[str, Any] = {
        "url": url, "include_body": fields["include_body"], "enabled": fields["enabled"],
        "updated_at": now,
    }  # fmt: skip
    if fields["enabled"]:
        values["disabled_reason"] = None
    secret = None
    async with services.db.transaction() as tx:
        if await store.get_gateway(tx.conn, app_id) is None:
            secret = new_secret(services.random)
            values.update(secret=secret, created_at=now)
        await store.put_gateway(tx.conn, app_id, values)
        await audit.record(tx, caller, "push_gateway.put", _target(app_id), address)
    return await get_gateway(services, app_id), secret


async def rotate_gateway_secret(
    services: Services, caller: Any, app_id: str, address: str
) -> tuple[dict[str, Any], str]:
    current = await get_gateway(services, app_id)
    del current
    now, secret = services.now(), new_secret(services.random)
    async with services.db.transaction() as tx:
        row = await store.get_gateway(tx.conn, app_id)
        assert row is not None
        await store.put_gateway(
            tx.conn, app_id,
            {"secret": secret, "previous_secret": row.secret,
             "previous_secret_until": now + ROTATION_OVERLAP, "updated_at": now},
        )  # fmt: skip
        await audit.record(tx, caller, "push_gateway.rotate_secret", _target(app_id), address)
    return await get_gateway(services, app_id), secret


async def delete_gateway(services: Services, caller: Any, app_id: str, address: str) -> None:
    await get_app(services, app_id)
    async with services.db.transaction() as tx:
        if not await store.delete_gateway(tx.conn, app_id):
            raise NotFound("This app has no push gateway.")
        await audit.record(tx, caller, "push_gateway.delete", _target(app_id), address)


async def register_push_token(
    services: Services, caller: Authenticated, kind: str, token: str
) -> None:
    """Bind ``token`` to the caller's session (replacing any it had)."""
    if not _KIND.fullmatch(kind):
        raise invalid("kind", "expected 1 to 32 of a-z, 0-9, '_', '.', '-' (e.g. apns, fcm)")
    if not 1 <= len(token) <= MAX_TOKEN or not token.isprintable():
        raise invalid("token", f"expected 1 to {MAX_TOKEN} printable characters")
    async with services.db.transaction() as tx:
        now = services.now()
        await require_live_session(tx.conn, caller.session.id, now)
        await store.register_token(
            tx.conn, session_id=caller.session.id, app_id=caller.app_id,
            user_pk=caller.user.pk, kind=kind, token=token, now=now,
        )  # fmt: skip
        if services.hub.sockets_of_session(caller.session.id):
            lease = services.settings.push_online_lease
            await store.mark_online(tx.conn, [caller.session.id], until=now + lease)


async def forget_push_token(services: Services, caller: Authenticated) -> None:
    async with services.db.transaction() as tx:
        await store.forget_sessions(tx.conn, [caller.session.id])
