"""order QR codes: receipts' parametric QR codes, claimed by the first customer who scans

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 13:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "order_qrs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_no", sa.Text(), nullable=False),
        sa.Column("order_index", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_order_qrs_order_index", "order_qrs", ["order_index"])


def downgrade() -> None:
    op.drop_index("ix_order_qrs_order_index", table_name="order_qrs")
    op.drop_table("order_qrs")
