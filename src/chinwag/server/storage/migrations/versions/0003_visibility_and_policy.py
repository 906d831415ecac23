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
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _public_id(table: str) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.add_column(sa.Column("public_id", sa.String(length=36), nullable=True))
    rows = sa.table(table, sa.column("id", sa.String()), sa.column("public_id", sa.String()))
    op.execute(rows.update().values(public_id=rows.c.id))
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.alter_column("public_id", existing_type=sa.String(length=36), nullable=False)
        batch_op.create_unique_constraint(f"uq_{table}_public_id", ["app_id", "public_id"])


def upgrade() -> None:
    _public_id("conversations")
    _public_id("messages")
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "conversation_policy", sa.String(length=32), server_default="open", nullable=False
            )
        )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("agent", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("left_snapshot", sa.Text(), nullable=True))


def downgrade() -> None:
    for table in ("messages", "conversations"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f"uq_{table}_public_id", type_="unique")
            batch_op.drop_column("public_id")
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.drop_column("left_snapshot")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("agent")
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.drop_column("conversation_policy")
