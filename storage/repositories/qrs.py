"""Receipt QR codes: one row per code made, claimed by the first customer who scans it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.crypto import keyring
from storage.models import OrderQr
from storage.records import ScanClaim


class OrderQrRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def create(self, order_no: str, expires_at: datetime, now: datetime) -> int:
        row = OrderQr(
            order_no=order_no,
            order_index=keyring().index(order_no),
            created_at=now,
            expires_at=expires_at,
        )
        self._s.add(row)
        await self._s.flush()
        return row.id

    async def claim(self, qr_id: int, user_id: str, now: datetime) -> ScanClaim:
        """The code's order for this customer: the first scanner claims it; the same customer
        may scan again; anyone else is refused (``used``)."""
        row = await self._s.get(OrderQr, qr_id, with_for_update=True, populate_existing=True)
        if row is None:
            return ScanClaim(None, "unknown")
        if row.expires_at <= now:
            return ScanClaim(None, "expired")
        variants = keyring().index_variants(user_id)
        if row.claimed_by is not None and row.claimed_by not in variants:
            return ScanClaim(None, "used")
        if row.claimed_by is None:
            await self._s.execute(
                update(OrderQr)
                .where(OrderQr.id == qr_id, OrderQr.claimed_by.is_(None))
                .values(claimed_by=variants[0], claimed_at=now)
            )
        return ScanClaim(row.order_no)

    async def purge_before(self, cutoff: datetime) -> int:
        result = await self._s.execute(delete(OrderQr).where(OrderQr.expires_at < cutoff))
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def count(self) -> int:
        return len(list(await self._s.scalars(select(OrderQr.id))))
