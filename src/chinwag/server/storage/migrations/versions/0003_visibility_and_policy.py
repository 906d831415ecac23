"""who sees what: conversation policy, agents, departure snapshots

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-29 10:30:00

``apps.conversation_policy`` says who may start a conversation with whom; ``users.agent``
marks the users anonymous callers may talk to under ``anonymous_to_agents``;
``participants.left_snapshot`` freezes what a former participant sees of the conversation
(metadata and participants as of their departure).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
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
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.drop_column("left_snapshot")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("agent")
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.drop_column("conversation_policy")
