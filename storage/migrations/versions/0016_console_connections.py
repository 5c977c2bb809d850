"""console connections: open live consoles in the database, for every worker to count

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 10:00:00

An agent may have consoles open on several server processes. Each open live feed is a row
kept fresh by a heartbeat, so closing one console on one worker sees the others, and a
worker killed outright leaves only rows that go stale.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_connections",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=128), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("console_connections", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_console_connections_agent_id"), ["agent_id"])
        batch_op.create_index(batch_op.f("ix_console_connections_seen_at"), ["seen_at"])


def downgrade() -> None:
    with op.batch_alter_table("console_connections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_console_connections_seen_at"))
        batch_op.drop_index(batch_op.f("ix_console_connections_agent_id"))
    op.drop_table("console_connections")
