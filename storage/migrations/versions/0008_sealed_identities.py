"""sealed identities: OpenIDs and order numbers sealed, found through a blind index

Order numbers, the OpenIDs of conversations and consents, and conversation data (which holds
order numbers) become AES-GCM tokens; look-ups go through HMAC blind indexes. Existing rows
are sealed and indexed here, with the keys of the process that migrates (every `billbot`
command and the server configure them before migrating).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 10:40:00
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

from storage.crypto import PREFIX, keyring

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _seal(value: Any) -> Any:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if text.startswith(PREFIX) else keyring().seal(text)


def _backfill(table: str, sealed: list[str], indexed: tuple[str, str] | None) -> None:
    """Seals ``sealed`` columns and fills the index column from the opened value."""
    bind = op.get_bind()
    columns = ", ".join(["id", *sealed])
    rows = bind.execute(sa.text(f"SELECT {columns} FROM {table}")).mappings().all()
    keys = keyring()
    for row in rows:
        values: dict[str, Any] = {name: _seal(row[name]) for name in sealed}
        if indexed is not None:
            source, target = indexed
            values[target] = keys.index(keys.open(str(values[source])))
        assignments = ", ".join(f"{name} = :{name}" for name in values)
        bind.execute(
            sa.text(f"UPDATE {table} SET {assignments} WHERE id = :id"), {**values, "id": row["id"]}
        )


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.alter_column("order_no", existing_type=sa.String(length=64), type_=sa.Text())
        batch_op.add_column(sa.Column("order_index", sa.String(length=64), nullable=True))
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.alter_column("user_id", existing_type=sa.String(length=128), type_=sa.Text())
        batch_op.alter_column(
            "data", existing_type=sa.JSON(), type_=sa.Text(), postgresql_using="data::text"
        )
        batch_op.add_column(sa.Column("user_index", sa.String(length=64), nullable=True))
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.alter_column("user_id", existing_type=sa.String(length=128), type_=sa.Text())
        batch_op.add_column(sa.Column("user_index", sa.String(length=64), nullable=True))

    _backfill("orders", ["order_no"], ("order_no", "order_index"))
    _backfill("conversations", ["user_id", "data"], ("user_id", "user_index"))
    _backfill("consents", ["user_id"], ("user_id", "user_index"))

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.alter_column("order_index", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint("uq_orders_order_index", ["order_index"])
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.alter_column("user_index", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint("uq_conversations_user_index", ["channel", "user_index"])
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.alter_column("user_index", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_index("ix_consents_user_index", ["channel", "user_index"])


def downgrade() -> None:
    raise NotImplementedError("sealed identities cannot be unsealed by a migration")
