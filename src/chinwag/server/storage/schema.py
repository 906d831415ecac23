"""Every table chinwag keeps. Changes here need an Alembic migration (see migrations/).

Conventions: times are float seconds since the epoch; JSON is stored as text (encoded by
orjson in the domain modules) so SQLite and PostgreSQL hold byte-identical payloads; users
have an internal integer ``pk`` and the app's own ``user_id`` is unique per app. Likewise
conversations and messages have an internal, server-wide ``id`` (what other tables refer
to) and the ``public_id`` clients see, unique per app only, so that whether an id is taken
in one app tells nothing about another.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

__all__ = [
    "announcements",
    "api_keys",
    "app_jwks",
    "app_keys",
    "apps",
    "audit_log",
    "blocks",
    "consumed_nonces",
    "conversations",
    "events",
    "hidden_messages",
    "messages",
    "metadata",
    "participants",
    "push_gateways",
    "push_jobs",
    "push_tokens",
    "server_secrets",
    "sessions",
    "used_jtis",
    "user_events",
    "users",
    "webhook_deliveries",
    "webhook_endpoints",
    "webhook_event_types",
    "webhook_outbox",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

BigId = BigInteger().with_variant(Integer, "sqlite")

server_secrets = Table(
    "server_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", LargeBinary, nullable=False),
)

apps = Table(
    "apps",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("environment", String(16), nullable=False),
    Column("session_lifetime", Integer, nullable=False),
    Column("require_nonce", Boolean, nullable=False),
    Column("max_token_age", Integer, nullable=False),
    Column("allow_anonymous", Boolean, nullable=False),
    Column("conversation_policy", String(32), nullable=False, server_default="open"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # Suspended apps refuse sign-ins; their sessions were ended when it was set (0004).
    Column("suspended_at", Float),
)

app_keys = Table(
    "app_keys",
    metadata,
    Column("kid", String(128), nullable=False),
    Column("app_id", String(36), ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
    Column("alg", String(8), nullable=False),
    Column("public_key_pem", Text),
    Column("secret", Text),
    Column("private_key_pem", Text),
    Column("development", Boolean, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("created_at", Float, nullable=False),
    # Per app (0009): each app picks its own kids, and a kid taken in one app must not
    # be refused in, or even visible to, another. Leading with app_id, it also serves
    # listing an app's keys.
    PrimaryKeyConstraint("app_id", "kid", name="pk_app_keys"),
)

# An app's published key set (0005): fetched and cached per process by server.jwks; the
# URL is read on each sign-in that needs it, so a change reaches every node at once.
app_jwks = Table(
    "app_jwks",
    metadata,
    Column("app_id", String(36), ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True),
    Column("url", String(2048), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("pk", BigId, primary_key=True, autoincrement=True),
    Column("app_id", String(36), ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", String(256), nullable=False),
    Column("anonymous", Boolean, nullable=False),
    Column("display_name", String(128)),
    Column("avatar_url", String(1024)),
    Column("email", String(254)),
    Column("first_name", String(128)),
    Column("last_name", String(128)),
    Column("stream_head", BigInteger, nullable=False, server_default="0"),
    Column("agent", Boolean, nullable=False, server_default=false()),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("suspended_at", Float),  # no new sessions while set (0004)
    # A bot identity created through the platform API (0007): shown as ``bot: true``.
    Column("bot", Boolean, nullable=False, server_default=false()),
    UniqueConstraint("app_id", "user_id", name="uq_users_app_user"),
    Index("ix_users_app_email", "app_id", "email"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("app_id", String(36), nullable=False),
    Column("user_pk", BigId, ForeignKey("users.pk", ondelete="CASCADE"), nullable=False),
    Column("secret_hash", LargeBinary(32), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("revoked_at", Float),
    Column("revoked_reason", String(32)),
    # Revoked with a request that the devices delete the session's local data (0002).
    Column("wipe", Boolean, nullable=False, server_default=false()),
    # What the platform API's session list shows (0004).
    Column("last_seen_at", Float),
    Column("address", String(64)),
    Column("device_label", String(128)),
    Index("ix_sessions_user_pk", "user_pk"),
    Index("ix_sessions_app_id", "app_id"),
)

consumed_nonces = Table(
    "consumed_nonces",
    metadata,
    Column("key", LargeBinary(32), primary_key=True),
    Column("app_id", String(36), nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_consumed_nonces_expires_at", "expires_at"),
)

used_jtis = Table(
    "used_jtis",
    metadata,
    Column("app_id", String(36), primary_key=True),
    Column("jti", String(256), primary_key=True),
    Column("expires_at", Float, nullable=False),
    Index("ix_used_jtis_expires_at", "expires_at"),
)

conversations = Table(
    "conversations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("app_id", String(36), ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
    # Never NULL in practice; nullable only so migration 0003 could add it in place.
    Column("public_id", String(36)),
    Column("distinct", Boolean, nullable=False),
    Column("distinct_key", String(64)),
    Column("metadata", Text, nullable=False, server_default="{}"),
    Column("created_by_pk", BigId),
    Column("created_at", Float, nullable=False),
    Column("last_position", BigInteger, nullable=False, server_default="0"),
    Column("last_message_id", String(36)),
    Column("last_message_at", Float),
    Column("participant_count", Integer, nullable=False, server_default="0"),
    Column("deleted_at", Float),
    UniqueConstraint("app_id", "distinct_key", name="uq_conversations_distinct"),
    Index("uq_conversations_public_id", "app_id", "public_id", unique=True),
)

participants = Table(
    "participants",
    metadata,
    Column(
        "conversation_id",
        String(36),
        ForeignKey("conversations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("user_pk", BigId, ForeignKey("users.pk", ondelete="CASCADE"), primary_key=True),
    Column("joined_at", Float, nullable=False),
    Column("joined_position", BigInteger, nullable=False, server_default="0"),
    Column("left_at", Float),
    Column("left_position", BigInteger),
    Column("left_snapshot", Text),
    Column("read_position", BigInteger, nullable=False, server_default="0"),
    Column("delivered_position", BigInteger, nullable=False, server_default="0"),
    Column("hidden_position", BigInteger, nullable=False, server_default="0"),
    Column("sort_at", Float, nullable=False),
    # How far this membership's conversation log was merged into the user's stream (0008):
    # the log positions above it (up to ``left_position`` for a former member) are pending.
    Column("streamed_position", BigInteger, nullable=False, server_default="0"),
    Index("ix_participants_user_sort", "user_pk", "sort_at"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("app_id", String(36), nullable=False),
    Column("public_id", String(36)),  # never NULL; see conversations.public_id
    Column(
        "conversation_id",
        String(36),
        ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("position", BigInteger, nullable=False),
    Column("sender_pk", BigId),
    Column("size", Integer, nullable=False),
    Column("sent_at", Float, nullable=False),
    Column("deleted_at", Float),
    # Last (0010): on SQLite the columns after a 64 KiB body lie in its overflow pages.
    Column("parts", Text, nullable=False),
    UniqueConstraint("conversation_id", "position", name="uq_messages_conversation_position"),
    Index("uq_messages_public_id", "app_id", "public_id", unique=True),
)

hidden_messages = Table(
    "hidden_messages",
    metadata,
    Column("user_pk", BigId, ForeignKey("users.pk", ondelete="CASCADE"), primary_key=True),
    Column(
        "message_id", String(36), ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    ),
)

events = Table(
    "events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("app_id", String(36), nullable=False),
    Column("type", String(64), nullable=False),
    Column("conversation_id", String(36)),
    Column("payload", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    # A ``message.created``'s position in its conversation's log (0008): the message's
    # position. Members' streams reach it through spans (``storage/spans.py``).
    Column("log_position", BigInteger),
    Index("uq_events_conversation_log", "conversation_id", "log_position", unique=True),
)

user_events = Table(
    "user_events",
    metadata,
    Column("user_pk", BigId, ForeignKey("users.pk", ondelete="CASCADE"), primary_key=True),
    Column("pos", BigInteger, primary_key=True),
    Column("event_id", BigId, ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
    # A span (0008): positions ``pos..last_pos`` are the conversation's log positions
    # ``first_log_position..`` in order, ``event_id`` the first of them. NULL: one event.
    Column("last_pos", BigInteger),
    Column("conversation_id", String(36)),
    Column("first_log_position", BigInteger),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("role", String(8), nullable=False),
    Column("app_id", String(36), ForeignKey("apps.id", ondelete="CASCADE")),
    Column("label", String(200)),
    Column("secret_hash", LargeBinary(32), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float),
    Column("revoked_at", Float),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("caller", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("app_id", String(36)),
    Column("target", String(600), nullable=False),
    Column("address", String(64)),
    Column("data", Text, nullable=False, server_default="{}"),
    Index("ix_audit_log_app_id", "app_id", "id"),
    Index("ix_audit_log_at", "at"),
)

# Webhooks and push (0006). Deliveries are an outbox: their rows are written in the same
# transaction as the change they announce, and a worker sends them after commit.

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("app_id", String(36), ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
    Column("url", Text, nullable=False),
    Column("description", String(200), nullable=False, server_default=""),
    Column("enabled", Boolean, nullable=False),
    Column("secret", Text, nullable=False),
    Column("previous_secret", Text),
    Column("previous_secret_until", Float),
    Column("disabled_reason", String(300)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_webhook_endpoints_app_id", "app_id"),
)

webhook_event_types = Table(
    "webhook_event_types",
    metadata,
    Column(
        "endpoint_id",
        String(40),
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("event_type", String(64), primary_key=True),
    Column("app_id", String(36), nullable=False),
    Index("ix_webhook_event_types_app_type", "app_id", "event_type"),
)

webhook_outbox = Table(
    "webhook_outbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("app_id", String(36), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("msg_id", String(40), nullable=False),
    Column(
        "endpoint_id",
        String(40),
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("app_id", String(36), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", Float, nullable=False),
    Column("lease_until", Float),
    Column("last_status", Integer),
    Column("last_error", String(300)),
    Column("created_at", Float, nullable=False),
    Column("delivered_at", Float),
    UniqueConstraint("msg_id", "endpoint_id", name="uq_webhook_deliveries_msg_id"),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),
)

push_gateways = Table(
    "push_gateways",
    metadata,
    Column("app_id", String(36), ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True),
    Column("url", Text, nullable=False),
    Column("include_body", Boolean, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("secret", Text, nullable=False),
    Column("previous_secret", Text),
    Column("previous_secret_until", Float),
    Column("disabled_reason", String(300)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

push_tokens = Table(
    "push_tokens",
    metadata,
    Column(
        "session_id", String(32), ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("app_id", String(36), nullable=False),
    Column("user_pk", BigId, ForeignKey("users.pk", ondelete="CASCADE"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("token", String(4096), nullable=False),
    Column("online_until", Float, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    Index("ix_push_tokens_user_pk", "user_pk"),
)

push_jobs = Table(
    "push_jobs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("app_id", String(36), nullable=False),
    Column(
        "session_id",
        String(32),
        ForeignKey("push_tokens.session_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("user_pk", BigId, nullable=False),
    Column("conversation_id", String(36), nullable=False),
    Column("conversation_public_id", String(36), nullable=False),
    Column("message_id", String(36), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", Float, nullable=False),
    Column("lease_until", Float),
    Column("last_error", String(300)),
    Column("created_at", Float, nullable=False),
    Index("ix_push_jobs_due", "next_attempt_at"),
    Index("ix_push_jobs_session_id", "session_id"),
)

blocks = Table(
    "blocks",
    metadata,
    # The blocked user is named by the app's user id, not a ``users`` row: blocking an id
    # must neither create a user (a way round ``existing_users``) nor tell whether one exists.
    Column("blocker_pk", BigId, ForeignKey("users.pk", ondelete="CASCADE"), primary_key=True),
    Column("blocked_user_id", String(256), primary_key=True),
    Column("app_id", String(36), nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_blocks_app_blocked", "app_id", "blocked_user_id"),
)

announcements = Table(
    "announcements",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("app_id", String(36), ForeignKey("apps.id", ondelete="CASCADE"), nullable=False),
    Column("public_id", String(36), nullable=False),
    Column("parts", Text, nullable=False),
    Column("sent_at", Float, nullable=False),
    Column("recipient_count", Integer, nullable=False),
    UniqueConstraint("app_id", "public_id", name="uq_announcements_public_id"),
)
