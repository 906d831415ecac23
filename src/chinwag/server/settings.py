"""Server settings, read once at the edge (flags and CHINWAG_* environment variables)."""

from __future__ import annotations

from typing import Annotated, Literal

from limits import parse_many
from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from chinwag.core.webhook_events import DEFAULT_RETRY_SCHEDULE
from chinwag.server.database_location import default_database_url

__all__ = ["Settings"]

# Rate limits are ``limits`` rate strings: "20/second;600/minute", "100 per 5 seconds"; a bare
# number N means N/second; "" or "0" turns that limit off. docs/protocol.md lists them all.
RateText = Annotated[str, Field(description="a rate string, a number per second, or ''")]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHINWAG_", extra="ignore")

    database_url: str = Field(default_factory=default_database_url)
    """Default: ``$XDG_DATA_HOME/chinwag/chinwag.db`` (``~/.local/share/chinwag/chinwag.db``),
    the same file whatever the working directory (see ``database_location``)."""
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    """SQLite's ``synchronous``: FULL fsyncs the log before a commit returns, so nothing
    acknowledged is lost even on power loss. NORMAL is faster but a power loss (not a crash)
    can take the last transactions, acknowledged messages among them. Ignored on PostgreSQL."""
    broker_url: str = "memory://"
    broker_prefix: str = "chinwag"
    """Redis channel prefix; the channel is ``<prefix>:<deployment_id>:doorbell``, the
    deployment id coming from the database, so only nodes sharing a database share it."""
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    public_url: str | None = None
    """The URL clients reach this server at, behind a proxy (printed on start as the URL to
    use, beside the address it listens on); defaults to http://host:port. Nothing else
    reads it: links the server makes are relative."""

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
    revocation_sweep_seconds: float = Field(default=2.0, gt=0)
    """How often each node looks in the store for revoked sessions among its sockets: the
    fallback for a revocation whose doorbell this node never heard (the CLI, another
    broker, a lost publish). The doorbell itself closes sockets at once."""
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

    allow_insecure_jwks: bool = False
    """Development only: let an app's ``jwks_url`` be a loopback host, over http:// too
    (``CHINWAG_ALLOW_INSECURE_JWKS=true``). Off: https:// to a public host only."""
    jwks_fetch_timeout: float = Field(default=5.0, gt=0, le=30)
    """Seconds one JWKS fetch may take in all (connect, headers and body together)."""
    jwks_max_bytes: int = Field(default=64 * 1024, ge=1024, le=1024 * 1024)
    """Largest JWKS document read; a longer answer is cut off and refused."""

    create_dev_app: bool = False
    """On start, make sure a staging app exists and print its id and development key."""

    log_level: str = "info"
    log_format: Literal["text", "json"] = "text"
    """``json``: one JSON object per line (time, level, logger, message, request fields),
    credentials redacted as in text logs; for log shippers."""
    workers: int = Field(default=1, ge=1, le=64)
    """Processes ``chinwag serve`` runs on one listening socket; more than one needs a
    Redis broker (docs/operations.md)."""
    shutdown_timeout: float = Field(default=10.0, gt=0)
    """Seconds a stopping server (SIGTERM) gives in-flight requests and sends to finish
    before it closes what is left and exits."""
    readiness_timeout: float = Field(default=2.0, gt=0)
    """Seconds ``/readyz`` waits for the database before answering 503."""
    gc_refreeze_interval: float = Field(default=2.0, gt=0)
    """Seconds between ``chinwag serve``'s collect-and-freeze passes (``server/heap.py``): a
    full garbage collection then walks what was made since the last pass, not the objects
    of every connected socket."""
    gc_full_interval: float = Field(default=3600.0, ge=0)
    """Seconds between collections of the whole heap, frozen objects included, which free
    any garbage cycle frozen in the meantime (one pause as long as an unfrozen full
    collection: ~1.4 s at 12,000 sockets); 0: never."""
    metrics_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1/128"]
    )
    """Addresses/CIDRs allowed to read ``/metrics`` (comma-separated in the env var); the
    client address is the TCP peer's, or X-Forwarded-For's from ``trusted_proxies``.
    Empty: ``/metrics`` answers 404 to everyone."""
    opentelemetry: bool = False
    """Let FastAPI export OpenTelemetry traces, metrics and logs through the globally
    configured providers. Off by default: even unconfigured, its per-request provider checks
    cost a few percent of a sign-in."""

    pg_pool_size: int = Field(default=20, ge=2, le=1000)
    """PostgreSQL connections one process keeps open, and never more: a request that finds
    them all busy waits for one. Extra connections made for a burst and closed after it
    (SQLAlchemy's overflow) cost a backend start and asyncpg's type introspection each;
    under steady load they were opened and closed continuously, and that churn, not the
    queries, took PostgreSQL's CPU. Lanes (``pg_write_lanes``) are taken from these."""
    pg_write_lanes: int = Field(default=4, ge=0, le=32)
    """PostgreSQL group commit: writes that arrive together share a transaction, in this
    many parallel lanes (a send's conversation picks its lane); 0 gives every write its own
    transaction. Each lane keeps one of the pool's connections, so there must be fewer
    lanes than ``pg_pool_size``. SQLite always batches, in one lane. See
    storage/pg_batching.py."""
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
    """Every request with a session: HTTP (reads included) and WebSocket (every method,
    ping included)."""
    limit_requests_per_user: RateText = "400/second;12000/minute"
    limit_requests_per_app: RateText = "50000/second"
    limit_read_kib_per_session: RateText = "4096/second;65536/minute"
    """KiB served in pages, message bodies and event JSON (a page is up to 1 MiB): 4 MiB in a
    second, about 1 MiB a second sustained, is a device catching up on a long history."""
    limit_read_kib_per_user: RateText = "8192/second;131072/minute"
    limit_read_kib_per_app: RateText = "262144/second"
    limit_platform_per_key: RateText = "500/second;20000/minute"
    """Platform API requests per API key (the app's servers): bounds what a leaked or
    runaway key can cost everyone else."""
    limit_platform_recipients_per_key: RateText = "2000/second;60000/minute"
    """What one API key's requests fan out: an announcement's recipients (one more each per
    further 16 KiB of parts), a created conversation's participants, a platform send's
    conversation members. Requests count the calls; this counts the work they cause."""
    limit_platform_read_kib_per_key: RateText = "16384/second;262144/minute"
    """KiB of message bodies one API key is served in platform API pages (up to 1 MiB
    each), as ``limit_read_kib_per_*`` counts a device's."""
    typing_relay_interval: float = Field(default=0.3, ge=0)
    """At most one relayed typing change per typist per conversation per this many seconds."""

    dev_allow_http_loopback: bool = False
    """Development only: let webhook endpoints and push gateways be on a loopback host
    (``127.0.0.0/8``, ``::1``, ``localhost``), over plain http too, and let deliveries
    connect there (a receiver on the developer's machine). Off: https to a public address
    only, checked at registration and at every connection (``core.target_urls``)."""
    webhook_retry_schedule: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE)
    )
    """Seconds to wait after each failed delivery (jittered +-20 %), comma-separated in the
    env var; once spent, the endpoint (or push gateway) is disabled with the reason."""
    webhook_timeout: float = Field(default=10.0, gt=0, le=60)
    """Seconds one delivery attempt may take in all (connect, send, answer); slower is a
    failure, retried later."""
    webhook_workers: bool = True
    """Run the webhook and push delivery workers in this process (one of each)."""
    webhook_poll_interval: float = Field(default=1.0, gt=0)
    """Seconds between looks at the outbox when it was empty."""
    webhook_concurrency: int = Field(default=16, ge=1, le=256)
    """Deliveries in flight at once per worker (per process)."""
    webhook_retention_days: float = Field(default=7.0, gt=0)
    """Delivered and failed deliveries are listed (and replayable) this long, then purged."""
    webhook_busy_share: float = Field(default=0.1, gt=0, le=1)
    """While the event loop is busy serving clients, delivery work (webhooks and push) takes
    about this share of its time, so deliveries never slow message sending (they lag,
    durably, and catch up when the load drops); 1 turns the brake off. For more delivery
    capacity under load, run more nodes or a node that serves no clients."""
    push_delay: float = Field(default=2.0, ge=0)
    """Seconds a new message waits before a push is considered: a device whose socket
    dropped for a moment (a network switch) is back by then and needs no wake-up."""
    push_online_lease: float = Field(default=60.0, gt=1)
    """A connected device counts as online this long after its node last said so (the
    node renews it every third of this); covers a node that died without saying."""

    @model_validator(mode="after")
    def _leave_connections_for_reads(self) -> Settings:
        if self.pg_write_lanes >= self.pg_pool_size:
            raise ValueError(
                f"pg_write_lanes ({self.pg_write_lanes}) must be less than pg_pool_size "
                f"({self.pg_pool_size}): each write lane keeps one of the pool's connections, "
                "and reads need the rest"
            )
        return self

    @field_validator("webhook_retry_schedule", mode="before")
    @classmethod
    def _split_schedule(cls, value: object) -> object:
        if isinstance(value, str):
            return [float(part) for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies", "metrics_networks", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies", "metrics_networks")
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
