"""Server settings, read once at the edge (flags and CHINWAG_* environment variables)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from chinwag.server.database_location import default_database_url

__all__ = ["Settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHINWAG_", extra="ignore")

    database_url: str = Field(default_factory=default_database_url)
    """Default: ``$XDG_DATA_HOME/chinwag/chinwag.db`` (``~/.local/share/chinwag/chinwag.db``),
    the same file whatever the working directory (see ``database_location``)."""
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
    token_leeway_seconds: float = Field(default=60.0, ge=0, le=300)

    auth_rate_per_second: float = Field(default=20.0, ge=0)
    """Sustained auth requests (nonces, sessions) per client address; 0 disables the limit."""
    auth_rate_burst: int = Field(default=100, ge=1)

    connection_queue_size: int = Field(default=1000, ge=1)
    """Frames a WebSocket may have waiting before it is told to resume later."""
    ws_ping_interval: float = Field(default=20.0, gt=0)
    ws_ping_timeout: float = Field(default=20.0, gt=0)
    typing_pause_after: float = Field(default=2.5, gt=0)
    typing_finish_after: float = Field(default=5.0, gt=0)

    create_dev_app: bool = False
    """On start, make sure a staging app exists and print its id and development key."""

    log_level: str = "info"
    opentelemetry: bool = False
    """Let FastAPI export OpenTelemetry traces, metrics and logs through the globally
    configured providers. Off by default: even unconfigured, its per-request provider checks
    cost a few percent of a sign-in."""
