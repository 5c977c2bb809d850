"""The funnel: each journey's steps as events, and the counts a report is made of."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.db import Upsert, dialect_insert, run, table_of
from storage.models import FunnelEvent
from storage.records import FunnelStep

_RECORD = Upsert(
    lambda insert: insert(table_of(FunnelEvent)).on_conflict_do_nothing(
        index_elements=["journey", "step"]
    )
)


@dataclass(frozen=True, slots=True)
class FunnelCount:
    step: FunnelStep
    channel: str
    verify_mode: str
    stopped_at: str | None
    journeys: int


class FunnelRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def record(
        self,
        journey: str,
        steps: Iterable[FunnelStep],
        channel: str,
        verify_mode: str,
        now: datetime,
        *,
        stopped_at: str | None = None,
    ) -> None:
        """Records steps of a journey; a step it already reached is kept as first recorded."""
        rows = [
            {
                "journey": journey,
                "step": step.value,
                "channel": channel,
                "verify_mode": verify_mode,
                "stopped_at": stopped_at,
                "at": now,
            }
            for step in dict.fromkeys(steps)
        ]
        if rows:
            await run(self._s, _RECORD.on(self._s), rows)

    async def record_later(self, journey: str, step: FunnelStep, now: datetime) -> bool:
        """A step outside a turn (card opened, contact added), with the journey's channel and
        verification mode; True if it is the journey's first of this step."""
        started = (
            await self._s.execute(
                select(FunnelEvent.channel, FunnelEvent.verify_mode).where(
                    FunnelEvent.journey == journey, FunnelEvent.step == FunnelStep.STARTED.value
                )
            )
        ).first()
        if started is None:
            return False
        result = await self._s.execute(
            dialect_insert(self._s, FunnelEvent)
            .values(
                journey=journey,
                step=step.value,
                channel=started.channel,
                verify_mode=started.verify_mode,
                at=now,
            )
            .on_conflict_do_nothing(index_elements=["journey", "step"])
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def counts(self, since: datetime, until: datetime) -> list[FunnelCount]:
        """Journeys per step, channel, mode (and stopping point), for journeys started in
        [since, until)."""
        start = aliased(FunnelEvent)
        rows = await self._s.execute(
            select(
                FunnelEvent.step,
                FunnelEvent.channel,
                FunnelEvent.verify_mode,
                FunnelEvent.stopped_at,
                func.count(),
            )
            .join(
                start,
                and_(
                    start.journey == FunnelEvent.journey,
                    start.step == FunnelStep.STARTED.value,
                ),
            )
            .where(start.at >= since, start.at < until)
            .group_by(
                FunnelEvent.step,
                FunnelEvent.channel,
                FunnelEvent.verify_mode,
                FunnelEvent.stopped_at,
            )
        )
        return [
            FunnelCount(FunnelStep(step), channel, mode, stopped, int(n))
            for step, channel, mode, stopped, n in rows
            if step in FunnelStep._value2member_map_
        ]

    async def seconds_to_card(self, since: datetime, until: datetime) -> list[float]:
        """For each journey started in [since, until) that got a card: seconds from its start."""
        start = aliased(FunnelEvent)
        rows = await self._s.execute(
            select(start.at, FunnelEvent.at)
            .join(
                start,
                and_(
                    start.journey == FunnelEvent.journey,
                    start.step == FunnelStep.STARTED.value,
                ),
            )
            .where(
                FunnelEvent.step == FunnelStep.CARD_ISSUED.value,
                start.at >= since,
                start.at < until,
            )
        )
        return sorted((card - began).total_seconds() for began, card in rows)
