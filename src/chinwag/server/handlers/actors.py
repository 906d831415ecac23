"""Who a handler acts for: a signed-in caller, or a user the app's own server speaks as.

The conversation and message rules need only the app and the acting user. A client
request brings them with a session (``handlers.auth.Authenticated``); the platform API
brings them with an API key and a user id (:class:`ServerActor`), with no session to
check. Both satisfy :class:`Actor`, so both go through the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from chinwag.server.storage.records import UserRecord

__all__ = ["Actor", "ServerActor"]


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
