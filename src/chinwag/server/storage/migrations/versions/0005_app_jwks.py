"""an app's JWKS URL

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-29 11:00:00

``app_jwks`` holds the URL an app publishes its signing keys at (RFC 7517 key set). A
table of its own rather than a column of ``apps``: most apps have none, and the keys
themselves are never stored, only fetched and cached per process (``server.jwks``).
Revises 0003 in this branch; the integrator rechains it after 0004 (only
``down_revision`` changes).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "app_jwks",
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name="fk_app_jwks_app_id_apps", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("app_id", name="pk_app_jwks"),
    )


def downgrade() -> None:
    op.drop_table("app_jwks")
