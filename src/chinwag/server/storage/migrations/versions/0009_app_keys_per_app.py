"""signing key ids unique per app, not server-wide

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 07:00:00

``app_keys`` was keyed by ``kid`` alone, so an app could not upload a key under a kid
another app already used (apps choose their own, such as ``key-2024``), and the refusal
told it that some other app had that kid. Sign-in already looked keys up by app and kid;
now the primary key is ``(app_id, kid)``. It leads with ``app_id``, so it also serves the
per-app listing and the separate ``ix_app_keys_app_id`` index goes.

Downgrading refuses while two apps hold the same kid: the old primary key cannot hold
both, and choosing which app loses its key is not a migration's call.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("app_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_app_keys_app_id")
        batch_op.drop_constraint("pk_app_keys", type_="primary")
        batch_op.create_primary_key("pk_app_keys", ["app_id", "kid"])


def downgrade() -> None:
    shared = op.get_bind().execute(
        sa.text("SELECT kid FROM app_keys GROUP BY kid HAVING COUNT(*) > 1 ORDER BY kid LIMIT 5")
    )
    kids = [row[0] for row in shared]
    if kids:
        raise RuntimeError(
            "Cannot downgrade below 0009: more than one app has a signing key with the same"
            f" kid ({', '.join(kids)}), which a kid-only primary key cannot hold. Delete"
            " the keys that should go (chinwag keys delete APP_ID KID) and run it again."
        )
    with op.batch_alter_table("app_keys", schema=None) as batch_op:
        batch_op.drop_constraint("pk_app_keys", type_="primary")
        batch_op.create_primary_key("pk_app_keys", ["kid"])
        batch_op.create_index("ix_app_keys_app_id", ["app_id"], unique=False)
