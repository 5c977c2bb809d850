"""order shapes: the prefixes and digit/letter runs of imported order numbers

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 13:30:00
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from storage.crypto import keyring
from storage.shapes import shape_of

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "order_shapes",
        sa.Column("shape", sa.String(length=64), nullable=False),
        sa.Column("learned_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("shape"),
    )
    bind = op.get_bind()
    keys = keyring()
    shapes = {
        shape_of(keys.open(row.order_no))
        for row in bind.execute(sa.text("SELECT order_no FROM orders"))
    }
    now = datetime.now(UTC).replace(tzinfo=None)
    for shape in sorted(shapes):
        bind.execute(
            sa.text("INSERT INTO order_shapes (shape, learned_at) VALUES (:shape, :now)"),
            {"shape": shape, "now": now},
        )


def downgrade() -> None:
    op.drop_table("order_shapes")
