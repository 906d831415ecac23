"""Other users' public profiles, visible only to people who share a conversation with them.

Anyone else gets the same 404 as for a user id the app has never seen, so the endpoint
cannot be used to enumerate an app's users.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.core.errors import NotFound
from chinwag.core.ids import user_id_problem
from chinwag.server.handlers.auth import Authenticated, user_json
from chinwag.server.services import Services
from chinwag.server.storage import conversations as store
from chinwag.server.storage import users as user_store
from chinwag.server.storage.records import UserRecord

__all__ = ["get_user"]


async def _visible(conn: AsyncConnection, caller: Authenticated, target: UserRecord) -> bool:
    if target.pk == caller.user.pk:
        return True
    return await store.shares_conversation(conn, caller.user.pk, target.pk)


async def get_user(services: Services, caller: Authenticated, user_id: str) -> dict[str, object]:
    """The public profile (no email or names) of the caller or someone they talk to."""
    target = None
    if user_id_problem(user_id) is None:
        async with services.db.read() as conn:
            target = await user_store.get_user(conn, caller.app_id, user_id)
            if target is not None and not await _visible(conn, caller, target):
                target = None
    if target is None:
        raise NotFound("No user with that id.")
    return user_json(target, private=False)
