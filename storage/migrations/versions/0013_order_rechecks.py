"""order rechecks: unknown but well-formed order numbers, looked up again for a while

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "order_rechecks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("order_no", sa.Text(), nullable=False),
        sa.Column("order_index", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("next_at", sa.DateTime(), nullable=False),
        sa.Column("until", sa.DateTime(), nullable=False),
        sa.Column("done_at", sa.DateTime(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("order_rechecks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_order_rechecks_conversation_id"), ["conversation_id"])
        batch_op.create_index(batch_op.f("ix_order_rechecks_order_index"), ["order_index"])
        batch_op.create_index(batch_op.f("ix_order_rechecks_next_at"), ["next_at"])
        batch_op.create_index(batch_op.f("ix_order_rechecks_done_at"), ["done_at"])
        # one open recheck per conversation
        batch_op.create_index(
            "uq_order_rechecks_open",
            ["conversation_id"],
            unique=True,
            sqlite_where=sa.text("done_at IS NULL"),
            postgresql_where=sa.text("done_at IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("order_rechecks", schema=None) as batch_op:
        batch_op.drop_index("uq_order_rechecks_open")
        batch_op.drop_index(batch_op.f("ix_order_rechecks_done_at"))
        batch_op.drop_index(batch_op.f("ix_order_rechecks_next_at"))
        batch_op.drop_index(batch_op.f("ix_order_rechecks_order_index"))
        batch_op.drop_index(batch_op.f("ix_order_rechecks_conversation_id"))
    op.drop_table("order_rechecks")
