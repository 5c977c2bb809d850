"""funnel events: each journey's steps, without personal data

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 09:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "funnel_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("journey", sa.String(length=32), nullable=False),
        sa.Column("step", sa.String(length=24), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("verify_mode", sa.String(length=24), nullable=False),
        sa.Column("stopped_at", sa.String(length=24), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("journey", "step"),
    )
    with op.batch_alter_table("funnel_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_funnel_events_journey"), ["journey"])
        batch_op.create_index(batch_op.f("ix_funnel_events_at"), ["at"])


def downgrade() -> None:
    with op.batch_alter_table("funnel_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_funnel_events_at"))
        batch_op.drop_index(batch_op.f("ix_funnel_events_journey"))
    op.drop_table("funnel_events")
