"""The conversion funnel: from the recorded steps of each journey to the figures operators read.

One report shape serves ``billbot report funnel`` (table or JSON) and the console's Funnel page.
Each step's conversion is measured from the step it follows: the main path runs started →
consent_shown → consented → order_found → verified → card_issued → card_opened → contact_added;
``declined`` branches off consent_shown; ``handed_off`` and ``abandoned`` off started.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.records import FunnelStep
from storage.repositories import FunnelRepository

CHINA = timezone(timedelta(hours=8))
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)

PREVIOUS: dict[FunnelStep, FunnelStep | None] = {
    FunnelStep.STARTED: None,
    FunnelStep.CONSENT_SHOWN: FunnelStep.STARTED,
    FunnelStep.CONSENTED: FunnelStep.CONSENT_SHOWN,
    FunnelStep.DECLINED: FunnelStep.CONSENT_SHOWN,
    FunnelStep.ORDER_FOUND: FunnelStep.CONSENTED,
    FunnelStep.VERIFIED: FunnelStep.ORDER_FOUND,
    FunnelStep.CARD_ISSUED: FunnelStep.VERIFIED,
    FunnelStep.CARD_OPENED: FunnelStep.CARD_ISSUED,
    FunnelStep.CONTACT_ADDED: FunnelStep.CARD_OPENED,
    FunnelStep.HANDED_OFF: FunnelStep.STARTED,
    FunnelStep.ABANDONED: FunnelStep.STARTED,
}


@dataclass(frozen=True)
class StepFigure:
    name: str
    count: int
    conversion: float  # from the previous step, 0.0–1.0 (1.0 for started)
    drop_off: int  # journeys at the previous step that did not reach this one
    previous: str | None


@dataclass(frozen=True)
class FunnelReport:
    since: str | None
    until: str | None
    steps: list[StepFigure]
    time_to_card_seconds: dict[str, float | None]
    abandoned_at: dict[str, int]
    contacts_lost: int = 0  # contacts added through a card and deleted later
    by_channel: dict[str, dict[str, int]] = field(default_factory=dict)
    by_verify_mode: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, step: FunnelStep) -> int:
        return next(s.count for s in self.steps if s.name == step.value)


def day_start(day: date) -> datetime:
    """Midnight in China, where merchants' days begin, as an aware UTC time."""
    return datetime.combine(day, time(0), CHINA).astimezone(UTC)


def nearest_rank(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


async def funnel_report(
    sessions: async_sessionmaker[AsyncSession],
    since: date | None = None,
    until: date | None = None,
) -> FunnelReport:
    """Journeys started from ``since`` to ``until`` (both whole days, China time, inclusive)."""
    begin = day_start(since) if since else EPOCH
    end = day_start(until + timedelta(days=1)) if until else FAR_FUTURE
    async with sessions() as session:
        repo = FunnelRepository(session)
        counts = await repo.counts(begin, end)
        to_card = await repo.seconds_to_card(begin, end)
    totals: Counter[FunnelStep] = Counter()
    channels: dict[str, Counter[str]] = defaultdict(Counter)
    modes: dict[str, Counter[str]] = defaultdict(Counter)
    abandoned: Counter[str] = Counter()
    for row in counts:
        totals[row.step] += row.journeys
        channels[row.channel][row.step.value] += row.journeys
        modes[row.verify_mode][row.step.value] += row.journeys
        if row.step is FunnelStep.ABANDONED:
            abandoned[row.stopped_at or FunnelStep.STARTED.value] += row.journeys
    steps = []
    for step in PREVIOUS:
        before = PREVIOUS[step]
        base = totals[before] if before else totals[step]
        steps.append(
            StepFigure(
                name=step.value,
                count=totals[step],
                conversion=round(totals[step] / base, 4) if base else 0.0,
                drop_off=max(0, base - totals[step]) if before else 0,
                previous=before.value if before else None,
            )
        )
    order = [s.value for s in PREVIOUS]

    def ordered(counter: Counter[str]) -> dict[str, int]:
        return {name: counter[name] for name in order if counter[name]}

    return FunnelReport(
        since=since.isoformat() if since else None,
        until=until.isoformat() if until else None,
        steps=steps,
        time_to_card_seconds={
            "median": statistics.median(to_card) if to_card else None,
            "p90": nearest_rank(to_card, 0.9),
            "journeys": len(to_card),
        },
        abandoned_at=ordered(abandoned),
        contacts_lost=totals[FunnelStep.CONTACT_LOST],
        by_channel={name: ordered(c) for name, c in sorted(channels.items())},
        by_verify_mode={name: ordered(c) for name, c in sorted(modes.items())},
    )


# Branches off the main path: their "drop-off" means nothing to a reader, so tables leave it out.
SIDE_STEPS = frozenset({"declined", "handed_off", "abandoned"})

STEP_LABELS: dict[str, tuple[str, str]] = {
    "started": ("开始对话", "started"),
    "consent_shown": ("看到授权说明", "consent shown"),
    "consented": ("同意授权", "consented"),
    "declined": ("拒绝授权", "declined"),
    "order_found": ("找到订单", "order found"),
    "verified": ("验证通过", "verified"),
    "card_issued": ("发出名片", "card issued"),
    "card_opened": ("打开名片", "card opened"),
    "contact_added": ("添加联系人", "contact added"),
    "handed_off": ("转人工", "handed off"),
    "abandoned": ("中途离开", "abandoned"),
}
