"""The engine on a real database: redeliveries, ordering, expiry and resume."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import FakeClock
from bot.config import VerifyMode
from bot.engine.dispatcher import Dispatcher
from bot.handoff.queue import HandoffService
from bot.messages import Inbound, InboundKind
from bot.privacy.card_links import SignedCardLinks
from bot.privacy.links import LinkSigner
from bot.texts import Texts
from storage.models import Conversation, Message
from storage.records import ConversationData
from storage.repositories import ConversationRepository

ZH = Texts("zh")

USER = "oEngineUser00000000000000001"


def make_dispatcher(
    sessions: async_sessionmaker[AsyncSession],
    clock: FakeClock,
    verify_mode: VerifyMode = VerifyMode.AMOUNT,
    handoffs: HandoffService | None = None,
) -> Dispatcher:
    """The engine as the app builds it, with card links signed by a test key."""
    links = SignedCardLinks(LinkSigner(["test-key-0123456789abcdef"], clock), "http://bot.test")
    return Dispatcher(sessions, clock, links, verify_mode=verify_mode, handoffs=handoffs)


def text(body: str, msg_id: int, user: str = USER) -> Inbound:
    return Inbound("wechat", user, InboundKind.TEXT, body, f"msg:{msg_id}")


async def transcript(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[str, str]]:
    async with sessions() as s:
        return [
            (m.direction, m.text) for m in await s.scalars(select(Message).order_by(Message.id))
        ]


async def test_concurrent_redeliveries_run_the_step_once_with_identical_replies(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock, seeded: None
) -> None:
    bot = make_dispatcher(sessions, clock)
    await bot.handle(text("你好", 0))
    await bot.handle(text("同意", 1))
    await bot.handle(text("DD20250503123456", 2))
    # WeChat's 3 tries of one wrong amount, arriving together: one strike, one reply
    outcomes = await asyncio.gather(*(bot.handle(text("100", 3)) for _ in range(3)))
    assert len({o.reply for o in outcomes}) == 1
    assert sorted(o.duplicate for o in outcomes) == [False, True, True]
    assert outcomes[0].reply == ZH.say("verify_wrong", order="****3456", left=2)
    inbound = [t for d, t in await transcript(sessions) if d == "in"]
    assert inbound.count("100") == 1
    # a later redelivery of an old message is answered from the record, nothing re-run
    again = await bot.handle(text("DD20250503123456", 2))
    assert again.duplicate and again.reply == ZH.say("ask_amount", order="****3456")


async def test_two_messages_of_one_user_are_processed_in_arrival_order(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock, seeded: None
) -> None:
    bot = make_dispatcher(sessions, clock)
    await bot.handle(text("你好", 0))
    await bot.handle(text("同意", 1))
    first = asyncio.ensure_future(bot.handle(text("DD20250503123456", 2)))
    second = asyncio.ensure_future(bot.handle(text("128.50", 3)))
    replies = await asyncio.gather(first, second)
    assert replies[0].reply == ZH.say("ask_amount", order="****3456")
    assert "wx_ab****89" in replies[1].reply  # the amount was checked after the order was found
    inbound = [t for d, t in await transcript(sessions) if d == "in"]
    assert inbound == ["你好", "同意", "DD20250503123456", "128.50"]


async def test_conversation_expires_after_72_hours_of_silence(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock, seeded: None
) -> None:
    bot = make_dispatcher(sessions, clock)
    await bot.handle(text("你好", 0))
    await bot.handle(text("同意", 1))
    await bot.handle(text("DD20250503123456", 2))
    clock.advance(timedelta(hours=71, minutes=59))
    resumed = await bot.handle(text("128.5", 3))
    resume = ZH.say("resume_verify", order="****3456")
    assert resumed.reply.startswith(resume) and "wx_ab****89" in resumed.reply
    await bot.handle(text("DD20250503123456", 4))  # waiting for the amount again
    clock.advance(timedelta(hours=72))
    fresh = await bot.handle(text("128.5", 5))
    assert "wx_ab" not in fresh.reply and "订单号" in fresh.reply  # starts afresh
    # the old transcript went with the old conversation
    assert [t for d, t in await transcript(sessions) if d == "in"] == ["128.5"]


async def test_resume_says_where_the_customer_was(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock, seeded: None
) -> None:
    bot = make_dispatcher(sessions, clock)
    await bot.handle(text("你好", 0))
    await bot.handle(text("同意", 1))
    await bot.handle(text("DD20250503123456", 2))
    clock.advance(timedelta(hours=5))
    reply = await bot.handle(text("你好", 3))
    assert reply.reply.startswith(ZH.say("resume_verify", order="****3456"))
    async with sessions() as s:
        conv = await ConversationRepository(s).get("wechat", USER)
    assert conv is not None and conv.state == "verify"


async def test_a_failed_turn_leaves_no_trace_and_the_retry_is_processed(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock, seeded: None
) -> None:
    class BrokenLinks:
        def link_for(self, *args: object) -> str:
            raise RuntimeError("signer down")

    broken = Dispatcher(sessions, clock, BrokenLinks())
    await broken.handle(text("你好", 0))
    await broken.handle(text("同意", 1))
    await broken.handle(text("DD20250503123456", 2))
    try:
        await broken.handle(text("128.5", 3))
    except RuntimeError:
        pass
    else:
        raise AssertionError("the broken signer should have failed the turn")
    retry = await make_dispatcher(sessions, clock).handle(text("128.5", 3))
    assert not retry.duplicate and "wx_ab****89" in retry.reply


async def stored_data(sessions: async_sessionmaker[AsyncSession]) -> ConversationData:
    async with sessions() as s:
        conv = await ConversationRepository(s).get("wechat", USER)
    assert conv is not None
    return conv.data


async def test_starting_over_keeps_the_guess_count_consent_and_journey(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock, seeded: None
) -> None:
    bot = make_dispatcher(sessions, clock)
    for n, said in enumerate(["你好", "同意", "DD20250503123456", "100"]):
        await bot.handle(text(said, n))
    before = await stored_data(sessions)
    assert before.order_no == "DD20250503123456" and before.verify_failures == 1
    reply = await bot.handle(text("重新开始", 4))
    assert reply.reply == "\n\n".join([ZH.say("restart"), ZH.say("ask_order")])
    after = await stored_data(sessions)
    assert after.order_no is None and after.not_understood == 0
    assert after.verify_failures == 1 and after.consent == before.consent
    assert after.journey is not None and before.journey is not None
    assert after.journey.id == before.journey.id


async def test_expiry_starts_a_new_journey_with_nothing_remembered(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock, seeded: None
) -> None:
    bot = make_dispatcher(sessions, clock)
    for n, said in enumerate(["你好", "同意", "DD20250503123456", "100"]):
        await bot.handle(text(said, n))
    before = await stored_data(sessions)
    clock.advance(timedelta(hours=73))
    await bot.handle(text("你好", 4))
    after = await stored_data(sessions)
    assert after.journey is not None and before.journey is not None
    assert after.journey.id != before.journey.id
    assert (after.order_no, after.verify_failures) == (None, 0)


async def test_a_damaged_conversation_row_costs_a_question_not_the_turn(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock, seeded: None
) -> None:
    bot = make_dispatcher(sessions, clock)
    for n, said in enumerate(["你好", "同意", "DD20250503123456"]):
        await bot.handle(text(said, n))
    async with sessions() as s, s.begin():
        await s.execute(
            update(Conversation).values(
                data={"order_no": 20250503123456, "verify_failures": "x", "funnel": [1]}
            )
        )
    reply = await bot.handle(text("128.5", 3))
    assert reply.reply == ZH.say("ask_order")  # the order in hand was unreadable: asked again
    assert (await stored_data(sessions)).journey is not None  # a new one started
