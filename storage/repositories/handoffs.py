"""The handoff queue: conversations the bot passed to a person, each with a reference number."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Conversation, Handoff
from storage.records import OPEN_STATUSES, HandoffRecord, HandoffStatus

# Crockford-style alphabet: no 0/O or 1/I/L, so a reference read aloud over the phone survives.
REF_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
# The queue's order, in one place: higher priority first, then first come, first served.
QUEUE_ORDER = (Handoff.priority.desc(), Handoff.created_at, Handoff.id)
NEW_PER_HOUR = 3  # handoffs a conversation may open in an hour before cancelled ones are reused


def new_ref() -> str:
    return "".join(secrets.choice(REF_ALPHABET) for _ in range(8))


class HandoffRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def open_for(self, conversation_id: int) -> HandoffRecord | None:
        rows = await self._select(
            (Handoff.conversation_id == conversation_id) & Handoff.status.in_(OPEN_STATUSES)
        )
        return rows[0] if rows else None

    async def create(
        self,
        conversation_id: int,
        reason: str,
        now: datetime,
        *,
        order_tail: str | None,
        amount_confirmed: bool,
        failures: int,
        priority: int = 0,
    ) -> HandoffRecord:
        """Opens a handoff (or returns the one already open for this conversation).

        A customer who keeps asking and cancelling gets their latest cancelled handoff back
        once they have opened ``NEW_PER_HOUR`` in the last hour, so the table cannot grow
        without bound; they are still queued, at the back.
        """
        existing = await self.open_for(conversation_id)
        if existing is not None:
            return existing
        recent = list(
            await self._s.scalars(
                select(Handoff)
                .where(
                    Handoff.conversation_id == conversation_id,
                    Handoff.created_at >= now - timedelta(hours=1),
                )
                .order_by(Handoff.id.desc())
            )
        )
        cancelled = [h for h in recent if h.status == HandoffStatus.CANCELLED]
        if len(recent) >= NEW_PER_HOUR and cancelled:
            await self._s.execute(
                update(Handoff)
                .where(Handoff.id == cancelled[0].id)
                .values(
                    status=HandoffStatus.WAITING,
                    reason=reason,
                    priority=priority,
                    order_tail=order_tail,
                    amount_confirmed=amount_confirmed,
                    failures=failures,
                    created_at=now,
                    closed_at=None,
                    claimed_by=None,
                    claimed_at=None,
                    lease_until=None,
                    dropped_by=None,
                    first_response_at=None,
                    resolved_at=None,
                    notified_position=None,
                )
                .execution_options(synchronize_session=False)
            )
            reopened = await self.open_for(conversation_id)
            assert reopened is not None
            return reopened
        for _ in range(5):
            row = Handoff(
                ref=new_ref(),
                conversation_id=conversation_id,
                reason=reason,
                status=HandoffStatus.WAITING,
                priority=priority,
                order_tail=order_tail,
                amount_confirmed=amount_confirmed,
                failures=failures,
                created_at=now,
            )
            try:
                async with self._s.begin_nested():
                    self._s.add(row)
            except IntegrityError:  # a reference collision: draw again
                continue
            created = await self.open_for(conversation_id)
            assert created is not None
            return created
        raise RuntimeError("could not draw a unique handoff reference in 5 tries")

    async def position(self, handoff_id: int) -> int:
        """1 for the next to be taken: by priority, then the oldest (the console's order)."""
        me = await self._s.get(Handoff, handoff_id)
        if me is None or me.status != HandoffStatus.WAITING:
            return 0
        ahead = await self._s.scalar(
            select(func.count())
            .select_from(Handoff)
            .where(
                Handoff.status == HandoffStatus.WAITING,
                (Handoff.priority > me.priority)
                | (
                    (Handoff.priority == me.priority)
                    & (
                        (Handoff.created_at < me.created_at)
                        | ((Handoff.created_at == me.created_at) & (Handoff.id < me.id))
                    )
                ),
            )
        )
        return int(ahead or 0) + 1

    async def mark_notified(self, handoff_id: int, position: int) -> None:
        await self._s.execute(
            update(Handoff).where(Handoff.id == handoff_id).values(notified_position=position)
        )

    async def close_open(self, conversation_id: int, status: str, now: datetime) -> None:
        await self._s.execute(
            update(Handoff)
            .where(Handoff.conversation_id == conversation_id, Handoff.status.in_(OPEN_STATUSES))
            .values(status=status, closed_at=now)
        )

    async def purge_cancelled(self, before: datetime) -> int:
        """Cancelled handoffs closed before ``before`` are deleted (retention)."""
        result = await self._s.execute(
            delete(Handoff).where(
                Handoff.status == HandoffStatus.CANCELLED, Handoff.closed_at < before
            )
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def count_waiting(self) -> int:
        """Handoffs waiting for an agent (not yet claimed)."""
        return int(
            await self._s.scalar(
                select(func.count())
                .select_from(Handoff)
                .where(Handoff.status == HandoffStatus.WAITING)
            )
            or 0
        )

    async def list_open(self) -> list[HandoffRecord]:
        return await self._select(Handoff.status.in_(OPEN_STATUSES))

    async def _select(self, where: object) -> list[HandoffRecord]:
        rows = await self._s.execute(
            select(Handoff, Conversation.channel, Conversation.user_id)
            .join(Conversation, Conversation.id == Handoff.conversation_id)
            .where(where)  # type: ignore[arg-type]
            .order_by(*QUEUE_ORDER)
        )
        return [
            HandoffRecord(
                id=h.id,
                ref=h.ref,
                conversation_id=h.conversation_id,
                channel=channel,
                user_id=user_id,
                reason=h.reason,
                status=HandoffStatus(h.status),
                priority=h.priority,
                order_tail=h.order_tail,
                amount_confirmed=h.amount_confirmed,
                failures=h.failures,
                created_at=h.created_at,
            )
            for h, channel, user_id in rows
        ]
