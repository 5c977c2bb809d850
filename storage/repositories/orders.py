"""Orders and service contacts: lookups for the dialogue, upserts for the CSV import."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Contact, Order
from storage.records import ContactRecord, OrderRecord


def _order_record(row: Order) -> OrderRecord:
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


def _contact_record(row: Contact) -> ContactRecord:
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
        row = await self._s.scalar(select(Order).where(Order.order_no == order_no))
        return None if row is None else _order_record(row)

    async def upsert_many(self, orders: Sequence[OrderRecord], now: datetime) -> int:
        """Insert or update by order number; returns how many rows were written."""
        if not orders:
            return 0
        existing = {
            row.order_no: row
            for row in await self._s.scalars(
                select(Order).where(Order.order_no.in_([o.order_no for o in orders]))
            )
        }
        for rec in orders:
            row = existing.get(rec.order_no)
            if row is None:
                row = Order(order_no=rec.order_no)
                self._s.add(row)
                existing[rec.order_no] = row
            row.amount_cents = rec.amount_cents
            row.currency = rec.currency
            row.paid_at = rec.paid_at
            row.store = rec.store
            row.contact = rec.contact
            row.payer_openid = rec.payer_openid
            row.card_last4 = rec.card_last4
            row.tracking_no = rec.tracking_no
            row.status = rec.status
            row.updated_at = now
        await self._s.flush()
        return len(orders)

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
            row = await self._s.scalar(select(Contact).where(Contact.contact == order.contact))
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
        existing = {
            row.contact: row
            for row in await self._s.scalars(
                select(Contact).where(Contact.contact.in_([c.contact for c in contacts]))
            )
        }
        for rec in contacts:
            row = existing.get(rec.contact)
            if row is None:
                row = Contact(contact=rec.contact, on_duty=True)
                self._s.add(row)
                existing[rec.contact] = row
            row.name = rec.name
            row.wechat_id = rec.wechat_id
            row.qr_url = rec.qr_url
            row.store = rec.store
            row.wecom_userid = rec.wecom_userid
            row.updated_at = now
        await self._s.flush()
        return len(contacts)

    async def count(self) -> int:
        return int(await self._s.scalar(select(func.count()).select_from(Contact)) or 0)
