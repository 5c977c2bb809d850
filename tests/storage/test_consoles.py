"""Open consoles in the database (one row per live feed), on SQLite and PostgreSQL: counted
while their heartbeat is fresh, forgotten once it is stale."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import FakeClock
from storage.models import Agent
from storage.repositories import Repositories

Sessions = async_sessionmaker[AsyncSession]
BEAT = timedelta(seconds=30)


async def agents(sessions: Sessions, clock: FakeClock, *names: str) -> list[int]:
    async with sessions() as s, s.begin():
        made = [await Repositories.on(s).agents.create(n, "agent", "-", clock.now()) for n in names]
    return [a.id for a in made if a is not None]


async def live(sessions: Sessions, agent_id: int, since: timedelta, clock: FakeClock) -> int:
    async with sessions() as s:
        return await Repositories.on(s).consoles.live(agent_id, clock.now() - since)


async def test_consoles_count_per_agent_until_closed(sessions: Sessions, clock: FakeClock) -> None:
    alice, bob = await agents(sessions, clock, "alice", "bob")
    async with sessions() as s, s.begin():
        consoles = Repositories.on(s).consoles
        await consoles.beat("tab-1", alice, "host:1", clock.now())
        await consoles.beat("tab-2", alice, "host:2", clock.now())
        await consoles.beat("tab-3", bob, "host:2", clock.now())
    assert await live(sessions, alice, 3 * BEAT, clock) == 2
    async with sessions() as s, s.begin():
        await Repositories.on(s).consoles.close("tab-1")
        await Repositories.on(s).consoles.close("tab-1")  # twice: nothing more happens
    assert await live(sessions, alice, 3 * BEAT, clock) == 1
    assert await live(sessions, bob, 3 * BEAT, clock) == 1


async def test_a_console_without_heartbeat_goes_stale_and_is_forgotten(
    sessions: Sessions, clock: FakeClock
) -> None:
    alice, bob = await agents(sessions, clock, "alice", "bob")
    async with sessions() as s, s.begin():
        consoles = Repositories.on(s).consoles
        await consoles.beat("dead-1", alice, "killed:1", clock.now())
        await consoles.beat("dead-2", alice, "killed:1", clock.now())
        await consoles.beat("alive", bob, "host:2", clock.now())
    for _ in range(4):  # only bob's worker keeps beating
        clock.advance(BEAT)
        async with sessions() as s, s.begin():
            await Repositories.on(s).consoles.beat("alive", bob, "host:2", clock.now())
    assert await live(sessions, alice, 3 * BEAT, clock) == 0  # stale: not counted
    async with sessions() as s, s.begin():
        assert await Repositories.on(s).consoles.forget_stale(clock.now() - 3 * BEAT) == [alice]
    async with sessions() as s, s.begin():
        assert await Repositories.on(s).consoles.forget_stale(clock.now() - 3 * BEAT) == []
    assert await live(sessions, bob, 3 * BEAT, clock) == 1


async def test_a_heartbeat_brings_back_a_console_forgotten_while_its_worker_stalled(
    sessions: Sessions, clock: FakeClock
) -> None:
    [alice] = await agents(sessions, clock, "alice")
    async with sessions() as s, s.begin():
        await Repositories.on(s).consoles.beat("tab", alice, "host:1", clock.now())
    clock.advance(4 * BEAT)
    async with sessions() as s, s.begin():
        assert await Repositories.on(s).consoles.forget_stale(clock.now() - 3 * BEAT) == [alice]
        await Repositories.on(s).consoles.beat("tab", alice, "host:1", clock.now())
    assert await live(sessions, alice, 3 * BEAT, clock) == 1


async def test_closing_an_agents_console_holds_the_agent_until_it_commits(
    sessions: Sessions, clock: FakeClock, db_url: str
) -> None:
    """Two of an agent's consoles closing together take turns: each holds the agent's row,
    so neither counts the other's row as live while that one is being deleted."""
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite runs one write transaction at a time (BEGIN IMMEDIATE): no row lock")
    [alice] = await agents(sessions, clock, "alice")
    async with sessions() as s, s.begin():
        await Repositories.on(s).consoles.hold_agent(alice)
        async with sessions() as other, other.begin():
            with pytest.raises(DBAPIError, match="lock"):  # held: another close must wait
                await other.execute(
                    select(Agent.id).where(Agent.id == alice).with_for_update(nowait=True)
                )
    async with sessions() as other, other.begin():  # committed: free again
        await other.execute(select(Agent.id).where(Agent.id == alice).with_for_update(nowait=True))
