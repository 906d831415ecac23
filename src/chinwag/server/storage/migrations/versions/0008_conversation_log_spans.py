"""conversation logs merged into per-user streams by spans (issue #13, stage 2)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 17:00:00

A message is written once, to its conversation's log (``events.log_position``); members'
streams reach it through span rows in ``user_events`` (``last_pos``, ``conversation_id``,
``first_log_position``), merged lazily (``storage/spans.py``). Existing index rows stay
valid as they are (a NULL ``last_pos`` is one event), and every existing message is
already in its readers' streams, so each membership starts merged up to its conversation's
last position.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("events", sa.Column("log_position", sa.BigInteger(), nullable=True))
    op.create_index(
        "uq_events_conversation_log",
        "events",
        ["conversation_id", "log_position"],
        unique=True,
    )
    op.add_column("user_events", sa.Column("last_pos", sa.BigInteger(), nullable=True))
    op.add_column("user_events", sa.Column("conversation_id", sa.String(36), nullable=True))
    op.add_column("user_events", sa.Column("first_log_position", sa.BigInteger(), nullable=True))
    op.add_column(
        "participants",
        sa.Column("streamed_position", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.execute(
        "UPDATE participants SET streamed_position = (SELECT c.last_position"
        " FROM conversations c WHERE c.id = participants.conversation_id)"
    )


def downgrade() -> None:
    op.drop_column("participants", "streamed_position")
    op.drop_column("user_events", "first_log_position")
    op.drop_column("user_events", "conversation_id")
    op.drop_column("user_events", "last_pos")
    op.drop_index("uq_events_conversation_log", table_name="events")
    op.drop_column("events", "log_position")
