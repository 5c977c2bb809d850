"""sealed fields: personal data columns hold AES-GCM tokens (text of any length)

Existing rows keep their plaintext, which still reads; `billbot keys rotate` seals them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 10:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

WIDENED = {
    "orders": [("payer_openid", 128), ("card_last4", 4), ("tracking_no", 64)],
    "contacts": [("wechat_id", 128), ("qr_url", 1024)],
}


def upgrade() -> None:
    for table, columns in WIDENED.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name, length in columns:
                batch_op.alter_column(name, existing_type=sa.String(length=length), type_=sa.Text())


def downgrade() -> None:
    for table, columns in WIDENED.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name, length in columns:
                batch_op.alter_column(name, existing_type=sa.Text(), type_=sa.String(length=length))
