"""Guessing limits that hold across customers: failed verifications per order."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.crypto import keyring
from storage.db import dialect_insert, run, table_of
from storage.models import OrderGuard


def order_key(order_no: str) -> str:
    """The order as the guards keep it: an HMAC blind index (a plain hash of a number as
    short as an order number could be reversed by trying them all)."""
    return keyring().index(f"order-guard\x00{order_no}")


_GUARDS = table_of(OrderGuard)
_LOCKED_UNTIL = select(_GUARDS.c.locked_until).where(_GUARDS.c.order_key == bindparam("key"))
_FORGET_FAILURES = delete(_GUARDS).where(
    _GUARDS.c.order_key == bindparam("key"),
    _GUARDS.c.locked_until.is_(None) | (_GUARDS.c.locked_until <= bindparam("now")),
)


class OrderGuardRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def locked_until(self, order_no: str, now: datetime) -> datetime | None:
        """When the order's lock ends, if it is locked now."""
        key = {"key": order_key(order_no)}
        until: datetime | None = (await run(self._s, _LOCKED_UNTIL, key)).scalar()
        return until if until is not None and until > now else None

    async def failed(
        self,
        order_no: str,
        now: datetime,
        *,
        threshold: int,
        window: timedelta,
        lock: timedelta,
    ) -> datetime | None:
        """Counts a failed verification; returns the lock's end if this failure locks it."""
        key = order_key(order_no)
        await self._s.execute(
            dialect_insert(self._s, OrderGuard)
            .values(order_key=key, failures=0, window_start=now, locked_until=None)
            .on_conflict_do_nothing(index_elements=["order_key"])
        )
        guard = await self._s.scalar(
            select(OrderGuard)
            .where(OrderGuard.order_key == key)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        assert guard is not None
        if now - guard.window_start > window:  # old failures no longer count
            guard.failures, guard.window_start = 0, now
        guard.failures += 1
        if guard.failures >= threshold:
            guard.failures, guard.window_start = 0, now
            guard.locked_until = now + lock
            await self._s.flush()
            return guard.locked_until
        await self._s.flush()
        return None

    async def succeeded(self, order_no: str, now: datetime) -> None:
        """The owner proved it: earlier failures are forgotten (a running lock stays)."""
        await run(self._s, _FORGET_FAILURES, {"key": order_key(order_no), "now": now})

    async def purge_before(self, cutoff: datetime) -> int:
        result = await self._s.execute(
            delete(OrderGuard).where(
                OrderGuard.window_start < cutoff,
                (OrderGuard.locked_until.is_(None)) | (OrderGuard.locked_until < cutoff),
            )
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
