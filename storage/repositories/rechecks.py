"""Order rechecks: unknown but well-formed order numbers, looked up again for a while.

Several workers may run the recheck job at once. A worker claims the due rows in a short
transaction by moving their ``next_at`` on: PostgreSQL skips rows another worker is claiming
(``FOR UPDATE SKIP LOCKED``), SQLite serialises writers (every transaction begins IMMEDIATE),
so each due recheck goes to one worker per round. A worker that dies mid-round loses nothing:
the row simply comes due again when its claim runs out.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.crypto import keyring
from storage.models import OrderRecheck
from storage.records import RecheckOutcome, RecheckRecord


def _record(row: OrderRecheck) -> RecheckRecord:
    return RecheckRecord(
        id=row.id,
        conversation_id=row.conversation_id,
        channel=row.channel,
        order_no=row.order_no,
        created_at=row.created_at,
        next_at=row.next_at,
        until=row.until,
    )


class RecheckRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def schedule(
        self,
        conversation_id: int,
        channel: str,
        order_no: str,
        now: datetime,
        *,
        next_at: datetime,
        until: datetime,
    ) -> None:
        """Looks ``order_no`` up again from ``next_at`` until ``until``. A conversation has one
        open recheck: the same number keeps the running one (its deadline does not move on
        when the customer sends it again); another number replaces it. The caller holds the
        conversation's row (a turn), so two schedules for one conversation never race."""
        keys = keyring()
        current = await self._s.scalar(
            select(OrderRecheck)
            .where(OrderRecheck.conversation_id == conversation_id, OrderRecheck.done_at.is_(None))
            .with_for_update()
        )
        if current is not None:
            if current.order_index in keys.index_variants(order_no):
                return
            current.done_at, current.outcome = now, RecheckOutcome.REPLACED.value
            await self._s.flush()  # closed before the new one opens (one open per conversation)
        self._s.add(
            OrderRecheck(
                conversation_id=conversation_id,
                order_no=order_no,
                order_index=keys.index(order_no),
                channel=channel,
                created_at=now,
                next_at=next_at,
                until=until,
            )
        )
        await self._s.flush()

    async def open_for(self, conversation_id: int) -> RecheckRecord | None:
        row = await self._s.scalar(
            select(OrderRecheck).where(
                OrderRecheck.conversation_id == conversation_id, OrderRecheck.done_at.is_(None)
            )
        )
        return None if row is None else _record(row)

    async def claim_due(
        self, now: datetime, *, hold_until: datetime, limit: int
    ) -> list[RecheckRecord]:
        """Open rechecks due by ``now``, oldest first, claimed: their next look moves to
        ``hold_until``, so other workers pass them by (and they come due again then if this
        worker stops half-way). Commit the claim before working on them."""
        rows = list(
            await self._s.scalars(
                select(OrderRecheck)
                .where(OrderRecheck.done_at.is_(None), OrderRecheck.next_at <= now)
                .order_by(OrderRecheck.next_at, OrderRecheck.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
                .execution_options(populate_existing=True)
            )
        )
        for row in rows:
            row.next_at = hold_until
        await self._s.flush()
        return [_record(row) for row in rows]

    async def finish(self, recheck_id: int, outcome: RecheckOutcome, now: datetime) -> bool:
        """Closes the recheck if it is still open; True if this call closed it."""
        result = await self._s.execute(
            update(OrderRecheck)
            .where(OrderRecheck.id == recheck_id, OrderRecheck.done_at.is_(None))
            .values(done_at=now, outcome=outcome.value)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount) == 1  # type: ignore[attr-defined]

    async def reopen(self, recheck_id: int, next_at: datetime) -> None:
        """A recheck closed as found whose message could not be sent: look again at
        ``next_at``. The caller holds the conversation, unchanged since it was closed, so no
        other recheck was opened for it meanwhile."""
        await self._s.execute(
            update(OrderRecheck)
            .where(
                OrderRecheck.id == recheck_id,
                OrderRecheck.outcome == RecheckOutcome.FOUND.value,
            )
            .values(done_at=None, outcome=None, next_at=next_at)
            .execution_options(synchronize_session=False)
        )

    async def purge_done_before(self, cutoff: datetime) -> int:
        """Rechecks closed before ``cutoff`` are deleted (retention)."""
        result = await self._s.execute(
            delete(OrderRecheck).where(
                OrderRecheck.done_at.is_not(None), OrderRecheck.done_at < cutoff
            )
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
