"""The handoff queue: conversations the bot passed to a person, each with a reference number."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from storage.models import Agent, Conversation, Handoff
from storage.records import HELD_STATUSES, OPEN_STATUSES, HandoffRecord, HandoffStatus

# Crockford-style alphabet: no 0/O or 1/I/L, so a reference read aloud over the phone survives.
REF_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
# The queue's order, in one place: higher priority first, then first come, first served.
QUEUE_ORDER = (Handoff.priority.desc(), Handoff.created_at, Handoff.id)
NEW_PER_HOUR = 3  # handoffs a conversation may open in an hour before cancelled ones are reused
SEARCH_LIMIT = 50
SEARCH_MIN_CHARS = 2  # shorter text would match most of the table
SEARCH_MAX_CHARS = 64
TAIL_CHARS = 4  # an order's tail: its last four characters (bot.privacy.masking.order_tail)


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

    # -- the agents' side: reading -------------------------------------------------------

    async def get(self, handoff_id: int) -> HandoffRecord | None:
        rows = await self._select(Handoff.id == handoff_id)
        return rows[0] if rows else None

    async def lock(self, handoff_id: int) -> HandoffRecord | None:
        """The handoff, its row locked for the rest of the transaction. Lock its conversation
        first (the engine's order), so an agent's action and a customer's message never wait
        on each other in a cycle."""
        rows = await self._select(Handoff.id == handoff_id, lock=True)
        return rows[0] if rows else None

    async def conversation_of(self, handoff_id: int) -> int | None:
        return await self._s.scalar(select(Handoff.conversation_id).where(Handoff.id == handoff_id))

    async def waiting(self) -> list[HandoffRecord]:
        """The queue: waiting handoffs, the next to be taken first."""
        return await self._select(Handoff.status == HandoffStatus.WAITING)

    async def held(self, agent_id: int | None = None) -> list[HandoffRecord]:
        """Handoffs an agent holds (answering, or parked for the customer), the longest held
        first; one agent's, or everyone's."""
        where: ColumnElement[bool] = Handoff.status.in_(HELD_STATUSES)
        if agent_id is not None:
            where = where & (Handoff.claimed_by == agent_id)
        return await self._select(where, order=(Handoff.claimed_at, Handoff.id))

    async def created_since(self, since: datetime) -> list[HandoffRecord]:
        return await self._select(Handoff.created_at >= since, order=(Handoff.id,))

    async def search(
        self, text: str, resolved_since: datetime, *, limit: int = SEARCH_LIMIT
    ) -> list[HandoffRecord]:
        """Open handoffs, and those resolved since ``resolved_since``, that ``text`` names:
        by reference (with or without '#', or its start), by order tail (as masked, "****3456",
        or its last digits), or by the name (or its start) of the agent who holds or held it;
        in any case. The newest first, at most ``limit``. Text shorter than two characters
        finds nothing."""
        words = "".join(text.split()).lstrip("#＃").replace("*", "")
        if not SEARCH_MIN_CHARS <= len(words) <= SEARCH_MAX_CHARS:
            return []
        upper, lower = words.upper(), words.lower()
        names = select(Agent.id).where(func.lower(Agent.name).startswith(lower, autoescape=True))
        named: ColumnElement[bool] = (
            func.upper(Handoff.ref).startswith(upper, autoescape=True)
            | Handoff.claimed_by.in_(names)
            | func.lower(Handoff.dropped_by).startswith(lower, autoescape=True)
        )
        if len(upper) <= TAIL_CHARS:  # longer text is no tail (a reference ends in digits too)
            named = named | func.upper(Handoff.order_tail).endswith(upper, autoescape=True)
        recent = Handoff.status.in_(OPEN_STATUSES) | (
            (Handoff.status == HandoffStatus.RESOLVED) & (Handoff.resolved_at >= resolved_since)
        )
        return await self._select(
            recent & named, order=(Handoff.created_at.desc(), Handoff.id.desc()), limit=limit
        )

    async def expired_leases(self, now: datetime) -> list[int]:
        """Claimed handoffs whose lease ran out before ``now`` (their agent stopped answering)."""
        return list(
            await self._s.scalars(
                select(Handoff.id)
                .where(Handoff.status == HandoffStatus.CLAIMED, Handoff.lease_until < now)
                .order_by(Handoff.id)
            )
        )

    # -- the agents' side: changing hands ----------------------------------------------------
    # Each change is one UPDATE whose WHERE states what must still be true, and the row count
    # says whether it was: a claim raced by another agent changes nothing and returns False.

    async def claim(
        self, handoff_id: int, agent_id: int, now: datetime, lease_until: datetime
    ) -> bool:
        """A waiting handoff goes to the agent, under a lease; ``False`` if it was not waiting."""
        return await self._take(handoff_id, agent_id, now, lease_until, (HandoffStatus.WAITING,))

    async def transfer(
        self, handoff_id: int, agent_id: int, now: datetime, lease_until: datetime
    ) -> bool:
        """An open handoff goes to the agent, under a lease; ``False`` if it was closed."""
        return await self._take(handoff_id, agent_id, now, lease_until, OPEN_STATUSES)

    async def release(self, handoff_id: int, now: datetime, dropped_by: str | None) -> bool:
        """A claim whose lease lapsed before ``now`` goes back to the queue, one priority up,
        with a note of who dropped it; ``False`` if it was renewed or closed meanwhile."""
        return await self._change(
            (Handoff.id == handoff_id)
            & (Handoff.status == HandoffStatus.CLAIMED)
            & (Handoff.lease_until < now),
            status=HandoffStatus.WAITING,
            claimed_by=None,
            lease_until=None,
            priority=Handoff.priority + 1,
            dropped_by=dropped_by,
        )

    async def extend_lease(self, handoff_id: int, until: datetime) -> bool:
        """A running lease lasts at least until ``until``; no lease is started."""
        return await self._change(
            (Handoff.id == handoff_id)
            & Handoff.lease_until.is_not(None)
            & (Handoff.lease_until < until),
            lease_until=until,
        )

    async def answered(self, handoff_id: int, now: datetime) -> bool:
        """The agent answered: nothing is owed (no lease) until the customer writes again.
        The first answer's time is kept."""
        return await self._change(
            (Handoff.id == handoff_id) & Handoff.status.in_(HELD_STATUSES),
            first_response_at=func.coalesce(Handoff.first_response_at, now),
            lease_until=None,
        )

    async def park(self, handoff_id: int) -> bool:
        """A held handoff waits for the customer (WeChat will not deliver until they write)."""
        return await self._change(
            (Handoff.id == handoff_id) & Handoff.status.in_(HELD_STATUSES),
            status=HandoffStatus.WAITING_CUSTOMER,
        )

    async def close(self, handoff_id: int, status: HandoffStatus, now: datetime) -> bool:
        """An open handoff ends (resolved, returned to the bot…); ``False`` if it had ended."""
        resolved = {"resolved_at": now} if status is HandoffStatus.RESOLVED else {}
        return await self._change(
            (Handoff.id == handoff_id) & Handoff.status.in_(OPEN_STATUSES),
            status=status,
            lease_until=None,
            closed_at=now,
            **resolved,
        )

    async def start_leases(self, agent_id: int, until: datetime) -> int:
        """What the agent holds without a running lease gets one; returns how many."""
        result = await self._s.execute(
            update(Handoff)
            .where(
                Handoff.claimed_by == agent_id,
                Handoff.status.in_(HELD_STATUSES),
                Handoff.lease_until.is_(None),
            )
            .values(lease_until=until)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def lapse_leases(self, agent_id: int, now: datetime) -> int:
        """Everything the agent holds, answering or parked, is owed a reply with a lease that
        ends ``now``: the lapse sweep (``release``) then returns it to the queue as any lapsed
        claim (a disabled login holds nothing). Returns how many."""
        result = await self._s.execute(
            update(Handoff)
            .where(Handoff.claimed_by == agent_id, Handoff.status.in_(HELD_STATUSES))
            .values(status=HandoffStatus.CLAIMED, lease_until=now)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def wake(self, conversation_id: int, lease_until: datetime) -> int | None:
        """The customer wrote: the agent holding the conversation owes a reply again (a new
        lease) and a parked handoff is claimed again. Returns its id, or ``None`` if nobody
        holds the conversation. The caller holds the conversation's row."""
        handoff_id = await self._s.scalar(
            select(Handoff.id).where(
                Handoff.conversation_id == conversation_id, Handoff.status.in_(HELD_STATUSES)
            )
        )
        if handoff_id is None:
            return None
        await self._change(
            (Handoff.id == handoff_id) & Handoff.status.in_(HELD_STATUSES),
            status=HandoffStatus.CLAIMED,
            lease_until=lease_until,
        )
        return handoff_id

    async def _take(
        self,
        handoff_id: int,
        agent_id: int,
        now: datetime,
        lease_until: datetime,
        from_statuses: Sequence[HandoffStatus],
    ) -> bool:
        return await self._change(
            (Handoff.id == handoff_id) & Handoff.status.in_(from_statuses),
            status=HandoffStatus.CLAIMED,
            claimed_by=agent_id,
            claimed_at=func.coalesce(Handoff.claimed_at, now),
            lease_until=lease_until,
        )

    async def _change(self, where: ColumnElement[bool], **values: object) -> bool:
        result = await self._s.execute(
            update(Handoff)
            .where(where)
            .values(**values)
            .execution_options(synchronize_session=False)  # records are read afresh
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def _select(
        self,
        where: ColumnElement[bool],
        *,
        order: Sequence[ColumnElement[Any] | InstrumentedAttribute[Any]] = QUEUE_ORDER,
        lock: bool = False,
        limit: int | None = None,
    ) -> list[HandoffRecord]:
        query = (
            select(Handoff, Conversation.channel, Conversation.user_id)
            .join(Conversation, Conversation.id == Handoff.conversation_id)
            .where(where)
            .order_by(*order)
            .execution_options(populate_existing=True)  # changes above skip the session
        )
        if lock:
            query = query.with_for_update(of=Handoff)
        if limit is not None:
            query = query.limit(limit)
        rows = await self._s.execute(query)
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
                claimed_by=h.claimed_by,
                claimed_at=h.claimed_at,
                lease_until=h.lease_until,
                dropped_by=h.dropped_by,
                first_response_at=h.first_response_at,
                resolved_at=h.resolved_at,
                closed_at=h.closed_at,
                notified_position=h.notified_position,
            )
            for h, channel, user_id in rows
        ]
