"""cards (with WeCom contact ways) and the API error log

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("journey", sa.String(length=32), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("order_tail", sa.String(length=8), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("store", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("config_id", sa.String(length=64), nullable=True),
        sa.Column("qr_code", sa.String(length=1024), nullable=True),
        sa.Column("way_deleted_at", sa.DateTime(), nullable=True),
        sa.Column("lang", sa.String(length=8), nullable=False),
        sa.Column("added_at", sa.DateTime(), nullable=True),
        sa.Column("contact_key", sa.String(length=64), nullable=True),
        sa.Column("lost_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("state"),
    )
    with op.batch_alter_table("cards", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cards_conversation_id"), ["conversation_id"])
        batch_op.create_index(batch_op.f("ix_cards_expires_at"), ["expires_at"])
        batch_op.create_index(batch_op.f("ix_cards_contact_key"), ["contact_key"])
    op.create_table(
        "api_errors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service", sa.String(length=16), nullable=False),
        sa.Column("call", sa.String(length=64), nullable=False),
        sa.Column("errcode", sa.Integer(), nullable=False),
        sa.Column("errmsg", sa.String(length=255), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("api_errors", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_errors_at"), ["at"])


def downgrade() -> None:
    with op.batch_alter_table("api_errors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_errors_at"))
    op.drop_table("api_errors")
    with op.batch_alter_table("cards", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cards_contact_key"))
        batch_op.drop_index(batch_op.f("ix_cards_expires_at"))
        batch_op.drop_index(batch_op.f("ix_cards_conversation_id"))
    op.drop_table("cards")
