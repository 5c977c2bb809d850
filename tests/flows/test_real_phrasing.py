"""What customers really send, end to end over real HTTP callbacks: pasted bills, look-alike
letters, refusals of a person, deletion in their own words, numbers that are not orders."""

from __future__ import annotations

import zlib

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from bot.clock import FakeClock
from bot.config import Settings
from bot.keys import SESSIONS
from bot.privacy.masking import mask_order_no
from bot.texts import Texts
from storage.models import Consent, Conversation, Handoff, Message
from tests.conftest import Customer

Client = TestClient[web.Request, web.Application]
ZH = Texts("zh")
DD = "DD20250503123456"
ALIPAY = "2025050322001456781234567890"
WXPAY = "4200001234202505031234567890"


async def agreed(client: Client, settings: Settings, clock: FakeClock, openid: str) -> Customer:
    first = zlib.crc32(openid.encode()) % 10**9  # MsgIds are unique across customers
    c = Customer(client, settings, clock, openid=openid, first_msg_id=first)
    await c.say("你好")
    await c.say("同意")
    return c


async def count(client: Client, model: type) -> int:
    async with client.app[SESSIONS]() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


BILLS = {
    "alipay": (
        "账单详情\n-56.80\n交易成功\n支付时间 2025-05-03 10:00:12\n付款方式 余额宝\n"
        "商品说明 城东店消费\n交易号 2025050322001456781234567890\n"
        "商家订单号 T200P2025050310001200981"
    ),
    "wechat_pay": (
        "支付成功\n-99.00\n商户全称 某某旗舰店\n支付时间 2025年5月2日 18:00:45\n"
        "支付方式 招商银行储蓄卡(4321)\n交易单号 4200001234202505031234567890\n"
        "商户单号 1217752501201505020087351"
    ),
    "merchant": (
        "订单编号：DD20250503123456\n下单时间：2025-05-03 12:30:01\n商品总额：¥158.50\n"
        "运费：¥0.00\n优惠：-¥30.00\n实付款：¥128.50\n联系电话：138 0013 8000"
    ),
}


@pytest.mark.parametrize("app", sorted(BILLS))
async def test_a_pasted_bill_gets_the_card_in_one_message(
    client: Client, settings: Settings, clock: FakeClock, app: str
) -> None:
    customer = await agreed(client, settings, clock, f"oBill{app:0>24}")
    reply = await customer.say(BILLS[app])
    assert "/card/" in reply, reply
    assert await count(client, Handoff) == 0


async def test_look_alike_letters_are_read_as_the_one_real_order(
    client: Client, settings: Settings, clock: FakeClock
) -> None:
    customer = await agreed(client, settings, clock, "oLookalike000000000000000001")
    reply = await customer.say("订单号DD2O25O5O3I23456")
    assert reply == ZH.say("ask_amount", order=mask_order_no(DD))


async def test_two_real_orders_in_one_message_are_asked_about(
    client: Client, settings: Settings, clock: FakeClock
) -> None:
    customer = await agreed(client, settings, clock, "oTwoOrders000000000000000001")
    reply = await customer.say(f"{ALIPAY} 还是 {WXPAY} 我记不清了")
    lines = "\n".join(f"{n}. {mask_order_no(o)}" for n, o in enumerate((ALIPAY, WXPAY), 1))
    assert reply == ZH.say("which_order", choices=lines)
    assert await customer.say("第二个") == ZH.say("ask_amount", order=mask_order_no(WXPAY))


@pytest.mark.parametrize(
    "text",
    ["不用转人工，我自己来", "别给我转人工", "人工客服刚才说让我发订单号", "no need for an agent"],
)
async def test_refusing_or_mentioning_a_person_is_not_asking_for_one(
    client: Client, settings: Settings, clock: FakeClock, text: str
) -> None:
    customer = await agreed(client, settings, clock, "oNoPerson0000000000000000001")
    await customer.say(text)
    assert await count(client, Handoff) == 0


async def test_a_deletion_request_in_the_customers_own_words_deletes_their_data(
    client: Client, settings: Settings, clock: FakeClock
) -> None:
    customer = await agreed(client, settings, clock, "oDeleteMe0000000000000000001")
    await customer.say(DD)
    assert await count(client, Message) > 0
    reply = await customer.say("我不想让你们留着我的资料，帮我都删了吧")
    assert reply == ZH.say("consent_withdrawn")
    assert await count(client, Message) == 0  # the transcript is gone
    async with client.app[SESSIONS]() as s:
        consent = (await s.scalars(select(Consent))).one()
        conversation = (await s.scalars(select(Conversation))).one()
    assert consent.withdrawn_at is not None
    assert "order_no" not in conversation.data


@pytest.mark.parametrize(
    "text", ["我的手机是 +86 138 0013 8000", "身份证 990101199001011234", "QQ 2468013579"]
)
async def test_a_phone_id_or_qq_number_is_not_taken_for_an_order(
    client: Client, settings: Settings, clock: FakeClock, text: str
) -> None:
    customer = await agreed(client, settings, clock, "oNotAnOrder00000000000000001")
    assert await customer.say(text) == ZH.say("order_hint")  # no guess spent on it
