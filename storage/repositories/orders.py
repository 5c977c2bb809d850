"""Orders and service contacts: lookups for the dialogue, upserts for the CSV import."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.crypto import keyring
from storage.db import dialect_insert, run, table_of
from storage.models import Contact, Order, OrderShape
from storage.records import ContactRecord, OrderRecord
from storage.shapes import shape_of

log = logging.getLogger(__name__)
# What an operator does about a contact that cannot serve: by whether it is in the table.
_CONTACT_FIX = {
    True: "put them back on duty with: billbot contacts enable {contact}",
    False: "add them with: billbot contacts import FILE.csv (a row for {contact})",
}


async def _upsert(
    session: AsyncSession,
    model: type[Order] | type[Contact],
    rows: list[dict[str, Any]],
    key: str,
    keep: Collection[str] = (),
) -> None:
    """INSERT … ON CONFLICT (key) DO UPDATE, on SQLite and PostgreSQL alike; an existing row
    keeps its ``keep`` columns (a new row takes them from ``rows``)."""
    stmt = dialect_insert(session, model).values(rows)
    updated = {c: stmt.excluded[c] for c in rows[0] if c != key and c not in keep}
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

    async def find(self, contact_key: str) -> ContactRecord | None:
        """The contact an order or an operator names (``C001``), on duty or not."""
        row = (await run(self._s, _CONTACT, {"contact": contact_key})).first()
        return None if row is None else _contact_record(row)

    async def existing(self, contact_keys: Collection[str]) -> set[str]:
        """Which of these contact ids are in the table: one query, for a whole import chunk."""
        if not contact_keys:
            return set()
        found = await self._s.scalars(
            select(Contact.contact).where(Contact.contact.in_(set(contact_keys)))
        )
        return set(found)

    async def list_all(self) -> list[ContactRecord]:
        """Every contact, on duty or not, by contact id."""
        rows = await self._s.scalars(select(Contact).order_by(Contact.contact))
        return [_contact_record(row) for row in rows]

    async def set_on_duty(
        self, contact_key: str, on_duty: bool, now: datetime
    ) -> ContactRecord | None:
        """Puts a contact on or off duty; the contact as it now is, or None if there is none."""
        row = (
            await self._s.execute(
                update(Contact)
                .where(Contact.contact == contact_key)
                .values(on_duty=on_duty, updated_at=now)
                .returning(*_CONTACTS.c)
            )
        ).first()
        return None if row is None else _contact_record(row)

    async def for_order(
        self, order: OrderRecord, fallback: str | None = None
    ) -> ContactRecord | None:
        """Who a verified order's customer is sent to (``fallback``: BILLBOT_FALLBACK_CONTACT).

        An order naming a contact gets that contact when it exists and is on duty, else the
        fallback when set and on duty, else nobody (the customer is handed to a person): never
        someone else's contact by guess. An order naming none gets its store's on-duty
        contact, then the fallback, then anyone on duty.
        """
        if order.contact:
            own = await self.find(order.contact)
            if own is not None and own.on_duty:
                return own
            log.warning(
                "an order names contact %r, who is %s: %s; %s",
                order.contact,
                "off duty" if own is not None else "not in the contacts table",
                f"sending its customer to the fallback contact {fallback!r} if on duty"
                if fallback
                else "its customer goes to the handoff queue (no BILLBOT_FALLBACK_CONTACT)",
                _CONTACT_FIX[own is not None].format(contact=order.contact),
            )
            return await self._fallback(fallback)
        if order.store:
            row = await self._s.scalar(
                select(Contact)
                .where(Contact.store == order.store, Contact.on_duty.is_(True))
                .order_by(Contact.id)
                .limit(1)
            )
            if row is not None:
                return _contact_record(row)
        chosen = await self._fallback(fallback)
        if chosen is not None:
            return chosen
        row = await self._s.scalar(
            select(Contact).where(Contact.on_duty.is_(True)).order_by(Contact.id).limit(1)
        )
        return None if row is None else _contact_record(row)

    async def _fallback(self, fallback: str | None) -> ContactRecord | None:
        if not fallback:
            return None
        chosen = await self.find(fallback)
        if chosen is not None and chosen.on_duty:
            return chosen
        log.warning(
            "the fallback contact BILLBOT_FALLBACK_CONTACT=%r is %s; %s, or set"
            " BILLBOT_FALLBACK_CONTACT to a contact on duty",
            fallback,
            "off duty" if chosen is not None else "not in the contacts table",
            _CONTACT_FIX[chosen is not None].format(contact=fallback),
        )
        return None

    async def upsert_many(
        self, contacts: Sequence[ContactRecord], now: datetime, *, keep_on_duty: bool = False
    ) -> int:
        """Insert or update by contact id. ``keep_on_duty``: contacts already in the table keep
        their on_duty (an import without it must not re-enable a contact an operator took off
        duty); new ones take the record's."""
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
        await _upsert(self._s, Contact, rows, "contact", ("on_duty",) if keep_on_duty else ())
        return len(contacts)

    async def count(self) -> int:
        return int(await self._s.scalar(select(func.count()).select_from(Contact)) or 0)
