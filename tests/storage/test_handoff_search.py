"""Finding a handoff by what people quote: the service reference, the masked order tail, or
the agent who has or had it; over open handoffs and those resolved in the last seven days.
On SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import FakeClock
from bot.handoff.events import EventBus
from bot.handoff.queue import AgentView, HandoffService
from storage.models import Handoff
from storage.records import HandoffRecord, HandoffStatus
from storage.repositories import Repositories
from storage.repositories.handoffs import SEARCH_LIMIT

Sessions = async_sessionmaker[AsyncSession]
WEEK = timedelta(days=7)


@dataclass
class Desk:
    sessions: Sessions
    clock: FakeClock
    agents: dict[str, int]
    customers: int = 0

    async def open(self, tail: str | None, *, ref: str | None = None) -> int:
        """A customer's handoff, waiting, created now; returns its id."""
        self.customers += 1
        now = self.clock.now()
        async with self.sessions() as s, s.begin():
            repos = Repositories.on(s)
            conv = await repos.conversations.load_for_update(
                "wechat", f"u{self.customers:04d}", "new", now, now + timedelta(hours=72)
            )
            h = await repos.handoffs.create(
                conv.id, "asked", now, order_tail=tail, amount_confirmed=False, failures=0
            )
            if ref is not None:
                await s.execute(update(Handoff).where(Handoff.id == h.id).values(ref=ref))
        return h.id

    async def claim(self, handoff_id: int, agent: str) -> None:
        now, agent_id = self.clock.now(), self.agents[agent]
        async with self.sessions() as s, s.begin():
            handoffs = Repositories.on(s).handoffs
            assert await handoffs.claim(handoff_id, agent_id, now, now + timedelta(days=1))

    async def close(self, handoff_id: int, status: HandoffStatus) -> None:
        async with self.sessions() as s, s.begin():
            assert await Repositories.on(s).handoffs.close(handoff_id, status, self.clock.now())

    async def lapse(self, handoff_id: int, agent: str) -> None:
        later = self.clock.now() + timedelta(days=2)
        async with self.sessions() as s, s.begin():
            assert await Repositories.on(s).handoffs.release(handoff_id, later, agent)

    async def search(self, text: str) -> list[HandoffRecord]:
        async with self.sessions() as s:
            return await Repositories.on(s).handoffs.search(text, self.clock.now() - WEEK)

    async def found(self, text: str) -> list[int]:
        return [h.id for h in await self.search(text)]


@pytest.fixture
async def desk(sessions: Sessions, clock: FakeClock) -> Desk:
    agents = {}
    async with sessions() as s, s.begin():
        for name in ("Alice", "Bob", "张伟"):
            agent = await Repositories.on(s).agents.create(name, "agent", "-", clock.now())
            assert agent is not None
            agents[name] = agent.id
    return Desk(sessions, clock, agents)


async def test_by_reference_as_customers_quote_it(desk: Desk) -> None:
    wanted = await desk.open("3456", ref="K7MQ2XPA")
    await desk.open("3456", ref="HN4RT8WB")
    for said in ("K7MQ2XPA", "#K7MQ2XPA", "k7mq2xpa", " #k7mq 2xpa ", "＃K7MQ2XPA", "K7MQ"):
        assert await desk.found(said) == [wanted], said
    assert await desk.found("K7MQ2XPB") == []


async def test_by_masked_order_tail(desk: Desk) -> None:
    wanted = await desk.open("3456")
    await desk.open("7890")
    await desk.open(None)
    for said in ("3456", "****3456", "456", "56"):
        assert await desk.found(said) == [wanted], said
    assert await desk.found("3457") == []


async def test_by_the_agent_who_holds_or_held_it(desk: Desk) -> None:
    held = await desk.open("1111")
    dropped = await desk.open("2222")
    resolved = await desk.open("3333")
    await desk.claim(held, "Alice")
    await desk.claim(dropped, "Bob")
    await desk.lapse(dropped, "Bob")  # back in the queue: only the row's note names Bob
    await desk.claim(resolved, "Bob")
    await desk.close(resolved, HandoffStatus.RESOLVED)
    assert await desk.found("alice") == [held]
    assert sorted(await desk.found("BOB")) == sorted([dropped, resolved])
    assert await desk.found("Bo") == await desk.found("bob")
    await desk.claim(await desk.open("4444"), "张伟")
    assert len(await desk.found("张伟")) == 1


async def test_open_and_resolved_within_a_week_only(desk: Desk) -> None:
    old = await desk.open("5555")
    await desk.close(old, HandoffStatus.RESOLVED)
    desk.clock.advance(timedelta(days=3))
    recent = await desk.open("5555")
    await desk.close(recent, HandoffStatus.RESOLVED)
    cancelled = await desk.open("5555")
    await desk.close(cancelled, HandoffStatus.CANCELLED)
    waiting = await desk.open("5555")
    desk.clock.advance(timedelta(days=4, seconds=1))  # old: 7 days and a second ago
    found = await desk.search("5555")
    assert [h.id for h in found] == [waiting, recent]
    assert found[1].status == HandoffStatus.RESOLVED and found[1].resolved_at is not None


async def test_newest_first_and_at_most_fifty(desk: Desk) -> None:
    ids = []
    for _ in range(SEARCH_LIMIT + 5):
        ids.append(await desk.open("6666"))
        desk.clock.advance(timedelta(seconds=1))
    assert await desk.found("6666") == ids[::-1][:SEARCH_LIMIT]


@pytest.mark.parametrize("said", ["", "   ", "#", "3", "#A", "****", "**6*", "%", "_"])
async def test_too_little_text_finds_nothing(desk: Desk, said: str) -> None:
    await desk.open("6666", ref="A6666666")
    assert await desk.found(said) == []


@pytest.mark.parametrize("said", ["%%", "__", "%6", "_6"])
async def test_wildcards_are_only_characters(desk: Desk, said: str) -> None:
    await desk.open("6666", ref="A6666666")
    assert await desk.found(said) == []


async def test_the_service_returns_queue_rows_with_status_and_resolved_time(
    desk: Desk, sessions: Sessions, clock: FakeClock
) -> None:
    service = HandoffService(sessions, clock, None, EventBus())
    mine, theirs = await desk.open("8888"), await desk.open("8888")
    await desk.claim(mine, "Alice")
    await desk.claim(theirs, "Bob")
    await desk.close(theirs, HandoffStatus.RESOLVED)
    async with sessions() as s, s.begin():
        repos = Repositories.on(s)
        for handoff_id in (mine, theirs):
            conv = await repos.handoffs.conversation_of(handoff_id)
            assert conv is not None
            await repos.transcript.add_line(conv, "in", "customer", "我的订单 8888", clock.now())
    alice = AgentView(desk.agents["Alice"], "Alice", "agent")
    admin = AgentView(0, "root", "admin")
    rows = await service.search(alice, "****8888")
    assert [(r.id, r.status) for r in rows] == [(theirs, "resolved"), (mine, "claimed")]
    assert rows[0].resolved_at == clock.now() and rows[1].resolved_at is None
    assert rows[0].order == "****8888" and rows[1].claimed_by == "Alice"
    assert rows[0].last_messages == [] and rows[1].last_messages != []  # Bob's stays Bob's
    assert all(r.last_messages for r in await service.search(admin, "8888"))
    assert await service.search(alice, "8") == []
    later = clock.now() + WEEK + timedelta(seconds=1)
    assert [r.id for r in await service.search(alice, "8888", later)] == [mine]
