"""messages from the server side: bot users, blocks, announcements

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-29 11:00:00

``users.bot`` marks a bot identity created through the platform API; ``blocks`` holds who
blocked which user id (the blocked side is the app's user id, so blocking needs no user
row); ``announcements`` remembers each announcement's id and parts so a retry is answered,
not repeated. (Follows 0005 until 0006, the webhooks, lands; then it follows 0006.)
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column(
        "users", sa.Column("bot", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.create_table(
        "blocks",
        sa.Column("blocker_pk", BigId, nullable=False),
        sa.Column("blocked_user_id", sa.String(length=256), nullable=False),
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["blocker_pk"], ["users.pk"], name="fk_blocks_blocker_pk_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("blocker_pk", "blocked_user_id", name="pk_blocks"),
    )
    op.create_index("ix_blocks_app_blocked", "blocks", ["app_id", "blocked_user_id"])
    op.create_table(
        "announcements",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("public_id", sa.String(length=36), nullable=False),
        sa.Column("parts", sa.Text(), nullable=False),
        sa.Column("sent_at", sa.Float(), nullable=False),
        sa.Column("recipient_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name="fk_announcements_app_id_apps", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_announcements"),
        sa.UniqueConstraint("app_id", "public_id", name="uq_announcements_public_id"),
    )


def downgrade() -> None:
    op.drop_table("announcements")
    op.drop_index("ix_blocks_app_blocked", table_name="blocks")
    op.drop_table("blocks")
    op.drop_column("users", "bot")
