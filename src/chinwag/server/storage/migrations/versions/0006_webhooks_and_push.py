"""webhooks and push: endpoints, their event types, the event outbox and deliveries, push
gateways, push tokens and pending push notifications

Revision ID: 0006
Revises: 0003
Create Date: 2026-11-29 11:10:00

Only new tables, so upgrading touches no existing row. (Written against 0003; the
integrator rechains 0004/0005 in between by changing ``down_revision`` only.)
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "app_id", sa.String(36), sa.ForeignKey("apps.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("description", sa.String(200), nullable=False, server_default=""),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("previous_secret", sa.Text),
        sa.Column("previous_secret_until", sa.Float),
        sa.Column("disabled_reason", sa.String(300)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Index("ix_webhook_endpoints_app_id", "app_id"),
    )
    op.create_table(
        "webhook_event_types",
        sa.Column(
            "endpoint_id",
            sa.String(40),
            sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("event_type", sa.String(64), primary_key=True),
        sa.Column("app_id", sa.String(36), nullable=False),
        sa.Index("ix_webhook_event_types_app_type", "app_id", "event_type"),
    )
    op.create_table(
        "webhook_outbox",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("app_id", sa.String(36), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("msg_id", sa.String(40), nullable=False),
        sa.Column(
            "endpoint_id",
            sa.String(40),
            sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("app_id", sa.String(36), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("lease_until", sa.Float),
        sa.Column("last_status", sa.Integer),
        sa.Column("last_error", sa.String(300)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("delivered_at", sa.Float),
        sa.UniqueConstraint("msg_id", "endpoint_id", name="uq_webhook_deliveries_msg_id"),
        sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        sa.Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),
    )
    op.create_table(
        "push_gateways",
        sa.Column(
            "app_id", sa.String(36), sa.ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("include_body", sa.Boolean, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("previous_secret", sa.Text),
        sa.Column("previous_secret_until", sa.Float),
        sa.Column("disabled_reason", sa.String(300)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "push_tokens",
        sa.Column(
            "session_id",
            sa.String(32),
            sa.ForeignKey("sessions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("app_id", sa.String(36), nullable=False),
        sa.Column(
            "user_pk", _BIG_ID, sa.ForeignKey("users.pk", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("token", sa.String(4096), nullable=False),
        sa.Column("online_until", sa.Float, nullable=False, server_default="0"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Index("ix_push_tokens_user_pk", "user_pk"),
    )
    op.create_table(
        "push_jobs",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("app_id", sa.String(36), nullable=False),
        sa.Column(
            "session_id",
            sa.String(32),
            sa.ForeignKey("push_tokens.session_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("user_pk", _BIG_ID, nullable=False),
        sa.Column("conversation_id", sa.String(36), nullable=False),
        sa.Column("conversation_public_id", sa.String(36), nullable=False),
        sa.Column("message_id", sa.String(36), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("lease_until", sa.Float),
        sa.Column("last_error", sa.String(300)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Index("ix_push_jobs_due", "next_attempt_at"),
        sa.Index("ix_push_jobs_session_id", "session_id"),
    )


def downgrade() -> None:
    op.drop_table("push_jobs")
    op.drop_table("push_tokens")
    op.drop_table("push_gateways")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_outbox")
    op.drop_table("webhook_event_types")
    op.drop_table("webhook_endpoints")
