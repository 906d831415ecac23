"""Webhook endpoints of an app: register, change, rotate secrets, see and replay deliveries.

The secret is shown once, when the endpoint is made or its secret rotated; listings show
neither it nor the previous one. A rotation keeps the previous secret for
:data:`ROTATION_OVERLAP` seconds, during which every delivery carries both signatures, so
the app can roll the new secret out to its receivers without dropping a delivery.
"""

from __future__ import annotations

import base64
from typing import Any

from chinwag.core.errors import NotFound
from chinwag.core.target_urls import url_problem
from chinwag.core.webhook_events import WebhookEventType
from chinwag.core.webhook_signing import new_secret
from chinwag.server.handlers import audit
from chinwag.server.handlers.apps import get_app
from chinwag.server.handlers.conversations import invalid
from chinwag.server.services import Services
from chinwag.server.storage import webhooks as store
from chinwag.server.storage.webhooks import DeliveryRow, EndpointRow

__all__ = [
    "ROTATION_OVERLAP",
    "check_url",
    "create_endpoint",
    "delete_endpoint",
    "delivery_json",
    "endpoint_json",
    "get_endpoint",
    "list_deliveries",
    "list_endpoints",
    "replay_delivery",
    "rotate_secret",
    "update_endpoint",
]

ROTATION_OVERLAP = 24 * 3600.0
MAX_ENDPOINTS = 20
"""Per app: each is a delivery row per event, on the send path."""


def check_url(services: Services, url: object) -> str:
    """The URL if deliveries may go there (``core.target_urls``), else 422 on ``url``.
    A host name passes here; what it resolves to is checked at each delivery."""
    problem = url_problem(url, allow_loopback=services.settings.dev_allow_http_loopback)
    if problem is not None:
        raise invalid("url", problem)
    assert isinstance(url, str)
    return url


def _check_types(types: list[str]) -> list[str]:
    known = {t.value for t in WebhookEventType}
    unknown = [t for t in types if t not in known]
    if not types or unknown:
        raise invalid("event_types", f"expected one or more of {', '.join(sorted(known))}")
    return sorted(set(types))


def endpoint_json(row: EndpointRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "app_id": row.app_id,
        "url": row.url,
        "description": row.description,
        "event_types": list(row.event_types),
        "enabled": row.enabled,
        "disabled_reason": row.disabled_reason,
        "previous_secret_expires_at": row.previous_secret_until,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def delivery_json(row: DeliveryRow) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "webhook_id": row.msg_id,
        "endpoint_id": row.endpoint_id,
        "event_type": row.event_type,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at if row.status == store.PENDING else None,
        "last_status": row.last_status,
        "last_error": row.last_error,
        "created_at": row.created_at,
        "delivered_at": row.delivered_at,
    }


def _target(app_id: str, endpoint_id: str) -> str:
    """The audit target: under ``apps/<app id>`` so the entry carries the app even when
    the caller (an admin key) names none, and ``?app_id=`` lists it."""
    return f"apps/{app_id}/webhooks/{endpoint_id}"


async def create_endpoint(
    services: Services, caller: Any, app_id: str, fields: dict[str, Any], address: str
) -> tuple[dict[str, Any], str]:
    """Register an endpoint; returns it and its secret (shown this once)."""
    await get_app(services, app_id)
    url = check_url(services, fields["url"])
    types = _check_types(fields["event_types"])
    now, secret = services.now(), new_secret(services.random)
    endpoint_id = "ep_" + base64.urlsafe_b64encode(services.random(15)).decode()
    values = {
        "id": endpoint_id, "app_id": app_id, "url": url, "description": fields["description"],
        "enabled": fields["enabled"], "secret": secret, "created_at": now, "updated_at": now,
    }  # fmt: skip
    async with services.db.transaction() as tx:
        if await store.count_endpoints_locked(tx.conn, app_id) >= MAX_ENDPOINTS:
            raise invalid("url", f"an app may have at most {MAX_ENDPOINTS} webhook endpoints")
        await store.insert_endpoint(tx.conn, values, types)
        await audit.record(tx, caller, "webhook.create", _target(app_id, endpoint_id), address)
        row = await store.get_endpoint(tx.conn, app_id, endpoint_id)
    assert row is not None
    return endpoint_json(row), secret


async def _require(services: Services, app_id: str, endpoint_id: str) -> EndpointRow:
    await get_app(services, app_id)
    async with services.db.read() as conn:
        row = await store.get_endpoint(conn, app_id, endpoint_id)
    if row is None:
        raise NotFound("No webhook endpoint with that id.", data={"endpoint_id": endpoint_id[:64]})
    return row


async def list_endpoints(services: Services, app_id: str) -> list[dict[str, Any]]:
    await get_app(services, app_id)
    async with services.db.read() as conn:
        return [endpoint_json(r) for r in await store.list_endpoints(conn, app_id)]


async def get_endpoint(services: Services, app_id: str, endpoint_id: str) -> dict[str, Any]:
    return endpoint_json(await _require(services, app_id, endpoint_id))


async def update_endpoint(
    services: Services,
    caller: Any,
    app_id: str,
    endpoint_id: str,
    changes: dict[str, Any],
    address: str,
) -> dict[str, Any]:
    """Change url, description, event types or enabled; enabling clears the reason it was
    disabled, and its pending deliveries resume."""
    row = await _require(services, app_id, endpoint_id)
    values: dict[str, Any] = {"updated_at": services.now()}
    if "url" in changes:
        values["url"] = check_url(services, changes["url"])
    if "description" in changes:
        values["description"] = changes["description"]
    if "enabled" in changes:
        values["enabled"] = changes["enabled"]
        if changes["enabled"]:
            values["disabled_reason"] = None
    types = _check_types(changes["event_types"]) if "event_types" in changes else None
    async with services.db.transaction() as tx:
        await store.update_endpoint(tx.conn, row, values, types)
        await audit.record(tx, caller, "webhook.update", _target(app_id, endpoint_id), address)
    return await get_endpoint(services, app_id, endpoint_id)


async def delete_endpoint(
    services: Services, caller: Any, app_id: str, endpoint_id: str, address: str
) -> None:
    await _require(services, app_id, endpoint_id)
    async with services.db.transaction() as tx:
        await store.delete_endpoint(tx.conn, endpoint_id)
        await audit.record(tx, caller, "webhook.delete", _target(app_id, endpoint_id), address)


async def rotate_secret(
    services: Services, caller: Any, app_id: str, endpoint_id: str, address: str
) -> tuple[dict[str, Any], str]:
    """A new secret; the old one keeps signing beside it for :data:`ROTATION_OVERLAP`."""
    row = await _require(services, app_id, endpoint_id)
    now, secret = services.now(), new_secret(services.random)
    values = {
        "secret": secret, "previous_secret": row.secret,
        "previous_secret_until": now + ROTATION_OVERLAP, "updated_at": now,
    }  # fmt: skip
    async with services.db.transaction() as tx:
        await store.update_endpoint(tx.conn, row, values, None)
        target = _target(app_id, endpoint_id)
        await audit.record(tx, caller, "webhook.rotate_secret", target, address)
    return await get_endpoint(services, app_id, endpoint_id), secret


async def list_deliveries(
    services: Services,
    app_id: str,
    endpoint_id: str,
    *,
    status: str | None,
    before: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    await _require(services, app_id, endpoint_id)
    async with services.db.read() as conn:
        rows = await store.list_deliveries(
            conn, endpoint_id, status=status, before=before, limit=limit
        )
    return [delivery_json(r) for r in rows]


async def replay_delivery(
    services: Services, caller: Any, app_id: str, endpoint_id: str, delivery_id: str, address: str
) -> dict[str, Any]:
    """Queue the delivery again now (same ``webhook-id``: it is the same event)."""
    await _require(services, app_id, endpoint_id)
    async with services.db.transaction() as tx:
        found = None
        if delivery_id.isdigit() and len(delivery_id) < 19:
            found = await store.get_delivery(tx.conn, endpoint_id, int(delivery_id))
        if found is None:
            raise NotFound("No delivery with that id.", data={"delivery_id": delivery_id[:64]})
        await store.replay(tx.conn, found.id, now=services.now())
        target = f"{_target(app_id, endpoint_id)}/deliveries/{found.id}"
        await audit.record(tx, caller, "webhook.replay", target, address)
        replayed = await store.get_delivery(tx.conn, endpoint_id, found.id)
    assert replayed is not None
    services.outbox_written()
    return delivery_json(replayed)
