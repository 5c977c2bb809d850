"""answered late: a delivery whose reply went out through the message API, not the callback

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 10:00:00

The mark lives on the delivery record, so WeChat's retry of that message gets an empty
"success" from whichever server process it reaches.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("processed_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("answered_late_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("processed_messages", schema=None) as batch_op:
        batch_op.drop_column("answered_late_at")
