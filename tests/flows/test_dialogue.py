"""The customer's path through real HTTP callbacks: consent, order, verification, card, handoff."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from bot.app import create_app
from bot.clock import FakeClock
from bot.config import Settings, VerifyMode
from bot.demo import seed_demo
from bot.keys import SESSIONS
from bot.privacy.masking import mask_order_no
from bot.texts import Texts
from storage.models import Consent, Handoff, Message
from tests.conftest import Customer, Mode

ORDER = "DD20250503123456"
ZH = Texts("zh")
NOTICE = ZH.say("consent_notice", fields=ZH.say("fields_amount"))
ASK_AMOUNT = ZH.say("ask_amount", order=mask_order_no(ORDER))
CARD_LINK = re.compile(r"http://bot\.test/card/([A-Za-z0-9_.-]+)")


def assert_card(reply: str) -> None:
    assert "王小美（售后）" in reply
    assert "wx_ab****89" in reply
    assert "wx_ab12cd89" not in reply
    assert "订单尾号3456" in reply
    assert CARD_LINK.search(reply)


async def agree(customer: Customer, mode: str = "amount") -> None:
    """A new customer's first message gets the notice; then they agree."""
    notice = ZH.say("consent_notice", fields=ZH.say(f"fields_{mode}"))
    assert notice in await customer.say("你好")
    assert ZH.say("ask_order") in await customer.say("同意")


async def count(client: TestClient[web.Request, web.Application], model: type) -> int:
    async with client.app[SESSIONS]() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.parametrize(
    ("wechat_encrypt_mode", "mode"), [("plain", "plain"), ("compat", "compat"), ("safe", "safe")]
)
async def test_first_time_customer_gets_card_in_three_messages(
    client: TestClient[web.Request, web.Application],
    settings: Settings,
    clock: FakeClock,
    mode: Mode,
) -> None:
    customer = Customer(client, settings, clock, mode=mode)
    first = await customer.say(ORDER)
    assert NOTICE in first and ZH.say("consent_held") in first  # the order number is held
    second = await customer.say("同意")
    assert second.endswith(ASK_AMOUNT)
    assert_card(await customer.say("128.5"))
    assert await count(client, Consent) == 1


async def test_returning_customer_gets_card_in_two_messages(
    client: TestClient[web.Request, web.Application], customer: Customer, clock: FakeClock
) -> None:
    await customer.say("你好")
    await customer.say("好的")
    assert_card(await customer.say(f"订单号：{ORDER}") + await customer.say("¥128.50"))
    # another bill later: straight to the order number, consent not asked nor logged again
    ask = await customer.say("DD-2025-0503-123456")
    assert ask == ASK_AMOUNT  # no notice again
    assert_card(await customer.say("128块5"))
    assert await count(client, Consent) == 1


async def test_order_and_amount_in_one_message(customer: Customer) -> None:
    await customer.say("在吗")
    await customer.say("1")
    assert_card(await customer.say(f"订单{ORDER}，付了128.5元"))


async def test_order_held_unread_until_consent_then_used(customer: Customer) -> None:
    notice = await customer.say(f"我的订单是 {ORDER}")
    assert "****3456" not in notice  # not looked up before consent
    reply = await customer.say("ok")
    assert "****3456" in reply


async def test_declining_drops_the_held_order(customer: Customer) -> None:
    await customer.say(ORDER)
    declined = await customer.say("不同意")
    assert declined == ZH.say("consent_declined")
    again = await customer.say("同意")
    assert again.endswith(ZH.say("ask_order"))  # the held order number is gone


async def test_wrong_amount_three_times_goes_to_handoff_queue(
    client: TestClient[web.Request, web.Application], customer: Customer
) -> None:
    await agree(customer)
    await customer.say(ORDER)
    first = await customer.say("100")
    assert first == ZH.say("verify_wrong", order=mask_order_no(ORDER), left=2)
    await customer.say("101")
    third = await customer.say("102")
    ref = re.search(r"服务单号：([A-Z0-9]{8})", third)
    assert ref, third
    assert await count(client, Handoff) == 1
    # the right amount now no longer works: the customer is queued, guessing is over
    queued = await customer.say("128.50")
    assert ref.group(1) in queued and "队列" in queued


@pytest.mark.parametrize("phrase", ["转人工", "人工客服", "human"])
async def test_asking_for_a_person_works_at_any_step(customer: Customer, phrase: str) -> None:
    await agree(customer)
    await customer.say(ORDER)
    reply = await customer.say(phrase)
    assert re.search(r"([A-Z0-9]{8})", reply)


async def test_unknown_input_gets_guidance_with_an_example(customer: Customer) -> None:
    await agree(customer)
    reply = await customer.say("你们这个怎么回事")
    assert "DD20251231000123" in reply  # an example, not an error code
    assert "error" not in reply.lower()


async def test_unknown_order_is_explained_and_rechecked(customer: Customer) -> None:
    await agree(customer)
    reply = await customer.say("DD20990101000000")
    order = mask_order_no("DD20990101000000")
    assert reply == Texts("zh").say("order_recheck_scheduled", order=order, minutes=30)


async def test_english_customer_is_answered_in_english(customer: Customer) -> None:
    first = await customer.say("hello")
    assert "Reply" in first
    reply = await customer.say("ok")
    assert "order number" in reply


async def test_subscribe_greets_and_starts_the_dialogue(customer: Customer) -> None:
    reply = await customer.event("subscribe")
    assert reply.startswith(ZH.say("greeting")) and NOTICE in reply


async def test_image_gets_guidance(customer: Customer) -> None:
    query, body = customer.codec.build_raw(
        customer.openid,
        "<MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[http://x/y.jpg]]></PicUrl>"
        "<MediaId><![CDATA[m1]]></MediaId><MsgId>77</MsgId>",
    )
    reply = await customer.post(query, body)
    assert reply.startswith(ZH.say("unsupported"))


async def test_withdrawing_consent_asks_again_next_time(customer: Customer) -> None:
    await agree(customer)
    assert await customer.say("撤回同意") == ZH.say("consent_withdrawn")
    assert ZH.say("consent_held") in await customer.say(ORDER)  # consent asked again


@pytest.mark.parametrize("word", ["同意", "好", "1", "ok"])
async def test_one_word_agrees(customer: Customer, word: str) -> None:
    await customer.say("你好")
    assert (await customer.say(word)).endswith(ZH.say("ask_order"))


async def test_the_card_link_in_the_reply_opens_the_card_page(
    client: TestClient[web.Request, web.Application], customer: Customer
) -> None:
    await agree(customer)
    await customer.say(ORDER)
    link = CARD_LINK.search(await customer.say("128.50"))
    assert link
    page = await client.get(f"/card/{link.group(1)}")
    html = await page.text()
    assert page.status == 200
    assert "wx_ab****89" in html and "订单尾号3456" in html and "wx_ab12cd89" not in html
    qr = await client.get(f"/card/{link.group(1)}/qr.png")
    assert qr.status == 200 and (await qr.read()).startswith(b"\x89PNG")


async def test_concurrent_redeliveries_over_http_get_identical_replies(
    client: TestClient[web.Request, web.Application], customer: Customer
) -> None:
    await agree(customer)
    query, body = customer.codec.build_text(customer.openid, ORDER, 4242)
    replies = await asyncio.gather(*(customer.post(query, body) for _ in range(3)))
    assert len(set(replies)) == 1 and "****3456" in replies[0]
    async with client.app[SESSIONS]() as s:
        inbound = await s.scalar(
            select(func.count()).select_from(Message).where(Message.direction == "in")
        )
    assert inbound == 3  # 你好, 同意 and the order number once


@pytest.mark.parametrize(
    ("mode", "question", "wrong", "right"),
    [
        ("card_last4_date", "后四位", "1234 5月3日", "卡号尾号6789，5月3日付的"),
        ("tracking_no", "快递单号", "SF0000000000", "sf 1234 567 890"),
    ],
)
async def test_other_verification_modes(
    settings: Settings,
    clock: FakeClock,
    aiohttp_client: Callable[
        [web.Application], Awaitable[TestClient[web.Request, web.Application]]
    ],
    mode: str,
    question: str,
    wrong: str,
    right: str,
) -> None:
    moded = replace(settings, verify_mode=VerifyMode(mode))
    app = create_app(moded, clock)
    client = await aiohttp_client(app)
    await seed_demo(app[SESSIONS], clock.now())
    customer = Customer(client, moded, clock)
    await agree(customer, mode)
    assert question in await customer.say(ORDER)
    assert (await customer.say(wrong)).startswith(ZH.say("verify_wrong", order="****3456", left=2))
    assert_card(await customer.say(right))
