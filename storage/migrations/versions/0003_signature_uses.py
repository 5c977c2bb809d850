"""signature uses: one plaintext callback signature carries one body

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 09:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signature_uses",
        sa.Column("signature_key", sa.String(length=255), nullable=False),
        sa.Column("body_digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("signature_key"),
    )
    with op.batch_alter_table("signature_uses", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_signature_uses_created_at"), ["created_at"])


def downgrade() -> None:
    with op.batch_alter_table("signature_uses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signature_uses_created_at"))
    op.drop_table("signature_uses")
