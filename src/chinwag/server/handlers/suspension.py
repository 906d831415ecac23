"""Suspending a user or a whole app: no new sessions, and the live ones end at once.

A suspended user's identity token is still valid (their app's backend signed it); it is
refused at sign-in with 403 ``user_suspended`` all the same. A suspended app refuses every
sign-in with 403 ``app_suspended``. Suspension ends the live sessions through
``end_sessions`` (reason ``user_suspended`` / ``app_suspended``), so their sockets close on
every node; a request that still carries one of those sessions is answered with the 403,
not a bare 401, while the suspension lasts, so the device stops retrying sign-in.
"""

from __future__ import annotations

from chinwag.core.errors import AppSuspended, NotFound, UserSuspended
from chinwag.core.ids import user_id_problem
from chinwag.core.webhook_events import WebhookEventType
from chinwag.server.handlers.apps import get_app
from chinwag.server.handlers.sessions import end_app_sessions, end_sessions
from chinwag.server.services import Services
from chinwag.server.storage import apps as app_store
from chinwag.server.storage import sessions as session_store
from chinwag.server.storage import users as user_store
from chinwag.server.storage import webhook_outbox as webhook_store
from chinwag.server.storage.database import Transaction
from chinwag.server.storage.outbox import webhook_body
from chinwag.server.storage.records import AppRecord, SessionRecord, UserRecord

__all__ = [
    "APP_SUSPENDED",
    "USER_SUSPENDED",
    "refuse_if_suspended",
    "set_app_suspended",
    "set_user_suspended",
]

USER_SUSPENDED = "user_suspended"
APP_SUSPENDED = "app_suspended"


async def set_user_suspended(
    services: Services, app_id: str, user_id: str, suspended: bool
) -> tuple[UserRecord, list[str]]:
    """Suspend (ending the user's live sessions) or unsuspend; the user and ended ids."""
    await get_app(services, app_id)
    now = services.now()
    async with services.db.transaction() as tx:
        user = None
        if user_id_problem(user_id) is None:
            user = await user_store.get_user(tx.conn, app_id, user_id)
        if user is None:
            raise NotFound("No user with that id in this app.", data={"user_id": user_id[:256]})
        await user_store.update_user(tx.conn, user.pk, {"suspended_at": now if suspended else None})
        ended: list[str] = []
        if suspended:
            live = await session_store.user_session_ids(tx.conn, user.pk, now=now)
            ended = await end_sessions(
                services,
                tx,
                app_id=app_id,
                user_pk=user.pk,
                session_ids=live,
                reason=USER_SUSPENDED,
            )
            await _announce_suspension(tx, app_id, user.user_id, ended, now)
        refreshed = await user_store.get_user_by_pk(tx.conn, user.pk)
    assert refreshed is not None
    return refreshed, ended


async def _announce_suspension(
    tx: Transaction, app_id: str, user_id: str, ended: list[str], now: float
) -> None:
    """``user.suspended`` for the app's webhooks, in the suspension's own transaction. It is
    no stream event (the user's devices learn of it as their sessions' ``session.revoked``),
    so it goes straight to the webhook outbox."""
    event_type = WebhookEventType.USER_SUSPENDED
    data = {"user_id": user_id, "ended_session_ids": ended}
    await webhook_store.enqueue(
        tx.conn,
        app_id=app_id,
        event_type=event_type,
        payload=webhook_body(event_type, app_id, data, now),
        now=now,
    )


async def set_app_suspended(
    services: Services, app_id: str, suspended: bool
) -> tuple[AppRecord, list[str]]:
    """Suspend (ending all the app's sessions) or unsuspend; the app and ended ids."""
    await get_app(services, app_id)
    async with services.db.transaction() as tx:
        changes = {"suspended_at": services.now() if suspended else None}
        await app_store.update_app(tx.conn, app_id, changes)
    ended = await end_app_sessions(services, app_id, reason=APP_SUSPENDED) if suspended else []
    return await get_app(services, app_id), ended


async def refuse_if_suspended(services: Services, session: SessionRecord, user: UserRecord) -> None:
    """For a session that has ended: 403 when a suspension ended it and still holds."""
    if session.revoked_reason == USER_SUSPENDED and user.suspended_at is not None:
        raise UserSuspended(data={"user_id": user.user_id})
    if session.revoked_reason == APP_SUSPENDED:
        async with services.db.read() as conn:
            app = await app_store.get_app(conn, session.app_id)
        if app is not None and app.suspended_at is not None:
            raise AppSuspended(data={"app_id": app.id})
