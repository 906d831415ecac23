"""message bodies stored after every other column (SQLite)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 20:10:00

SQLite stores a row's columns in order, and a value too large for the row's page spills
into a chain of overflow pages. ``parts`` (up to 64 KiB) came before ``size``,
``sent_at`` and ``deleted_at``, so reading any of those walked the whole chain: a page of
500 messages of 60 KB read 30 MB to learn their sizes, even though the page then leaves
most bodies out (``messages.page``). Measured on one SQLite node, such a page cost about
18 ms of CPU, and eight readers asking for it over and over held a core. With ``parts``
last, the columns a page needs first lie in the row's own page.

SQLite cannot move a column, so the table is rebuilt (Alembic's batch copy): on a large
database this takes a while and needs free disk space for a second copy of the table.
Dropping the old table would cascade-delete ``hidden_messages``, whose rows are kept
aside and put back. PostgreSQL keeps large values out of line (TOAST), where the order
does not matter, and is left as it is; so is every database on downgrade, which has
nothing to undo.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ORDER = (
    "id",
    "app_id",
    "public_id",
    "conversation_id",
    "position",
    "sender_pk",
    "size",
    "sent_at",
    "deleted_at",
    "parts",
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("CREATE TEMP TABLE hidden_0010 AS SELECT user_pk, message_id FROM hidden_messages")
    op.execute("DELETE FROM hidden_messages")
    with op.batch_alter_table("messages", recreate="always", partial_reordering=[_ORDER]):
        pass
    op.execute(
        "INSERT INTO hidden_messages (user_pk, message_id)"
        " SELECT user_pk, message_id FROM hidden_0010"
    )
    op.execute("DROP TABLE hidden_0010")


def downgrade() -> None:
    """Column order carries no meaning: nothing to undo."""
