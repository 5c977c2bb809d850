"""Orders and service contacts: lookups for the dialogue, upserts for the CSV import."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.crypto import keyring
from storage.db import dialect_insert, run, table_of
from storage.models import Contact, Order, OrderShape
from storage.records import ContactRecord, OrderRecord
from storage.shapes import shape_of


async def _upsert(
    session: AsyncSession, model: type[Order] | type[Contact], rows: list[dict[str, Any]], key: str
) -> None:
    """INSERT … ON CONFLICT (key) DO UPDATE, on SQLite and PostgreSQL alike."""
    stmt = dialect_insert(session, model).values(rows)
    updated = {c: stmt.excluded[c] for c in rows[0] if c != key}
    await session.execute(stmt.on_conflict_do_update(index_elements=[key], set_=updated))


_ORDERS = table_of(Order)
_FIND = (
    select(_ORDERS).where(_ORDERS.c.order_index.in_(bindparam("indexes", expanding=True))).limit(1)
)

_CONTACTS = table_of(Contact)
_CONTACT = select(_CONTACTS).where(_CONTACTS.c.contact == bindparam("contact"))


def _order_record(row: Any) -> OrderRecord:
    return OrderRecord(
        order_no=row.order_no,
        amount_cents=row.amount_cents,
        currency=row.currency,
        paid_at=row.paid_at,
        store=row.store,
        contact=row.contact,
        payer_openid=row.payer_openid,
        card_last4=row.card_last4,
        tracking_no=row.tracking_no,
        status=row.status,
    )


def _contact_record(row: Any) -> ContactRecord:
    return ContactRecord(
        id=row.id,
        contact=row.contact,
        name=row.name,
        wechat_id=row.wechat_id,
        qr_url=row.qr_url,
        store=row.store,
        wecom_userid=row.wecom_userid,
        on_duty=row.on_duty,
    )


class OrderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def find(self, order_no: str) -> OrderRecord | None:
        variants = keyring().index_variants(order_no)
        row = (await run(self._s, _FIND, {"indexes": variants})).first()
        return None if row is None else _order_record(row)

    async def paid_by(self, user_id: str, since: datetime, limit: int) -> list[OrderRecord]:
        """The orders this OpenID paid for since ``since`` (newest first; undated ones last)."""
        rows = await self._s.scalars(
            select(Order)
            .where(
                Order.payer_index.in_(keyring().index_variants(user_id)),
                or_(Order.paid_at.is_(None), Order.paid_at >= since),
            )
            .order_by(Order.paid_at.desc().nulls_last(), Order.id.desc())
            .limit(limit)
        )
        return [_order_record(row) for row in rows]

    async def upsert_many(self, orders: Sequence[OrderRecord], now: datetime) -> int:
        """Insert or update by order number, one statement per call; returns rows written."""
        if not orders:
            return 0
        keys = keyring()
        rows = [
            {
                "order_index": keys.index(o.order_no),
                "order_no": o.order_no,
                "amount_cents": o.amount_cents,
                "currency": o.currency,
                "paid_at": o.paid_at,
                "store": o.store,
                "contact": o.contact,
                "payer_openid": o.payer_openid,
                "payer_index": keys.index(o.payer_openid) if o.payer_openid else None,
                "card_last4": o.card_last4,
                "tracking_no": o.tracking_no,
                "status": o.status,
                "updated_at": now,
            }
            for o in orders
        ]
        await _upsert(self._s, Order, rows, "order_index")
        shapes = sorted({shape_of(o.order_no) for o in orders})
        await self._s.execute(
            dialect_insert(self._s, OrderShape)
            .values([{"shape": shape, "learned_at": now} for shape in shapes])
            .on_conflict_do_nothing(index_elements=["shape"])
        )
        return len(orders)

    async def shapes(self) -> list[str]:
        """The shapes of the order numbers imported so far (see ``shape_of``)."""
        return list(await self._s.scalars(select(OrderShape.shape)))

    async def count(self) -> int:
        return int(await self._s.scalar(select(func.count()).select_from(Order)) or 0)


class ContactRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def get(self, contact_id: int) -> ContactRecord | None:
        row = await self._s.get(Contact, contact_id)
        return None if row is None else _contact_record(row)

    async def for_order(self, order: OrderRecord) -> ContactRecord | None:
        """The order's own contact, else its store's, else anyone on duty."""
        if order.contact:
            row = (await run(self._s, _CONTACT, {"contact": order.contact})).first()
            if row is not None:
                return _contact_record(row)
        if order.store:
            row = await self._s.scalar(
                select(Contact)
                .where(Contact.store == order.store, Contact.on_duty.is_(True))
                .order_by(Contact.id)
                .limit(1)
            )
            if row is not None:
                return _contact_record(row)
        row = await self._s.scalar(
            select(Contact).where(Contact.on_duty.is_(True)).order_by(Contact.id).limit(1)
        )
        return None if row is None else _contact_record(row)

    async def upsert_many(self, contacts: Sequence[ContactRecord], now: datetime) -> int:
        if not contacts:
            return 0
        rows = [
            {
                "contact": c.contact,
                "name": c.name,
                "wechat_id": c.wechat_id,
                "qr_url": c.qr_url,
                "store": c.store,
                "wecom_userid": c.wecom_userid,
                "on_duty": c.on_duty,
                "updated_at": now,
            }
            for c in contacts
        ]
        await _upsert(self._s, Contact, rows, "contact")
        return len(contacts)

    async def count(self) -> int:
        return int(await self._s.scalar(select(func.count()).select_from(Contact)) or 0)
