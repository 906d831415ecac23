"""Typed rows handed from storage to handlers (frozen; no SQLAlchemy objects leak out)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AppRecord", "KeyRecord", "SessionRecord", "UserRecord"]


@dataclass(frozen=True, slots=True)
class AppRecord:
    id: str
    name: str
    environment: str
    session_lifetime: int
    require_nonce: bool
    max_token_age: int
    allow_anonymous: bool
    created_at: float
    updated_at: float
    conversation_policy: str = "open"
    """Who may start a conversation with whom (``handlers.conversation_policy``)."""
    suspended_at: float | None = None
    """Set while the app is suspended: no sign-ins, no sessions."""

    @property
    def production(self) -> bool:
        return self.environment == "production"


@dataclass(frozen=True, slots=True)
class KeyRecord:
    kid: str
    app_id: str
    alg: str
    public_key_pem: str | None
    secret: str | None
    private_key_pem: str | None
    development: bool
    enabled: bool
    created_at: float


@dataclass(frozen=True, slots=True)
class UserRecord:
    pk: int
    app_id: str
    user_id: str
    anonymous: bool
    display_name: str | None
    avatar_url: str | None
    email: str | None
    first_name: str | None
    last_name: str | None
    stream_head: int
    created_at: float
    updated_at: float
    agent: bool = False
    """A designated agent: anonymous users may talk to it under ``anonymous_to_agents``."""
    suspended_at: float | None = None
    """Set while the user is suspended: no new sessions, even with a valid identity token."""
    bot: bool = False
    """A bot identity the app created through the platform API (shown as ``bot: true``)."""


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    app_id: str
    user_pk: int
    secret_hash: bytes
    created_at: float
    expires_at: float
    revoked_at: float | None
    revoked_reason: str | None
    wipe: bool = False
    """Revoked with a request that the devices delete the session's local data."""
    last_seen_at: float | None = None
    """Last authenticated request, to the minute (see ``handlers.auth.authenticate``)."""
    address: str | None = None
    """The client address the session was opened from."""
    device_label: str | None = None
    """What the device called itself at sign-in ("Alice's iPhone")."""
