"""session wipe flag; HS256 secrets used as printed

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 10:12:00.000000

``sessions.wipe``: a server-side revocation may ask the devices to delete the session's
local data too (a stolen device). Existing sessions were never revoked with a wipe.

HS256 secrets need no rewrite: ``app_keys.secret`` has always held the text
``chinwag keys add-secret`` printed, and from this release that text's UTF-8 bytes are the
HMAC key. An existing key therefore works at once for a backend that signs with the
printed string (``jwt.encode(claims, SECRET, "HS256")``); a backend that followed the old
advice and decoded the text first must stop decoding (see CHANGELOG).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("wipe", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_column("wipe")
