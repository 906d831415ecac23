"""Server settings, read once at the edge (flags and CHINWAG_* environment variables)."""

from __future__ import annotations

from typing import Annotated

from limits import parse_many
from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["Settings"]

# Rate limits are ``limits`` rate strings: "20/second;600/minute", "100 per 5 seconds"; a bare
# number N means N/second; "" or "0" turns that limit off. docs/protocol.md lists them all.
RateText = Annotated[str, Field(description="a rate string, a number per second, or ''")]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHINWAG_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./chinwag.db"
    broker_url: str = "memory://"
    broker_prefix: str = "chinwag"
    """Redis channel prefix: nodes sharing a database share it; tests use their own."""
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    public_url: str | None = None
    """The URL clients reach this server at (printed on start); defaults to http://host:port."""

    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    max_message_bytes: int = Field(default=64 * 1024, ge=1)
    max_participants: int = Field(default=1000, ge=2)
    max_metadata_bytes: int = Field(default=16 * 1024, ge=64)
    """A conversation's metadata as canonical JSON (sorted keys, no spaces), and any one
    change to it: bounds what every PATCH costs and what each ``conversation.updated`` stores."""
    token_leeway_seconds: float = Field(default=60.0, ge=0, le=300)

    auth_rate_per_second: float = Field(default=20.0, ge=0)
    """Sustained auth requests (nonces, sessions) per client address; 0 disables the limit."""
    auth_rate_burst: int = Field(default=100, ge=1)

    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Addresses/CIDRs whose X-Forwarded-For is believed (comma-separated in the env var);
    empty: the header is never trusted and the TCP peer is the client."""

    connection_queue_size: int = Field(default=1000, ge=1)
    """Frames a WebSocket may have waiting before it is told to resume later."""
    connection_queue_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024)
    """Bytes of frames a WebSocket may have waiting before it is told to resume later."""
    max_sockets_per_session: int = Field(default=8, ge=1)
    """Open WebSockets one session may hold on one node; more are closed with 4029."""
    max_sockets_per_user: int = Field(default=32, ge=1)
    """Open WebSockets one user may hold on one node, all sessions together."""
    ws_ping_interval: float = Field(default=20.0, gt=0)
    ws_ping_timeout: float = Field(default=20.0, gt=0)
    typing_pause_after: float = Field(default=2.5, gt=0)
    typing_finish_after: float = Field(default=5.0, gt=0)

    request_timeout: float = Field(default=10.0, gt=0)
    """Seconds a connection has to send each whole request (headers and body) from its
    first byte, or from connecting; slower connections are closed."""
    max_connections: int = Field(default=10_000, ge=1)
    """Connections (HTTP and WebSocket) served at once by this process; more get 503."""
    ws_max_frame_bytes: int | None = Field(default=None, ge=1024)
    """Largest WebSocket message accepted (close 1009 beyond); by default twice
    ``max_message_bytes`` (room for JSON escapes) plus 16 KiB of envelope."""
    ws_per_message_deflate: bool = False
    """Offer permessage-deflate. Off: compression costs memory per socket and CPU per
    frame, and chat frames are small."""

    create_dev_app: bool = False
    """On start, make sure a staging app exists and print its id and development key."""
    platform_stand_in_key: str | None = None
    """stand-in: replaced by the API-key module on merge. The one admin API key the
    platform API accepts until API keys exist; unset, the platform API answers 401."""

    log_level: str = "info"
    opentelemetry: bool = False
    """Let FastAPI export OpenTelemetry traces, metrics and logs through the globally
    configured providers. Off by default: even unconfigured, its per-request provider checks
    cost a few percent of a sign-in."""

    rate_limits: bool = True
    """Master switch for the per-session/user/app limits below (the auth limit is separate)."""
    rate_limit_url: str | None = None
    """Where limit counters live: memory://, redis://…; default: the broker's Redis (with
    the broker prefix) or memory:// when the broker is memory://."""
    limit_messages_per_session: RateText = "100/second;1000/minute"
    limit_messages_per_user: RateText = "200/second;2000/minute"
    limit_messages_per_app: RateText = "5000/second"
    limit_conversations_per_session: RateText = "10/second;60/minute"
    limit_conversations_per_user: RateText = "20/second;120/minute"
    limit_conversations_per_app: RateText = "500/second"
    limit_participants_per_session: RateText = "2000/minute"
    """Participants named in new conversations and added to existing ones (cost = count)."""
    limit_participants_per_user: RateText = "5000/minute"
    limit_participants_per_app: RateText = "50000/minute"
    limit_metadata_per_session: RateText = "10/second;120/minute"
    limit_metadata_per_user: RateText = "20/second;300/minute"
    limit_metadata_per_app: RateText = "1000/second"
    limit_receipts_per_session: RateText = "50/second;1200/minute"
    limit_receipts_per_user: RateText = "100/second;2400/minute"
    limit_receipts_per_app: RateText = "10000/second"
    limit_typing_per_session: RateText = "20/second;600/minute"
    limit_typing_per_user: RateText = "40/second;1200/minute"
    limit_typing_per_app: RateText = "10000/second"
    limit_requests_per_session: RateText = "200/second;6000/minute"
    """WebSocket requests of every method, ping included."""
    limit_requests_per_user: RateText = "400/second;12000/minute"
    limit_requests_per_app: RateText = "50000/second"
    typing_relay_interval: float = Field(default=0.3, ge=0)
    """At most one relayed typing change per typist per conversation per this many seconds."""

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        import ipaddress

        for entry in value:
            ipaddress.ip_network(entry, strict=False)  # ValueError names the bad entry
        return value

    @field_validator("*", mode="after")
    @classmethod
    def _check_rates(cls, value: object, info: ValidationInfo) -> object:
        if not (info.field_name or "").startswith("limit_") or not isinstance(value, str):
            return value
        text = value.strip()
        if text in ("", "0"):
            return ""
        if text.isdigit():
            text = f"{text}/second"
        parse_many(text)  # ValueError: "couldn't parse rate limit string …"
        return text

    @property
    def ws_max_size(self) -> int:
        """The WebSocket message limit in force (``ws_max_frame_bytes`` or its default)."""
        return self.ws_max_frame_bytes or 2 * self.max_message_bytes + 16 * 1024
