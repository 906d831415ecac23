"""Who a handler acts for: a signed-in caller, or a user the app's own server speaks as.

The conversation and message rules need only the app and the acting user. A client
request brings them with a session (``handlers.auth.Authenticated``); the platform API
brings them with an API key and a user id (:class:`ServerActor`), with no session to
check. Both satisfy :class:`Actor`, so both go through the same rules.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from chinwag.core.errors import NotFound
from chinwag.core.ids import user_id_problem
from chinwag.server.services import Services
from chinwag.server.storage import users as user_store
from chinwag.server.storage.database import Transaction
from chinwag.server.storage.records import UserRecord

__all__ = [
    "Actor",
    "AuditHook",
    "FanoutCharge",
    "ServerActor",
    "audited",
    "charged",
    "server_actor",
]

AuditHook = Callable[[Transaction], Awaitable[None]]
"""Writes the platform API's audit entry for a change, in the change's own transaction
(so an entry exists exactly when the change committed). None on the client API."""


async def audited(tx: Transaction, audit: AuditHook | None) -> None:
    if audit is not None:
        await audit(tx)


FanoutCharge = Callable[[int], Awaitable[None]]
"""Counts what a platform request fans out (recipients) against its API key's budget,
raising 429 when over; called after the request is checked and before any write, so a
refused request costs nothing. None on the client API (its own limits apply)."""


async def charged(charge: FanoutCharge | None, cost: int) -> None:
    if charge is not None:
        await charge(cost)


class Actor(Protocol):
    @property
    def app_id(self) -> str: ...

    @property
    def user(self) -> UserRecord: ...


@dataclass(frozen=True, slots=True)
class ServerActor:
    """A user (or bot) the app's server acts as through the platform API."""

    app_id: str
    user: UserRecord


async def server_actor(services: Services, app_id: str, user_id: str) -> ServerActor:
    """The app's user ``user_id`` to act as; 404 ``not_found`` if the app has no such user."""
    found = None
    if user_id_problem(user_id) is None:
        async with services.db.read() as conn:
            found = await user_store.get_user(conn, app_id, user_id)
    if found is None:
        raise NotFound("No user with that id.")
    return ServerActor(app_id=app_id, user=found)
