"""agent settings: a login can be disabled, and each agent picks the console's language

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 10:00:00

Merchants disable the login of an agent who left (``billbot agents disable NAME``) instead
of deleting it: the audit log and old handoffs keep naming them. The console speaks Chinese,
English or both, per agent; Chinese is the default.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disabled_at", sa.DateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("lang", sa.String(length=8), nullable=False, server_default="zh")
        )


def downgrade() -> None:
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.drop_column("lang")
        batch_op.drop_column("disabled_at")
