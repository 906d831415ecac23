"""Bot identities: users the app's server creates and speaks as, marked ``bot: true``.

A bot is an ordinary user row with ``bot`` set, so it joins conversations and sends
messages through the same rules as anyone; its profile and every message it sends say
``bot: true`` so no person mistakes it for one. Creating a bot is idempotent by user id:
the same id again updates its profile; an id a person already uses is 409 ``id_in_use``
(a person never silently becomes a bot).
"""

from __future__ import annotations

from chinwag.core.errors import IdInUse
from chinwag.core.ids import user_id_problem
from chinwag.server.handlers.actors import AuditHook, audited
from chinwag.server.handlers.auth import user_json
from chinwag.server.handlers.conversations import invalid
from chinwag.server.services import Services
from chinwag.server.storage import users as user_store

__all__ = ["MAX_AVATAR_URL", "MAX_DISPLAY_NAME", "put_bot"]

MAX_DISPLAY_NAME = 128
MAX_AVATAR_URL = 1024


def _profile(display_name: str | None, avatar_url: str | None) -> dict[str, str | None]:
    if display_name is not None and not 1 <= len(display_name) <= MAX_DISPLAY_NAME:
        raise invalid("display_name", f"expected 1 to {MAX_DISPLAY_NAME} characters")
    if avatar_url is not None and not 1 <= len(avatar_url) <= MAX_AVATAR_URL:
        raise invalid("avatar_url", f"expected 1 to {MAX_AVATAR_URL} characters")
    return {"display_name": display_name, "avatar_url": avatar_url}


async def put_bot(
    services: Services,
    app_id: str,
    user_id: str,
    *,
    display_name: str | None,
    avatar_url: str | None,
    audit: AuditHook | None = None,
) -> tuple[dict[str, object], bool]:
    """Create the bot ``user_id`` or update its profile; returns (profile, created)."""
    problem = user_id_problem(user_id)
    if problem is not None:
        raise invalid("user_id", f"the user id {problem}")
    profile = _profile(display_name, avatar_url)
    now = services.now()
    async with services.db.transaction() as tx:
        found = await user_store.get_user(tx.conn, app_id, user_id)
        if found is not None and not found.bot:
            raise IdInUse("That user id belongs to a user who is not a bot.")
        if found is None:
            user = await user_store.insert_user(
                tx.conn, app_id=app_id, user_id=user_id, anonymous=False,
                profile=profile, now=now, bot=True,
            )  # fmt: skip
        else:
            await user_store.update_user(tx.conn, found.pk, {**profile, "updated_at": now})
            updated = await user_store.get_user_by_pk(tx.conn, found.pk)
            assert updated is not None
            user = updated
        await audited(tx, audit)
    return user_json(user, private=False), found is None
