"""Who may start a conversation with whom: each app's ``conversation_policy``.

``open``
    Anyone may name any user id; users the app has never seen are created (no profile).
``existing_users``
    Every other participant must already exist in the app (signed in once, or created
    while the app was ``open``); naming an id never creates a user.
``anonymous_to_agents``
    Identified users as ``existing_users``; anonymous users may only name designated
    agents (``chinwag apps update --agent``), e.g. a support team.

A refusal is one answer, 403 ``participants_not_allowed``, whether the named users are
missing, not agents or both, so an anonymous caller learns nothing about who exists. The
same rule holds for adding participants later, so a conversation cannot be widened past
what its creator could have started.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncConnection

from chinwag.core.errors import InvalidRequest, ParticipantsNotAllowed
from chinwag.server.storage import apps as app_store
from chinwag.server.storage import conversations as store
from chinwag.server.storage import users as user_store

if TYPE_CHECKING:
    from chinwag.server.handlers.actors import Actor

__all__ = ["POLICIES", "check_policy", "participant_pks"]

POLICIES = ("open", "existing_users", "anonymous_to_agents")


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise InvalidRequest(
            f"conversation_policy must be one of {', '.join(POLICIES)}.",
            data={"property": "conversation_policy"},
            status=422,
        )
    return policy


async def participant_pks(
    conn: AsyncConnection, caller: Actor, user_ids: list[str], *, now: float
) -> dict[str, int]:
    """user_id → pk for ``user_ids`` (the caller may be among them), as the app's policy
    allows: created if need be (``open``), else they must exist; else 403."""
    policy = await app_store.get_conversation_policy(conn, caller.app_id)
    if policy == "open":
        return await store.ensure_users(conn, caller.app_id, user_ids, now)
    found = await user_store.find_users(conn, caller.app_id, user_ids)
    others = [u for u in user_ids if u != caller.user.user_id]
    if any(u not in found for u in others):
        raise ParticipantsNotAllowed()
    agents_only = policy == "anonymous_to_agents" and caller.user.anonymous
    if agents_only and not all(found[u][1] for u in others):
        raise ParticipantsNotAllowed()
    pks = {u: pk for u, (pk, _) in found.items()}
    pks[caller.user.user_id] = caller.user.pk
    return pks
