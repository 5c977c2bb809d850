"""order guards: failed verifications per order, from any customer

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 10:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "order_guards",
        sa.Column("order_key", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.DateTime(), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("order_key"),
    )


def downgrade() -> None:
    op.drop_table("order_guards")
