"""Orders not synced yet: an unknown but well-formed order number is looked up again for a
while; found, the customer is asked to verify it through the message API (once); never
found, a person takes over — over real callbacks, a fake WeChat API and the fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import Text, select, type_coerce

from bot.app import create_app
from bot.clock import FakeClock
from bot.config import Settings
from bot.demo import seed_demo
from bot.flows.base import OrdersUnavailable
from bot.handoff.waiting import wait_minutes
from bot.keys import RECHECKS, SESSIONS
from bot.privacy.masking import mask_order_no
from bot.texts import Texts
from storage.models import Card, Handoff, Message, OrderRecheck
from storage.records import ConversationRecord, OrderRecord, Owner
from storage.repositories import ConversationRepository, OrderRepository
from tests.conftest import Customer
from tests.fakes.wechat_api import FAKE_STATE, FakeWeChatState

Client = TestClient[web.Request, web.Application]
AiohttpClient = Callable[[web.Application], Awaitable[Client]]
Sent = list[tuple[str, str]]  # (openid, text) the fake WeChat API delivered
ZH = Texts("zh")
LATE = "DD20260503000777"  # the demo orders' shape (DD + 14 digits), not imported yet
KNOWN = "DD20250503123456"  # a demo order


@pytest.fixture
def sent(wechat_state: FakeWeChatState) -> Sent:
    """What the fake WeChat API delivered: (openid, text)."""
    return wechat_state.sent


@pytest.fixture
def api_settings(settings: Settings, wechat: TestServer) -> Settings:
    return replace(settings, wechat_api_base=str(wechat.make_url("")).rstrip("/"))


@pytest.fixture
async def api(api_settings: Settings, clock: FakeClock, aiohttp_client: AiohttpClient) -> Client:
    """The whole app, seeded with the demo data, sending to the fake WeChat API."""
    client = await aiohttp_client(create_app(api_settings, clock))
    await seed_demo(client.app[SESSIONS], clock.now())
    return client


async def agreed(
    client: Client, settings: Settings, clock: FakeClock, openid: str = "oRecheck00000000000001"
) -> Customer:
    n = int(openid[-2:])
    customer = Customer(client, settings, clock, openid=openid, first_msg_id=n * 1000)
    await customer.say("你好")
    await customer.say("同意")
    return customer


async def wrote(customer: Customer, wechat: TestServer, text: str) -> str:
    """The customer writes; WeChat opens its 48-hour window and quota for replies."""
    reply = await customer.say(text)
    wechat.app[FAKE_STATE].customer_wrote(customer.openid)
    return reply


async def import_order(client: Client, clock: FakeClock, order_no: str) -> None:
    async with client.app[SESSIONS]() as s, s.begin():
        order = OrderRecord(order_no, 9900, store="旗舰店", contact="alice")
        await OrderRepository(s).upsert_many([order], clock.now())


async def rechecks(client: Client) -> list[OrderRecheck]:
    async with client.app[SESSIONS]() as s:
        return list(await s.scalars(select(OrderRecheck).order_by(OrderRecheck.id)))


async def conversation(client: Client, customer: Customer) -> ConversationRecord:
    async with client.app[SESSIONS]() as s:
        conv = await ConversationRepository(s).get("wechat", customer.openid)
    assert conv is not None
    return conv


async def test_an_order_that_arrives_later_is_offered_once_and_its_guess_given_back(
    api: Client, api_settings: Settings, clock: FakeClock, wechat: TestServer, sent: Sent
) -> None:
    customer = await agreed(api, api_settings, clock)
    reply = await wrote(customer, wechat, LATE)
    assert reply == ZH.say("order_recheck_scheduled", order=mask_order_no(LATE), minutes=30)
    [recheck] = await rechecks(api)
    assert recheck.order_no == LATE and recheck.done_at is None
    assert recheck.next_at == clock.now() + timedelta(minutes=2)
    assert recheck.until == clock.now() + timedelta(minutes=30)
    async with api.app[SESSIONS]() as s:  # sealed at rest, like every order number
        stored = await s.scalar(select(type_coerce(OrderRecheck.order_no, Text)))
    assert stored is not None and LATE not in stored
    assert (await conversation(api, customer)).data.verify_failures == 1  # a guess, as ever

    assert (await api.app[RECHECKS].run_due()).waiting == 0  # not due for two minutes
    clock.advance(timedelta(minutes=2))
    assert (await api.app[RECHECKS].run_due()).waiting == 1  # due, still unknown
    assert sent == []

    clock.advance(timedelta(minutes=2))  # four minutes later the payment arrives
    await import_order(api, clock, LATE)
    assert (await api.app[RECHECKS].run_due()).found == 1
    question = ZH.say("ask_amount", order=mask_order_no(LATE))
    assert sent == [(customer.openid, ZH.say("order_recheck_found", question=question))]
    conv = await conversation(api, customer)
    assert conv.state == "verify" and conv.data.order_no == LATE
    assert conv.data.verify_failures == 0
    [recheck] = await rechecks(api)
    assert recheck.outcome == "found" and recheck.done_at is not None
    async with api.app[SESSIONS]() as s:  # in the transcript, as sent through the API
        senders = list(await s.scalars(select(Message.sender).where(Message.direction == "out")))
    assert senders[-1] == "bot-api"

    clock.advance(timedelta(minutes=2))
    await api.app[RECHECKS].run_due()
    assert len(sent) == 1  # once

    await customer.say("99")
    assert (await conversation(api, customer)).state == "card_sent"
    async with api.app[SESSIONS]() as s:
        assert await s.scalar(select(Card.conversation_id)) == conv.id


async def test_an_order_that_never_arrives_goes_to_a_person_after_30_minutes(
    api: Client, api_settings: Settings, clock: FakeClock, wechat: TestServer, sent: Sent
) -> None:
    customer = await agreed(api, api_settings, clock)
    await wrote(customer, wechat, LATE)
    for _ in range(14):  # every two minutes, for 28 minutes: nothing yet
        clock.advance(timedelta(minutes=2))
        await api.app[RECHECKS].run_due()
    assert sent == []
    async with api.app[SESSIONS]() as s:
        assert list(await s.scalars(select(Handoff))) == []

    clock.advance(timedelta(minutes=2))
    assert (await api.app[RECHECKS].run_due()).gave_up == 1
    async with api.app[SESSIONS]() as s:
        [handoff] = list(await s.scalars(select(Handoff)))
    assert handoff.reason == "order_not_synced" and handoff.status == "waiting"
    lead = ZH.say("order_recheck_gave_up", order=mask_order_no(LATE), minutes=30)
    notice = ZH.say("handoff", ref=handoff.ref, position=1, minutes=wait_minutes(1))
    assert sent == [(customer.openid, lead + notice)]
    conv = await conversation(api, customer)
    assert conv.state == "handoff" and conv.owner == Owner.QUEUE
    [recheck] = await rechecks(api)
    assert recheck.outcome == "gave_up"

    clock.advance(timedelta(minutes=2))
    await import_order(api, clock, LATE)  # too late: a person has it now
    await api.app[RECHECKS].run_due()
    assert len(sent) == 1


async def test_rechecks_survive_a_restart_and_go_to_one_of_several_workers(
    api: Client,
    api_settings: Settings,
    clock: FakeClock,
    wechat: TestServer,
    sent: Sent,
    aiohttp_client: AiohttpClient,
) -> None:
    customer = await agreed(api, api_settings, clock)
    await wrote(customer, wechat, LATE)
    await api.close()  # the server stops with the recheck pending

    workers = [await aiohttp_client(create_app(api_settings, clock)) for _ in range(2)]
    clock.advance(timedelta(minutes=4))
    await import_order(workers[0], clock, LATE)
    rounds = await asyncio.gather(*(w.app[RECHECKS].run_due() for w in workers))
    assert sorted(r.found for r in rounds) == [0, 1]
    assert len(sent) == 1
    assert (await conversation(workers[1], customer)).state == "verify"


async def test_a_customer_who_moved_on_hears_nothing(
    api: Client, api_settings: Settings, clock: FakeClock, wechat: TestServer, sent: Sent
) -> None:
    customer = await agreed(api, api_settings, clock)
    await wrote(customer, wechat, LATE)
    await wrote(customer, wechat, KNOWN)  # another order, found at once
    clock.advance(timedelta(minutes=4))
    await import_order(api, clock, LATE)
    assert (await api.app[RECHECKS].run_due()).closed == 1
    assert sent == []
    [recheck] = await rechecks(api)
    assert recheck.outcome == "moved_on"
    conv = await conversation(api, customer)
    assert conv.state == "verify" and conv.data.order_no == KNOWN


async def test_one_open_recheck_per_conversation(
    api: Client, api_settings: Settings, clock: FakeClock, wechat: TestServer
) -> None:
    patient = await agreed(api, api_settings, clock, "oRecheck00000000000001")
    await wrote(patient, wechat, LATE)
    clock.advance(timedelta(minutes=5))
    await wrote(patient, wechat, LATE)  # the same number again: the running one goes on
    [kept] = await rechecks(api)
    assert kept.until == clock.now() + timedelta(minutes=25)

    other = await agreed(api, api_settings, clock, "oRecheck00000000000002")
    await wrote(other, wechat, LATE)
    await wrote(other, wechat, "DD20260503000888")  # another number replaces it
    _, first, second = await rechecks(api)
    assert first.outcome == "replaced" and first.done_at is not None
    assert second.order_no == "DD20260503000888" and second.done_at is None


@pytest.mark.parametrize("text", ["13812345678", "AB12345", "订单号是 12345"])
async def test_phone_numbers_and_malformed_numbers_schedule_nothing(
    api: Client, api_settings: Settings, clock: FakeClock, wechat: TestServer, text: str
) -> None:
    customer = await agreed(api, api_settings, clock)
    await wrote(customer, wechat, text)
    assert await rechecks(api) == []


class FlakyOrders:
    """An order backend that lists no shapes, and is down while ``down`` is set."""

    def __init__(self) -> None:
        self.orders: dict[str, OrderRecord] = {}
        self.down = False

    async def find(self, order_no: str) -> OrderRecord | None:
        if self.down:
            raise OrdersUnavailable()
        return self.orders.get(order_no)

    async def shapes(self) -> list[str]:
        return []

    async def paid_by(self, user_id: str, since: object, limit: int) -> list[OrderRecord]:
        return []


async def test_with_an_order_backend_long_numbers_are_rechecked_through_its_outages(
    api_settings: Settings,
    clock: FakeClock,
    wechat: TestServer,
    sent: Sent,
    aiohttp_client: AiohttpClient,
) -> None:
    backend = FlakyOrders()
    client = await aiohttp_client(create_app(api_settings, clock, orders=backend))
    await seed_demo(client.app[SESSIONS], clock.now())  # contacts
    customer = await agreed(client, api_settings, clock)
    await wrote(customer, wechat, "JD2026")  # too short to be sure: no recheck
    assert await rechecks(client) == []
    await wrote(customer, wechat, "JD20260503887766")  # no shapes: 14+ characters will do
    assert len(await rechecks(client)) == 1

    backend.down = True
    backend.orders["JD20260503887766"] = OrderRecord("JD20260503887766", 6660, contact="alice")
    clock.advance(timedelta(minutes=2))
    assert (await client.app[RECHECKS].run_due()).waiting == 1  # cannot say: next time
    assert sent == []
    backend.down = False
    clock.advance(timedelta(minutes=2))
    assert (await client.app[RECHECKS].run_due()).found == 1
    assert len(sent) == 1
    await customer.say("66.6")
    assert (await conversation(client, customer)).state == "card_sent"


async def test_a_message_wechat_refuses_is_taken_back_and_tried_again(
    api: Client, api_settings: Settings, clock: FakeClock, wechat: TestServer, sent: Sent
) -> None:
    customer = await agreed(api, api_settings, clock)
    await wrote(customer, wechat, LATE)
    await import_order(api, clock, LATE)
    wechat.app[FAKE_STATE].fail_next(-1)  # WeChat busy
    clock.advance(timedelta(minutes=2))
    assert (await api.app[RECHECKS].run_due()).found == 0
    conv = await conversation(api, customer)
    assert conv.state == "ask_order" and conv.data.verify_failures == 1  # as it was
    async with api.app[SESSIONS]() as s:
        assert "bot-api" not in list(await s.scalars(select(Message.sender)))
    clock.advance(timedelta(minutes=2))
    assert (await api.app[RECHECKS].run_due()).found == 1
    assert len(sent) == 1
    assert (await conversation(api, customer)).state == "verify"
