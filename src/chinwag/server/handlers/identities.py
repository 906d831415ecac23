"""A user's identity (display name, avatar, email, names): the one way it changes.

Sign-in applies the identity token's claims; the platform API applies what the app's
backend sends. Either way the change is written and an ``identity.updated`` event goes to
the user and everyone sharing a conversation with them, so every device shows the new name.
"""

from __future__ import annotations

from chinwag.core.errors import InvalidRequest, NotFound
from chinwag.core.events import EventType
from chinwag.core.identity_tokens import is_http_url
from chinwag.core.ids import has_control, user_id_problem
from chinwag.server.handlers.actors import FanoutCharge
from chinwag.server.handlers.apps import get_app
from chinwag.server.handlers.emit import emit
from chinwag.server.services import Services
from chinwag.server.storage import events as event_store
from chinwag.server.storage import users as user_store
from chinwag.server.storage.database import Transaction
from chinwag.server.storage.records import UserRecord

__all__ = [
    "apply_profile",
    "charge_profile_change",
    "get_identity",
    "update_identity",
    "user_json",
]


def user_json(user: UserRecord, *, private: bool = True) -> dict[str, object]:
    body: dict[str, object] = {
        "user_id": user.user_id,
        "display_name": user.display_name,
        "avatar_url": user.avatar_url,
        "anonymous": user.anonymous,
        "bot": user.bot,
    }
    if private:
        body["email"] = user.email
        body["first_name"] = user.first_name
        body["last_name"] = user.last_name
    return body


async def apply_profile(
    services: Services, tx: Transaction, user: UserRecord, profile: dict[str, str | None]
) -> UserRecord:
    """Write the fields of ``profile`` that differ (``None`` clears one) and announce the
    change; the user as it is now. Nothing changes, nothing is announced."""
    changed = {k: v for k, v in profile.items() if getattr(user, k) != v}
    if not changed:
        return user
    now = services.now()
    await user_store.update_user(tx.conn, user.pk, {**changed, "updated_at": now})
    refreshed = await user_store.get_user_by_pk(tx.conn, user.pk)
    assert refreshed is not None
    appended = await event_store.append_event(
        tx.conn,
        app_id=user.app_id,
        event_type=EventType.IDENTITY_UPDATED,
        data={"user": user_json(refreshed, private=False)},
        user_pks=await user_store.identity_audience(tx.conn, refreshed.pk),
        now=now,
    )
    emit(services, tx, appended)
    return refreshed


async def charge_profile_change(
    services: Services,
    user: UserRecord | None,
    profile: dict[str, str | None],
    charge: FanoutCharge | None,
) -> None:
    """Charge a platform request's profile change to its key's recipients budget: one per
    device stream it will write (the user and everyone sharing a conversation), before
    the write. Without it, a key flipping a well-connected user's name back and forth wrote
    thousands of events per request, counted as one request. Read outside the write's
    transaction, as a send's members are: no write lock is held while the budget is asked.
    Nothing to change (or a user not yet made), nothing charged."""
    if charge is None or user is None or all(getattr(user, k) == v for k, v in profile.items()):
        return
    async with services.db.read() as conn:
        audience = await user_store.identity_audience(conn, user.pk)
    await charge(len(audience))


async def get_identity(services: Services, app_id: str, user_id: str) -> UserRecord:
    """A user of the app (with private fields: for the app's backend), or ``not_found``."""
    await get_app(services, app_id)
    user = None
    if user_id_problem(user_id) is None:
        async with services.db.read() as conn:
            user = await user_store.get_user(conn, app_id, user_id)
    if user is None:
        raise NotFound("No user with that id in this app.", data={"user_id": user_id[:256]})
    return user


async def update_identity(
    services: Services,
    app_id: str,
    user_id: str,
    profile: dict[str, str | None],
    *,
    charge: FanoutCharge | None = None,
) -> UserRecord:
    """Set identity fields from the app's backend (``None`` clears one); announced like a
    change at sign-in. A later sign-in whose token carries a field sets it again.
    ``charge``: the platform key's recipients budget (:func:`charge_profile_change`)."""
    for name, value in profile.items():
        if value is not None and has_control(value):
            raise InvalidRequest(
                f"{name} must not contain control characters.",
                data={"property": name},
                status=422,
            )
    avatar_url = profile.get("avatar_url")
    if avatar_url is not None and not is_http_url(avatar_url):
        raise InvalidRequest(
            "avatar_url must be an http(s) URL.", data={"property": "avatar_url"}, status=422
        )
    await charge_profile_change(
        services, await get_identity(services, app_id, user_id), profile, charge
    )
    async with services.db.transaction() as tx:
        user = await user_store.get_user(tx.conn, app_id, user_id)
        if user is None:  # pragma: no cover - users are never deleted
            raise NotFound("No user with that id in this app.")
        return await apply_profile(services, tx, user, profile)
