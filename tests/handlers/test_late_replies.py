"""A turn slower than WeChat's 5 s: "success" at once, the reply through the message API."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.app import create_app
from bot.clock import FakeClock
from bot.config import REPLY_DEADLINE_SECONDS, Settings
from bot.demo import seed_demo
from bot.keys import LATE_REPLIES, SESSIONS
from bot.texts import Texts
from storage.models import Message, ProcessedMessage
from storage.records import OrderRecord
from storage.repositories import Repositories
from tests.conftest import Customer
from tests.fakes.wechat_api import FAKE_STATE, fake_wechat_app

ORDER = "DD20250503123456"


class SlowOrders:
    """An order backend that answers only when the test lets it (no sleeping)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()

    async def find(self, order_no: str) -> OrderRecord | None:
        await self.gate.wait()
        return OrderRecord(order_no, 12850, contact="alice") if order_no == ORDER else None

    async def shapes(self) -> list[str]:
        return []

    async def paid_by(self, user_id: str, since: object, limit: int) -> list[OrderRecord]:
        return []


Client = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]


async def consented(
    settings: Settings,
    clock: FakeClock,
    aiohttp_client: Client,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> tuple[web.Application, Settings, SlowOrders, web.Application, Customer]:
    """An app whose order lookups wait for the test, talking to a fake WeChat API, and an
    Official Account customer who has agreed to the notice (the next is the order number)."""
    fake = fake_wechat_app(clock, settings.wechat.app_id, settings.wechat.app_secret.reveal())
    server = await aiohttp_server(fake, access_log=None)
    moded = replace(settings, wechat_api_base=str(server.make_url("")).rstrip("/"))
    orders = SlowOrders()
    app = create_app(moded, clock, orders=orders)
    customer = Customer(await aiohttp_client(app), moded, clock)
    await seed_demo(app[SESSIONS], clock.now())
    fake[FAKE_STATE].customer_wrote(customer.openid)
    await customer.say("你好")
    await customer.say("同意")
    return fake, moded, orders, app, customer


async def test_a_slow_turn_is_answered_through_the_message_api_once(
    settings: Settings,
    clock: FakeClock,
    aiohttp_client: Client,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    fake, _, orders, app, customer = await consented(
        settings, clock, aiohttp_client, aiohttp_server
    )

    app[LATE_REPLIES].deadline = 0.01  # the gated lookup below cannot finish in time
    query, body = customer.codec.build_text(customer.openid, ORDER, 777)
    assert await customer.post(query, body) == ""  # "success": WeChat stops waiting
    orders.gate.set()
    await asyncio.gather(*app[LATE_REPLIES].tasks)
    [(to, text)] = fake[FAKE_STATE].sent
    assert to == customer.openid and "****3456" in text and "金额" in text
    async with app[SESSIONS]() as s:  # recorded as an API message: it used WeChat's quota
        lines = await s.execute(select(Message.sender, Message.text))
        senders = [sender for sender, said in lines if said == text]
    assert senders == ["bot-api"]

    assert await customer.post(query, body) == ""  # WeChat's retry: not answered twice
    assert len(fake[FAKE_STATE].sent) == 1
    app[LATE_REPLIES].deadline = REPLY_DEADLINE_SECONDS
    assert "wx_ab****89" in await customer.say("128.5")  # and the dialogue goes on


async def test_the_answered_late_mark_lives_on_the_delivery_record_for_every_process(
    settings: Settings,
    clock: FakeClock,
    aiohttp_client: Client,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    """WeChat's retry reaching another server process, which never saw the late turn, is
    not answered with the reply again: the mark is read from the database, not memory."""
    fake, moded, orders, app, customer = await consented(
        settings, clock, aiohttp_client, aiohttp_server
    )
    app[LATE_REPLIES].deadline = 0.01
    query, body = customer.codec.build_text(customer.openid, ORDER, 778)
    assert await customer.post(query, body) == ""
    orders.gate.set()
    await asyncio.gather(*app[LATE_REPLIES].tasks)
    assert len(fake[FAKE_STATE].sent) == 1
    async with app[SESSIONS]() as s:
        marked = list(
            await s.scalars(
                select(ProcessedMessage.dedup_key).where(
                    ProcessedMessage.answered_late_at.is_not(None)
                )
            )
        )
    assert len(marked) == 1 and marked[0].endswith("778")

    other = create_app(moded, clock, orders=orders)  # a second worker: nothing in memory
    retry = Customer(await aiohttp_client(other), moded, clock, first_msg_id=2000)
    assert await retry.post(query, body) == ""
    assert len(fake[FAKE_STATE].sent) == 1
    on_time = await retry.say("128.5")  # a reply given in time is not marked
    assert "wx_ab****89" in on_time
    async with other[SESSIONS]() as s:
        late_count = len(
            list(
                await s.scalars(
                    select(ProcessedMessage.id).where(
                        ProcessedMessage.answered_late_at.is_not(None)
                    )
                )
            )
        )
    assert late_count == 1


async def test_a_late_reply_the_api_refuses_is_given_to_wechats_retry_instead(
    settings: Settings,
    clock: FakeClock,
    aiohttp_client: Client,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    """The customer-service API refusing the late reply used to leave the delivery marked
    "answered late": WeChat's retry got "success" too, and the customer never saw a reply."""
    fake, _, orders, app, customer = await consented(
        settings, clock, aiohttp_client, aiohttp_server
    )

    app[LATE_REPLIES].deadline = 0.01
    query, body = customer.codec.build_text(customer.openid, ORDER, 779)
    assert await customer.post(query, body) == ""  # "success": the reply is to go by the API
    fake[FAKE_STATE].fail_next(-1)  # WeChat: system error
    orders.gate.set()
    await asyncio.gather(*app[LATE_REPLIES].tasks)
    assert fake[FAKE_STATE].send_requests == 1 and fake[FAKE_STATE].sent == []
    key = "wechat:msg:779"
    async with app[SESSIONS]() as s:
        recorded = await Repositories.on(s).inbox.recorded(key)
    asked = Texts("zh").say("ask_amount", order="****3456")
    assert recorded == (asked, False)  # the reply kept, the mark cleared

    app[LATE_REPLIES].deadline = REPLY_DEADLINE_SECONDS
    assert await customer.post(query, body) == asked  # WeChat's retry gets it
    assert fake[FAKE_STATE].send_requests == 1  # and nothing else was sent
    async with app[SESSIONS]() as s:
        lines = await s.execute(select(Message.sender, Message.text))
        senders = [sender for sender, said in lines if said == asked]
    assert senders == ["bot"]  # answered in the callback: no API quota used
