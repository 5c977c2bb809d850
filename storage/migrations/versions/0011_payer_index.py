"""payer index: orders found by the OpenID that paid them (a blind index, like the others)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 13:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.crypto import keyring

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("payer_index", sa.String(length=64), nullable=True))
    op.create_index("ix_orders_payer_index", "orders", ["payer_index"])
    bind = op.get_bind()
    keys = keyring()
    rows = bind.execute(
        sa.text("SELECT id, payer_openid FROM orders WHERE payer_openid IS NOT NULL")
    ).all()
    for row in rows:
        bind.execute(
            sa.text("UPDATE orders SET payer_index = :index WHERE id = :id"),
            {"index": keys.index(keys.open(row.payer_openid)), "id": row.id},
        )


def downgrade() -> None:
    op.drop_index("ix_orders_payer_index", table_name="orders")
    op.drop_column("orders", "payer_index")
