"""Regressions from the first review of the dialogue, each named after what broke."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import FakeClock
from bot.config import Settings, VerifyMode
from bot.engine.dispatcher import Dispatcher
from bot.keys import SESSIONS
from bot.messages import Inbound, InboundKind
from storage.models import Message
from storage.records import OrderRecord
from storage.repositories import ConversationRepository, Repositories
from tests.conftest import Customer
from tests.engine.test_dispatcher import USER, make_dispatcher, text

ORDER = "DD20250503123456"
Sessions = async_sessionmaker[AsyncSession]


async def turns(bot: Dispatcher, *texts: str, start: int = 0) -> list[str]:
    return [(await bot.handle(text(t, start + i))).reply for i, t in enumerate(texts)]


async def test_lockout_is_not_reset_by_start_over_or_withdrawing(
    sessions: Sessions, clock: FakeClock, seeded: None
) -> None:
    bot = make_dispatcher(sessions, clock)
    await turns(bot, "你好", "同意", ORDER, "100", "101", "102")
    replies = await turns(bot, "重新开始", ORDER, "128.5", start=10)
    assert "wx_ab" not in replies[-1] and "服务单号" in replies[-1]
    replies = await turns(bot, "撤回同意", "同意", ORDER, "128.5", start=20)
    assert "wx_ab" not in replies[-1] and "服务单号" in replies[-1]


async def test_withdrawing_consent_deletes_the_transcript(
    sessions: Sessions, clock: FakeClock, seeded: None
) -> None:
    bot = make_dispatcher(sessions, clock)
    await turns(bot, "你好", "同意", ORDER, "128.5", "撤回同意")
    async with sessions() as s:
        left = await s.scalar(select(func.count()).select_from(Message))
    assert left == 0


async def test_one_agree_after_withdrawing_is_enough(
    sessions: Sessions, clock: FakeClock, seeded: None
) -> None:
    bot = make_dispatcher(sessions, clock)
    replies = await turns(bot, "你好", "同意", "撤回同意", "同意")
    assert "订单号" in replies[-1] and "72小时" not in replies[-1]


async def test_order_and_amount_resent_while_verifying_is_checked(
    sessions: Sessions, clock: FakeClock, seeded: None
) -> None:
    bot = make_dispatcher(sessions, clock)
    replies = await turns(bot, "你好", "同意", ORDER, f"{ORDER} 128.5元")
    assert "wx_ab****89" in replies[-1]


async def test_housekeeping_events_get_no_reply_and_do_not_prolong_the_session(
    sessions: Sessions, clock: FakeClock, seeded: None
) -> None:
    bot = make_dispatcher(sessions, clock)
    await turns(bot, "你好")
    async with sessions() as s:
        before = await ConversationRepository(s).get("wechat", USER)
    clock.advance(timedelta(hours=1))
    location = Inbound("wechat", USER, InboundKind.MENU, "", "evt:1", raw_type="event:LOCATION")
    assert (await bot.handle(location)).reply == ""
    async with sessions() as s:
        after = await ConversationRepository(s).get("wechat", USER)
    assert before is not None and after is not None
    assert after.expires_at == before.expires_at


async def test_consent_notice_names_the_fields_of_the_merchants_rule(
    sessions: Sessions, clock: FakeClock, seeded: None
) -> None:
    bot = make_dispatcher(sessions, clock, VerifyMode.TRACKING_NO)
    [notice] = await turns(bot, "你好")
    assert "快递单号" in notice and "支付金额" not in notice


async def test_order_missing_verification_data_goes_to_a_person_without_a_strike(
    sessions: Sessions, clock: FakeClock, seeded: None
) -> None:
    async with sessions() as s, s.begin():
        await Repositories.on(s).orders.upsert_many(
            [OrderRecord("DD20250101000001", 1000)], clock.now()
        )
    bot = make_dispatcher(sessions, clock, VerifyMode.CARD_LAST4_DATE)
    replies = await turns(bot, "你好", "同意", "DD20250101000001", "1234 5月3日")
    assert "无法自助核对" in replies[-1] and "服务单号" in replies[-1]


async def test_redeliveries_to_three_dispatchers_run_once(
    sessions: Sessions, clock: FakeClock, seeded: None
) -> None:
    """Three server processes (three dispatchers, no shared lock) get the same MsgId."""
    bots = [make_dispatcher(sessions, clock) for _ in range(3)]
    await turns(bots[0], "你好", "同意", ORDER)
    outcomes = await asyncio.gather(*(b.handle(text("100", 9)) for b in bots))
    assert len({o.reply for o in outcomes}) == 1
    assert [o.duplicate for o in outcomes].count(False) == 1
    async with sessions() as s:
        said = list(await s.scalars(select(Message.text)))
    assert said.count("100") == 1


async def test_a_body_arriving_in_pieces_is_read_whole(
    client: TestClient[web.Request, web.Application], settings: Settings, clock: FakeClock
) -> None:
    customer = Customer(client, settings, clock)
    query, body = customer.codec.build_text(customer.openid, "你好" * 500, 5)

    async def pieces() -> object:
        for i in range(0, len(body), 700):
            yield body[i : i + 700]

    resp = await client.post("/wechat", params=query, data=pieces())
    assert resp.status == 200
    assert "72小时" in customer.codec.read_reply(await resp.read())
    async with client.app[SESSIONS]() as s:
        assert await s.scalar(select(func.count()).select_from(Message)) == 2
