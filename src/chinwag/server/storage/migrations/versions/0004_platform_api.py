"""platform API: API keys, the audit log, suspension, what a session list shows

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 11:00:00

``api_keys`` holds the platform API's keys (only a SHA-256 of each secret); ``audit_log``
records every platform and CLI action (never a secret). ``apps.suspended_at`` and
``users.suspended_at`` refuse sign-ins while set. ``sessions`` learn where they were opened
(``address``), what the device called itself (``device_label``) and when they were last
used (``last_seen_at``, written at most once a minute). Only additions: existing rows are
unsuspended sessions with nothing known about their device.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("app_id", sa.String(length=36), nullable=True),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("secret_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("last_used_at", sa.Float(), nullable=True),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name="fk_api_keys_app_id_apps", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("caller", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("app_id", sa.String(length=36), nullable=True),
        sa.Column("target", sa.String(length=600), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.Column("data", sa.Text(), nullable=False, server_default="{}"),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_app_id", "audit_log", ["app_id", "id"])
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.add_column("apps", sa.Column("suspended_at", sa.Float(), nullable=True))
    op.add_column("users", sa.Column("suspended_at", sa.Float(), nullable=True))
    op.add_column("sessions", sa.Column("last_seen_at", sa.Float(), nullable=True))
    op.add_column("sessions", sa.Column("address", sa.String(length=64), nullable=True))
    op.add_column("sessions", sa.Column("device_label", sa.String(length=128), nullable=True))
    op.create_index("ix_sessions_app_id", "sessions", ["app_id"])


def downgrade() -> None:
    op.drop_index("ix_sessions_app_id", table_name="sessions")
    for column in ("device_label", "address", "last_seen_at"):
        op.drop_column("sessions", column)
    op.drop_column("users", "suspended_at")
    op.drop_column("apps", "suspended_at")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_index("ix_audit_log_app_id", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("api_keys")
