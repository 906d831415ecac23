"""who sees what: conversation policy, agents, departure snapshots, ids per app

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-29 10:30:00

``apps.conversation_policy`` says who may start a conversation with whom; ``users.agent``
marks the users anonymous callers may talk to under ``anonymous_to_agents``;
``participants.left_snapshot`` freezes what a former participant sees of the conversation
(metadata and participants as of their departure). Conversations and messages get a
``public_id`` unique per app (existing rows keep their id as it), while ``id`` stays the
internal server-wide key the other tables refer to.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _public_id(table: str) -> None:
    """Only native ALTERs: a batch "move and copy" on SQLite would drop the old table, and
    its ON DELETE CASCADE children (participants, messages) with it. So the column stays
    nullable (chinwag always writes it) and uniqueness is a unique index."""
    op.add_column(table, sa.Column("public_id", sa.String(length=36), nullable=True))
    rows = sa.table(table, sa.column("id", sa.String()), sa.column("public_id", sa.String()))
    op.execute(rows.update().values(public_id=rows.c.id))
    op.create_index(f"uq_{table}_public_id", table, ["app_id", "public_id"], unique=True)


def upgrade() -> None:
    _public_id("conversations")
    _public_id("messages")
    op.add_column(
        "apps",
        sa.Column(
            "conversation_policy", sa.String(length=32), server_default="open", nullable=False
        ),
    )
    op.add_column(
        "users", sa.Column("agent", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.add_column("participants", sa.Column("left_snapshot", sa.Text(), nullable=True))


def downgrade() -> None:
    """On SQLite, dropping a column rewrites the table in place (no cascade)."""
    op.drop_column("participants", "left_snapshot")
    op.drop_column("users", "agent")
    op.drop_column("apps", "conversation_policy")
    for table in ("messages", "conversations"):
        op.drop_index(f"uq_{table}_public_id", table_name=table)
        op.drop_column(table, "public_id")
