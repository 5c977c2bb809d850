"""Cards handed to customers, their WeCom contact ways, and the API errors admins are shown."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import run, table_of
from storage.models import ApiError, Card
from storage.records import ApiErrorRecord, CardRecord

STATE_BYTES = 18  # 24 URL-safe characters: within WeCom's 30, far beyond guessing

_CARDS = table_of(Card)
_ISSUE = insert(_CARDS).returning(*_CARDS.c)
_COUNT_SINCE = (
    select(func.count())
    .select_from(_CARDS)
    .where(_CARDS.c.conversation_id == bindparam("conv"), _CARDS.c.created_at >= bindparam("since"))
)


def _record(row: Any) -> CardRecord:
    return CardRecord(
        id=row.id,
        state=row.state,
        conversation_id=row.conversation_id,
        journey=row.journey,
        contact_id=row.contact_id,
        order_tail=row.order_tail,
        amount_cents=row.amount_cents,
        currency=row.currency,
        store=row.store,
        created_at=row.created_at,
        expires_at=row.expires_at,
        config_id=row.config_id,
        qr_code=row.qr_code,
        added_at=row.added_at,
        lang=row.lang,
    )


class CardRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def issue(
        self,
        *,
        conversation_id: int,
        journey: str,
        contact_id: int,
        order_tail: str,
        amount_cents: int,
        currency: str,
        store: str | None,
        now: datetime,
        expires_at: datetime,
        lang: str = "zh",
    ) -> CardRecord:
        """A new card with its own one-time ``state``."""
        card = {
            "state": secrets.token_urlsafe(STATE_BYTES),
            "conversation_id": conversation_id,
            "journey": journey,
            "contact_id": contact_id,
            "order_tail": order_tail,
            "amount_cents": amount_cents,
            "currency": currency,
            "store": store,
            "created_at": now,
            "expires_at": expires_at,
            "lang": lang,
        }
        row = (await run(self._s, _ISSUE, card)).first()
        return _record(row)

    async def count_since(self, conversation_id: int, since: datetime) -> int:
        """Cards this conversation's customer was given since ``since``."""
        counted = await run(self._s, _COUNT_SINCE, {"conv": conversation_id, "since": since})
        return int(counted.scalar() or 0)

    async def get(self, card_id: int) -> CardRecord | None:
        row = await self._s.get(Card, card_id)
        return None if row is None else _record(row)

    async def by_state_for_update(self, state: str) -> CardRecord | None:
        row = await self._s.scalar(
            select(Card)
            .where(Card.state == state)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return None if row is None else _record(row)

    async def attach_way(self, card_id: int, config_id: str, qr_code: str) -> bool:
        """Records the card's contact way; False if another request attached one first."""
        result = await self._s.execute(
            update(Card)
            .where(Card.id == card_id, Card.config_id.is_(None))
            .values(config_id=config_id, qr_code=qr_code)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def mark_added(self, card_id: int, now: datetime, contact_key: str) -> bool:
        """True the first time: the customer added the contact through this card."""
        result = await self._s.execute(
            update(Card)
            .where(Card.id == card_id, Card.added_at.is_(None))
            .values(added_at=now, contact_key=contact_key)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def mark_lost(self, contact_key: str, now: datetime) -> list[str]:
        """The journeys whose added contact (by ``contact_key``) was just deleted."""
        journeys = list(
            await self._s.scalars(
                select(Card.journey).where(Card.contact_key == contact_key, Card.lost_at.is_(None))
            )
        )
        await self._s.execute(
            update(Card)
            .where(Card.contact_key == contact_key, Card.lost_at.is_(None))
            .values(lost_at=now)
            .execution_options(synchronize_session=False)
        )
        return journeys

    async def ways_to_delete(self, now: datetime, limit: int = 100) -> list[tuple[int, str]]:
        """(card id, config id) of contact ways no longer needed: used, or the card expired."""
        rows = await self._s.execute(
            select(Card.id, Card.config_id)
            .where(
                Card.config_id.is_not(None),
                Card.way_deleted_at.is_(None),
                or_(Card.expires_at <= now, Card.added_at.is_not(None)),
            )
            .order_by(Card.id)
            .limit(limit)
        )
        return [(card_id, str(config_id)) for card_id, config_id in rows]

    async def way_deleted(self, card_id: int, now: datetime) -> None:
        await self._s.execute(
            update(Card)
            .where(Card.id == card_id)
            .values(way_deleted_at=now)
            .execution_options(synchronize_session=False)
        )

    async def purge_before(self, cutoff: datetime) -> int:
        """Drops cards expired before ``cutoff`` whose contact way (if any) is gone."""
        result = await self._s.execute(
            delete(Card).where(
                Card.expires_at < cutoff,
                or_(Card.config_id.is_(None), Card.way_deleted_at.is_not(None)),
            )
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


class ApiErrorRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def record(
        self, service: str, call: str, errcode: int, errmsg: str, now: datetime
    ) -> None:
        self._s.add(
            ApiError(service=service, call=call, errcode=errcode, errmsg=errmsg[:255], at=now)
        )
        await self._s.flush()

    async def recent(self, since: datetime, limit: int = 20) -> list[ApiErrorRecord]:
        rows = await self._s.scalars(
            select(ApiError).where(ApiError.at >= since).order_by(ApiError.id.desc()).limit(limit)
        )
        return [ApiErrorRecord(r.service, r.call, r.errcode, r.errmsg, r.at) for r in rows]

    async def purge_before(self, cutoff: datetime) -> int:
        result = await self._s.execute(delete(ApiError).where(ApiError.at < cutoff))
        return int(result.rowcount)  # type: ignore[attr-defined]
