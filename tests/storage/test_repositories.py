"""One contract for the repositories, run on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import FakeClock
from storage.records import ConversationData, OrderRecord, Owner
from storage.repositories import Repositories
from storage.retention import purge_expired

Sessions = async_sessionmaker[AsyncSession]


async def test_orders_upsert_and_find(sessions: Sessions, clock: FakeClock) -> None:
    async with sessions() as s, s.begin():
        repos = Repositories.on(s)
        await repos.orders.upsert_many([OrderRecord("A12345678", 100, store="s1")], clock.now())
        await repos.orders.upsert_many([OrderRecord("A12345678", 250, store="s2")], clock.now())
    async with sessions() as s:
        found = await Repositories.on(s).orders.find("A12345678")
        assert found is not None and (found.amount_cents, found.store) == (250, "s2")
        assert await Repositories.on(s).orders.count() == 1
        assert await Repositories.on(s).orders.find("nope") is None


async def test_conversation_is_created_once_and_versioned(
    sessions: Sessions, clock: FakeClock
) -> None:
    now = clock.now()
    for _ in range(2):
        async with sessions() as s, s.begin():
            convs = Repositories.on(s).conversations
            conv = await convs.load_for_update(
                "wechat", "u1", "new", now, now + timedelta(hours=72)
            )
            conv.data.not_understood += 1
            await convs.save(conv, now)
    async with sessions() as s:
        conv = await Repositories.on(s).conversations.get("wechat", "u1")
    assert conv is not None and conv.version == 2
    assert conv.data == ConversationData(not_understood=2)
    assert conv.expires_at == now + timedelta(hours=72)


async def test_consent_recorded_once_per_version_and_withdrawn(
    sessions: Sessions, clock: FakeClock
) -> None:
    async with sessions() as s, s.begin():
        consents = Repositories.on(s).consents
        assert await consents.record("wechat", "u1", "v1", clock.now())
        assert not await consents.record("wechat", "u1", "v1", clock.now())
        assert await consents.active_version("wechat", "u1") == "v1"
        await consents.withdraw("wechat", "u1", clock.now())
        assert await consents.active_version("wechat", "u1") is None
        history = await consents.history("wechat", "u1")
    assert len(history) == 1 and history[0][2] == clock.now()


async def test_delivery_key_is_claimed_once(sessions: Sessions, clock: FakeClock) -> None:
    async with sessions() as s, s.begin():
        inbox = Repositories.on(s).inbox
        assert await inbox.claim("wechat:msg:1", clock.now())
        await inbox.store_reply("wechat:msg:1", "hello")
    async with sessions() as s, s.begin():
        inbox = Repositories.on(s).inbox
        assert not await inbox.claim("wechat:msg:1", clock.now())
        assert await inbox.recorded("wechat:msg:1") == ("hello", False)


async def test_a_late_mark_is_cleared_once_and_keeps_the_reply(
    sessions: Sessions, clock: FakeClock
) -> None:
    async with sessions() as s, s.begin():
        inbox = Repositories.on(s).inbox
        await inbox.claim("wechat:msg:2", clock.now())
        await inbox.store_reply("wechat:msg:2", "hello", answered_late_at=clock.now())
    async with sessions() as s, s.begin():
        inbox = Repositories.on(s).inbox
        assert await inbox.recorded("wechat:msg:2") == ("hello", True)
        assert await inbox.unmark_late("wechat:msg:2")
        assert not await inbox.unmark_late("wechat:msg:2")  # not marked any more
        assert not await inbox.unmark_late("wechat:msg:unknown")
    async with sessions() as s:
        assert await Repositories.on(s).inbox.recorded("wechat:msg:2") == ("hello", False)


async def test_concurrent_claims_of_one_key_have_one_winner(
    sessions: Sessions, clock: FakeClock
) -> None:
    async def claim() -> bool:
        async with sessions() as s, s.begin():
            won = await Repositories.on(s).inbox.claim("wechat:msg:race", clock.now())
            await asyncio.sleep(0)  # let the others reach their insert while we hold ours
            return won

    results = await asyncio.gather(*(claim() for _ in range(5)))
    assert results.count(True) == 1


async def test_handoffs_queue_order_and_one_open_per_conversation(
    sessions: Sessions, clock: FakeClock
) -> None:
    now = clock.now()
    async with sessions() as s, s.begin():
        repos = Repositories.on(s)
        ids = []
        for user in ("u1", "u2"):
            conv = await repos.conversations.load_for_update("wechat", user, "new", now, now)
            ids.append(conv.id)
        first = await repos.handoffs.create(
            ids[0], "asked", now, order_tail="3456", amount_confirmed=False, failures=0
        )
        again = await repos.handoffs.create(
            ids[0], "asked", now, order_tail=None, amount_confirmed=False, failures=0
        )
        urgent = await repos.handoffs.create(
            ids[1],
            "verify_failed",
            now + timedelta(minutes=1),
            order_tail=None,
            amount_confirmed=False,
            failures=3,
            priority=5,
        )
        assert again.ref == first.ref and len(first.ref) == 8
        assert [h.ref for h in await repos.handoffs.list_open()] == [urgent.ref, first.ref]
        await repos.handoffs.close_open(ids[1], "cancelled", now)
        assert [h.ref for h in await repos.handoffs.list_open()] == [first.ref]


async def test_retention_clears_expired_conversations(sessions: Sessions, clock: FakeClock) -> None:
    now = clock.now()
    async with sessions() as s, s.begin():
        repos = Repositories.on(s)
        conv = await repos.conversations.load_for_update("wechat", "u1", "new", now, now)
        conv.state, conv.data = "verify", ConversationData(order_no="DD1")
        conv.last_inbound_at, conv.expires_at = now, now + timedelta(hours=72)
        await repos.conversations.save(conv, now)
        await repos.transcript.add_turn(conv.id, [("in", "customer", "DD1")], now)
        await repos.inbox.claim("wechat:msg:old", now)
    assert (await purge_expired(sessions, now + timedelta(hours=1)))["conversations"] == 0
    counts = await purge_expired(sessions, now + timedelta(hours=73))
    assert counts == {
        "conversations": 1,
        "messages": 1,
        "delivery_keys": 1,
        "console_sessions": 0,
        "cards": 0,
        "cancelled_handoffs": 0,
        "order_rechecks": 0,
        "receipt_codes": 0,
        "order_guards": 0,
        "login_guards": 0,
        "api_errors": 0,
    }
    async with sessions() as s:
        repos = Repositories.on(s)
        left = await repos.conversations.get("wechat", "u1")
        assert left is not None and left.data == ConversationData() and left.state == "new"
        assert await repos.transcript.lines(left.id) == []
    # purged once: the next run finds nothing more to do
    again = await purge_expired(sessions, now + timedelta(hours=74))
    assert again["conversations"] == 0


async def test_retention_drops_expired_console_logins(sessions: Sessions, clock: FakeClock) -> None:
    from storage.models import Agent, ConsoleSession

    now = clock.now()
    async with sessions() as s, s.begin():
        agent = Agent(
            name="a",
            role="agent",
            password_hash="-",
            must_change_password=False,
            created_at=now,
        )
        s.add(agent)
        await s.flush()
        for token, hours in (("old", -1), ("live", 5)):
            s.add(
                ConsoleSession(
                    token_hash=token,
                    agent_id=agent.id,
                    csrf_token="c",
                    created_at=now,
                    expires_at=now + timedelta(hours=hours),
                )
            )
    assert (await purge_expired(sessions, now))["console_sessions"] == 1
    assert (await purge_expired(sessions, now))["console_sessions"] == 0


@pytest.mark.parametrize("stored", ["bot", "queue", "agent:12"])
def test_an_owner_is_parsed_once_and_stored_as_it_was(stored: str) -> None:
    owner = Owner.parse(stored)
    assert str(owner) == stored
    assert owner.is_agent == stored.startswith("agent:")


@pytest.mark.parametrize("stored", ["agent:", "agent:x", "bot:1", "robot", ""])
def test_a_malformed_owner_is_refused(stored: str) -> None:
    with pytest.raises(ValueError):
        Owner.parse(stored)
