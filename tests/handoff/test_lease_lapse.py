"""When a claim lapses, the agent who lost it is told why, in words, on whichever worker their
console is; the conversation's row keeps saying who dropped it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestServer

from bot.clock import FakeClock
from bot.handoff.events import LEASE_LAPSED, Event, EventBus
from bot.handoff.pg_events import PgEventBus
from bot.handoff.queue import HandoffService, lease_lapsed_event
from storage.records import HandoffStatus, Owner
from storage.repositories import ConversationRepository
from tests.conftest import POSTGRES_URL, SKIP_PG
from tests.handoff.desk import LEASE, Desk, Sessions, open_desk, user


def drain(listener: asyncio.Queue[Event]) -> list[Event]:
    events = []
    while not listener.empty():
        events.append(listener.get_nowait())
    return events


async def test_the_agent_who_lost_the_claim_is_told_why_and_only_they_are(desk: Desk) -> None:
    handoff = await desk.queued(user(1))
    loser, other = desk.agents[1], desk.agents[2]
    await desk.service.claim(loser, handoff)
    ref = (await desk.stored(handoff)).ref
    async with (
        desk.events.listen(loser.id) as theirs,
        desk.events.listen(other.id) as others,
        desk.events.listen() as everything,
    ):
        desk.clock.advance(LEASE + timedelta(seconds=1))
        assert await desk.service.release_expired_leases() == 1
        [told] = [e for e in drain(theirs) if e["type"] == LEASE_LAPSED]
        assert told == {
            "type": LEASE_LAPSED,
            "to_agent": loser.id,
            "handoff_id": handoff,
            "ref": ref,
            "lease_seconds": 120,
            "zh": f"2 分钟没有回复，会话 #{ref} 已回到队列，其他客服可以接手。",
            "en": f"No reply for 2 minutes: #{ref} went back to the queue for anyone to take.",
        }
        assert [e["type"] for e in drain(others)] == ["queue"]  # the queue changed, that's all
        assert LEASE_LAPSED in [e["type"] for e in drain(everything)]  # an unaddressed listener
    [back] = await desk.service.queue(other)
    assert back.dropped_by == loser.name
    taken = await desk.service.claim(other, handoff)
    assert taken.dropped_by == loser.name  # it keeps saying who dropped it


def test_the_words_carry_the_lease_the_server_runs_with() -> None:
    ten = lease_lapsed_event(7, 1, "ABCD2345", timedelta(minutes=10))
    assert ten["zh"].startswith("10 分钟没有回复，会话 #ABCD2345")
    assert ten["en"].startswith("No reply for 10 minutes: #ABCD2345")
    odd = lease_lapsed_event(7, 1, "ABCD2345", timedelta(seconds=90))
    assert odd["zh"].startswith("1 分 30 秒没有回复") and "for 1 min 30 s:" in odd["en"]
    assert "for 1 minute:" in lease_lapsed_event(7, 1, "R", timedelta(minutes=1))["en"]


async def test_a_renewed_claim_tells_nobody_anything(desk: Desk) -> None:
    handoff = await desk.queued(user(1))
    agent = desk.agents[1]
    await desk.service.claim(agent, handoff)
    async with desk.events.listen(agent.id) as theirs:
        desk.clock.advance(LEASE - timedelta(seconds=5))
        await desk.say(user(1), "在吗")  # the customer writes: the lease starts again
        desk.clock.advance(timedelta(seconds=10))
        assert await desk.service.release_expired_leases() == 0
        assert LEASE_LAPSED not in [e["type"] for e in drain(theirs)]


class RefusingBus(EventBus):
    """A bus that fails as the agent is told of a lapse: if that happened inside the
    transaction, the release would be rolled back."""

    def publish(self, event: Event) -> None:
        if event["type"] == LEASE_LAPSED:
            raise RuntimeError("the console could not be told")
        super().publish(event)


async def test_the_lapse_is_committed_before_the_agent_hears_of_it(desk: Desk) -> None:
    handoff = await desk.queued(user(1))
    await desk.service.claim(desk.agents[1], handoff)
    desk.clock.advance(LEASE + timedelta(seconds=1))
    sweeper = HandoffService(desk.sessions, desk.clock, None, RefusingBus(), lease=LEASE)
    with pytest.raises(RuntimeError):
        await sweeper.release_expired_leases()
    stored = await desk.stored(handoff)
    assert stored.status == HandoffStatus.WAITING and stored.dropped_by == "a0"
    async with desk.sessions() as s:
        conv = await ConversationRepository(s).get("wechat", user(1))
    assert conv is not None and conv.owner == Owner.QUEUE


@SKIP_PG
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_the_agent_is_told_on_another_worker(
    sessions: Sessions,
    clock: FakeClock,
    seeded: None,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    """The sweep runs on one worker, the agent's console is on another: the event crosses
    PostgreSQL as JSON, Chinese words and all, and only their console gets it."""
    channel = f"billbot_test_{uuid.uuid4().hex}"
    one = PgEventBus(POSTGRES_URL, channel=channel, first_retry=0.05)
    two = PgEventBus(POSTGRES_URL, channel=channel, first_retry=0.05)
    async with open_desk(sessions, clock, aiohttp_server) as desk, one.running(), two.running():
        handoff = await desk.queued(user(1))
        loser, other = desk.agents[1], desk.agents[2]
        await desk.service.claim(loser, handoff)
        worker_one = HandoffService(sessions, clock, None, one, lease=LEASE)
        async with two.listen(loser.id) as theirs, two.listen(other.id) as others:
            clock.advance(LEASE + timedelta(seconds=1))
            assert await worker_one.release_expired_leases() == 1
            told = await asyncio.wait_for(theirs.get(), 10)
            assert await asyncio.wait_for(theirs.get(), 10) == {"type": "queue"}
            assert await asyncio.wait_for(others.get(), 10) == {"type": "queue"}
            assert others.empty()
    ref = (await desk.stored(handoff)).ref
    assert told == lease_lapsed_event(loser.id, handoff, ref, LEASE)
    assert "会话" in told["zh"]
