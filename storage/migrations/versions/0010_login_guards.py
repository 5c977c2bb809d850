"""login guards: console lockouts per login and client address, not per login alone

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 13:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_guards",
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("agent_id", "source"),
    )
    # A lock running on the whole login ends: from now on it is per address.
    op.drop_column("agents", "failed_logins")
    op.drop_column("agents", "locked_until")


def downgrade() -> None:
    op.add_column(
        "agents",
        sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column("agents", sa.Column("locked_until", sa.DateTime(), nullable=True))
    op.drop_table("login_guards")
