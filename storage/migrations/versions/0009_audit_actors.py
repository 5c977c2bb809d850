"""audit actors: system and customer events beside agents'; reasons sealed

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 10:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.crypto import PREFIX, keyring

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.alter_column("agent_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(
            sa.Column("actor", sa.String(length=64), nullable=False, server_default="")
        )
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, agent_id, reason FROM audit_log")).mappings().all()
    for row in rows:
        reason = row["reason"] or ""
        bind.execute(
            sa.text("UPDATE audit_log SET actor = :actor, reason = :reason WHERE id = :id"),
            {
                "id": row["id"],
                "actor": f"agent:{row['agent_id']}",
                "reason": reason if reason.startswith(PREFIX) else keyring().seal(reason),
            },
        )


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_column("actor")
