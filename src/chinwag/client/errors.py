"""The SDK's errors, one tree, split by whose move it is.

::

    ClientError
    ├── UsageError                  you called the SDK in a way it does not allow
    │   ├── NotAuthenticated          the call needs a signed-in user
    │   ├── AlreadyAuthenticated      another user is signed in; deauthenticate() first
    │   └── IllegalTransition         (from chinwag.core.client_states) a lifecycle bug
    ├── OfflineError                the server could not be reached (nothing was changed)
    ├── AuthenticationStopped       the token provider said stop; the user is signed out
    ├── SessionRevoked              the server ended this session; local data was wiped
    └── ServerError                 the server answered with an error (status, id, data)
        ├── MessageRejected           a queued message can never be sent (permanent)
        └── Suspended                 403 user_suspended / app_suspended: the SDK holds
                                      everything until the app calls authenticate() again

``OfflineError`` is the only one worth retrying as is. ``ServerError`` carries the stable
error id from docs/protocol.md so apps can branch on it without parsing text.
"""

from __future__ import annotations

from typing import Any

from chinwag.core.client_states import IllegalTransition

__all__ = [
    "AlreadyAuthenticated",
    "AuthenticationStopped",
    "ClientError",
    "IllegalTransition",
    "MessageRejected",
    "NotAuthenticated",
    "OfflineError",
    "ServerError",
    "SessionRevoked",
    "Suspended",
    "UsageError",
]


class ClientError(Exception):
    """Base of every error the SDK raises on purpose."""


class UsageError(ClientError):
    """The app asked for something the SDK's rules forbid right now."""


class NotAuthenticated(UsageError):
    def __init__(self, action: str) -> None:
        super().__init__(f"{action} needs an authenticated user; call authenticate() first.")


class AlreadyAuthenticated(UsageError):
    """One user per client: switching needs ``deauthenticate()`` to finish first."""

    def __init__(self, current: str, requested: str) -> None:
        self.current = current
        self.requested = requested
        super().__init__(
            f"Already authenticated as {current!r}; cannot authenticate as {requested!r} "
            "until deauthenticate() has finished."
        )


class OfflineError(ClientError):
    """The server did not answer (refused, timed out, DNS). The local store is unchanged."""


class AuthenticationStopped(ClientError):
    """The identity token provider asked the SDK to stop; it will not ask again."""


class SessionRevoked(ClientError):
    """The server revoked this device's session; the local store has been wiped."""


class ServerError(ClientError):
    """An error answer from the server: ``status``, stable ``error_id``, ``data``."""

    def __init__(self, status: int, error_id: str, message: str, data: dict[str, Any]) -> None:
        self.status = status
        self.error_id = error_id
        self.message = message
        """The server's own words, without the status and id in front."""
        self.data = data
        super().__init__(f"{status} {error_id}: {message}")

    @property
    def transient(self) -> bool:
        """Worth retrying later: rate limits and server trouble, never a 4xx verdict."""
        return self.status == 429 or self.status >= 500

    @property
    def retry_after(self) -> float | None:
        """Seconds the server asked the caller to wait (429 ``rate_limited``, 503), if it did.

        Retrying sooner only earns another refusal and spends the shared budget of every
        device of the user, so the SDK never retries before this.
        """
        value = self.data.get("retry_after")
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            return None
        return float(value)


class MessageRejected(ServerError):
    """The server refused a queued message for good; it left the outbox as failed."""


SUSPENSIONS = frozenset({"user_suspended", "app_suspended"})
"""The 403 ids that mean the app's backend (or an operator) suspended the user or the app."""


class Suspended(ServerError):
    """403 ``user_suspended`` / ``app_suspended``: the user (or the whole app) is suspended.

    Not the fault of any one message or request, and not over until someone lifts it, so
    the SDK stops signing in and sending, keeps the user's data and queue, reports
    ``deauthenticated("suspended")``, and waits for the app to call ``authenticate()``.
    """

    def copy(self) -> Suspended:
        """A fresh exception with the same answer, to raise again."""
        return Suspended(self.status, self.error_id, self.message, self.data)
