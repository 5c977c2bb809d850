"""The handoff queue's storage contract (claims, leases, closing), on SQLite and PostgreSQL.

Each change of hands is a conditional UPDATE: these tests check what it leaves in the rows,
and that a change whose condition no longer holds changes nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import FakeClock
from storage.records import ConversationData, HandoffRecord, HandoffStatus, Owner
from storage.repositories import Repositories

Sessions = async_sessionmaker[AsyncSession]
LEASE = timedelta(minutes=2)


@dataclass(frozen=True)
class Queued:
    handoff_id: int
    conversation_id: int
    agents: list[int]


async def queued(sessions: Sessions, now: datetime, agents: int = 2) -> Queued:
    """One customer waiting in the queue, and some agents."""
    async with sessions() as s, s.begin():
        repos = Repositories.on(s)
        conv = await repos.conversations.load_for_update("wechat", "u1", "new", now, now)
        handoff = await repos.handoffs.create(
            conv.id, "asked", now, order_tail="3456", amount_confirmed=False, failures=0
        )
        ids = []
        for n in range(agents):
            agent = await repos.agents.create(f"a{n}", "agent", "-", now)
            assert agent is not None
            ids.append(agent.id)
    return Queued(handoff.id, conv.id, ids)


async def stored(sessions: Sessions, handoff_id: int) -> HandoffRecord:
    async with sessions() as s:
        handoff = await Repositories.on(s).handoffs.get(handoff_id)
    assert handoff is not None
    return handoff


async def test_a_waiting_handoff_is_claimed_once(sessions: Sessions, clock: FakeClock) -> None:
    now = clock.now()
    q = await queued(sessions, now)
    async with sessions() as s, s.begin():
        handoffs = Repositories.on(s).handoffs
        assert await handoffs.claim(q.handoff_id, q.agents[0], now, now + LEASE)
        assert not await handoffs.claim(q.handoff_id, q.agents[1], now, now + LEASE)
    h = await stored(sessions, q.handoff_id)
    assert (h.status, h.claimed_by) == (HandoffStatus.CLAIMED, q.agents[0])
    assert (h.claimed_at, h.lease_until) == (now, now + LEASE)


async def test_concurrent_claims_of_one_handoff_have_one_winner(
    sessions: Sessions, clock: FakeClock
) -> None:
    """No row lock taken first: the UPDATE's own condition decides."""
    now = clock.now()
    q = await queued(sessions, now, agents=5)

    async def claim(agent_id: int) -> bool:
        async with sessions() as s, s.begin():
            won = await Repositories.on(s).handoffs.claim(q.handoff_id, agent_id, now, now + LEASE)
            await asyncio.sleep(0)  # let the others reach their update while we hold ours
            return won

    results = await asyncio.gather(*(claim(a) for a in q.agents))
    assert results.count(True) == 1
    winner = q.agents[results.index(True)]
    assert (await stored(sessions, q.handoff_id)).claimed_by == winner


async def test_a_lapsed_lease_is_released_once_one_priority_up(
    sessions: Sessions, clock: FakeClock
) -> None:
    now = clock.now()
    q = await queued(sessions, now)
    async with sessions() as s, s.begin():
        handoffs = Repositories.on(s).handoffs
        await handoffs.claim(q.handoff_id, q.agents[0], now, now + LEASE)
        assert await handoffs.expired_leases(now + LEASE) == []  # due, not yet lapsed
        later = now + LEASE + timedelta(seconds=1)
        assert await handoffs.expired_leases(later) == [q.handoff_id]
        assert await handoffs.release(q.handoff_id, later, "a0")
        assert not await handoffs.release(q.handoff_id, later, "a0")
        assert await handoffs.expired_leases(later) == []
    h = await stored(sessions, q.handoff_id)
    assert (h.status, h.claimed_by, h.lease_until) == (HandoffStatus.WAITING, None, None)
    assert (h.priority, h.dropped_by) == (1, "a0")
    async with sessions() as s:
        assert [w.id for w in await Repositories.on(s).handoffs.waiting()] == [q.handoff_id]


async def test_a_renewed_or_answered_claim_is_not_released(
    sessions: Sessions, clock: FakeClock
) -> None:
    now = clock.now()
    q = await queued(sessions, now)
    lapsed = now + LEASE + timedelta(seconds=1)
    async with sessions() as s, s.begin():
        handoffs = Repositories.on(s).handoffs
        await handoffs.claim(q.handoff_id, q.agents[0], now, now + LEASE)
        assert await handoffs.extend_lease(q.handoff_id, now + 2 * LEASE)
        assert not await handoffs.extend_lease(q.handoff_id, now + LEASE)  # never shortened
        assert not await handoffs.release(q.handoff_id, lapsed, "a0")
        assert await handoffs.answered(q.handoff_id, now + timedelta(minutes=1))
        assert await handoffs.answered(q.handoff_id, now + timedelta(minutes=2))
        assert not await handoffs.extend_lease(q.handoff_id, now + 3 * LEASE)  # none to extend
        assert not await handoffs.release(q.handoff_id, now + timedelta(hours=1), "a0")
    h = await stored(sessions, q.handoff_id)
    assert (h.status, h.claimed_by, h.lease_until) == (HandoffStatus.CLAIMED, q.agents[0], None)
    assert h.first_response_at == now + timedelta(minutes=1)  # the first answer is kept


async def test_the_customer_writing_restarts_the_lease_and_wakes_a_parked_handoff(
    sessions: Sessions, clock: FakeClock
) -> None:
    now = clock.now()
    q = await queued(sessions, now)
    async with sessions() as s, s.begin():
        handoffs = Repositories.on(s).handoffs
        assert await handoffs.wake(q.conversation_id, now + LEASE) is None  # nobody holds it
        await handoffs.claim(q.handoff_id, q.agents[0], now, now + LEASE)
        await handoffs.answered(q.handoff_id, now)
        assert await handoffs.park(q.handoff_id)
    assert (await stored(sessions, q.handoff_id)).status == HandoffStatus.WAITING_CUSTOMER
    async with sessions() as s, s.begin():
        woken = await Repositories.on(s).handoffs.wake(q.conversation_id, now + 2 * LEASE)
    assert woken == q.handoff_id
    h = await stored(sessions, q.handoff_id)
    assert (h.status, h.lease_until) == (HandoffStatus.CLAIMED, now + 2 * LEASE)


async def test_an_agent_who_leaves_gets_leases_on_what_they_hold_without_one(
    sessions: Sessions, clock: FakeClock
) -> None:
    now = clock.now()
    q = await queued(sessions, now)
    async with sessions() as s, s.begin():
        handoffs = Repositories.on(s).handoffs
        assert await handoffs.start_leases(q.agents[0], now + LEASE) == 0  # holds nothing
        await handoffs.claim(q.handoff_id, q.agents[0], now, now + LEASE)
        assert await handoffs.start_leases(q.agents[0], now + 5 * LEASE) == 0  # lease running
        await handoffs.answered(q.handoff_id, now)
        assert await handoffs.start_leases(q.agents[1], now + LEASE) == 0  # not theirs
        assert await handoffs.start_leases(q.agents[0], now + LEASE) == 1
    assert (await stored(sessions, q.handoff_id)).lease_until == now + LEASE


async def test_transfer_keeps_the_first_claim_time_and_closing_happens_once(
    sessions: Sessions, clock: FakeClock
) -> None:
    now, later = clock.now(), clock.now() + timedelta(minutes=5)
    q = await queued(sessions, now)
    async with sessions() as s, s.begin():
        handoffs = Repositories.on(s).handoffs
        await handoffs.claim(q.handoff_id, q.agents[0], now, now + LEASE)
        assert await handoffs.transfer(q.handoff_id, q.agents[1], later, later + LEASE)
    h = await stored(sessions, q.handoff_id)
    assert (h.claimed_by, h.claimed_at, h.lease_until) == (q.agents[1], now, later + LEASE)
    async with sessions() as s, s.begin():
        handoffs = Repositories.on(s).handoffs
        assert await handoffs.close(q.handoff_id, HandoffStatus.RESOLVED, later)
        assert not await handoffs.close(q.handoff_id, HandoffStatus.RETURNED, later)
        assert not await handoffs.transfer(q.handoff_id, q.agents[0], later, later + LEASE)
        assert not await handoffs.claim(q.handoff_id, q.agents[0], later, later + LEASE)
        assert await handoffs.held() == []
    h = await stored(sessions, q.handoff_id)
    assert (h.status, h.lease_until) == (HandoffStatus.RESOLVED, None)
    assert (h.closed_at, h.resolved_at, h.claimed_by) == (later, later, q.agents[1])


async def test_a_conversation_changes_hands_with_a_new_version(
    sessions: Sessions, clock: FakeClock
) -> None:
    now = clock.now()
    q = await queued(sessions, now)
    async with sessions() as s, s.begin():
        convs = Repositories.on(s).conversations
        before = await convs.lock(q.conversation_id)
        assert before is not None
        await convs.pass_to(q.conversation_id, Owner.agent(q.agents[0]))
        await convs.bump_version(q.conversation_id)
        held = await convs.by_id(q.conversation_id)
        assert held is not None and held.owner == Owner.agent(q.agents[0])
        assert held.version == before.version + 2
        await convs.return_to_bot(q.conversation_id, "verify", ConversationData(order_no="DD1"))
    async with sessions() as s:
        back = await Repositories.on(s).conversations.by_id(q.conversation_id)
    assert back is not None and back.owner == Owner.BOT and back.version == before.version + 3
    assert (back.state, back.data) == ("verify", ConversationData(order_no="DD1"))


async def test_queue_rows_show_the_newest_lines_without_notes(
    sessions: Sessions, clock: FakeClock
) -> None:
    now = clock.now()
    q = await queued(sessions, now)
    async with sessions() as s, s.begin():
        transcript = Repositories.on(s).transcript
        for n in range(4):
            await transcript.add_line(q.conversation_id, "in", "customer", f"line {n}", now)
        await transcript.add_line(q.conversation_id, "note", "agent:1", "private", now)
    async with sessions() as s:
        transcript = Repositories.on(s).transcript
        last = await transcript.last_lines([q.conversation_id, q.conversation_id + 1], 3)
        everything = await transcript.lines(q.conversation_id)
    assert [m.text for m in last[q.conversation_id]] == ["line 1", "line 2", "line 3"]
    assert last[q.conversation_id + 1] == []
    assert [m.text for m in everything][-2:] == ["line 3", "private"]


async def test_canned_replies_are_listed_by_title_and_deleted_once(
    sessions: Sessions, clock: FakeClock
) -> None:
    async with sessions() as s, s.begin():
        canned = Repositories.on(s).canned
        refund = await canned.add("refund", "退款会在 3 个工作日内到账。", clock.now())
        await canned.add("greeting", "您好！", clock.now())
        assert [c.title for c in await canned.list_all()] == ["greeting", "refund"]
        assert await canned.delete(refund.id)
        assert not await canned.delete(refund.id)
        assert [c.title for c in await canned.list_all()] == ["greeting"]
