"""POST/GET /wechat over real HTTP: refusals are clear 4xx, never 500, and change nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Literal

import defusedxml.ElementTree as safe_xml
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from bot.app import create_app
from bot.channels.wechat_oa import compute_signature
from bot.clock import FakeClock
from bot.config import Settings
from bot.keys import SESSIONS
from storage.models import Conversation, ProcessedMessage
from storage.records import OrderRecord
from tests.conftest import Customer

Client = TestClient[web.Request, web.Application]


async def rows(client: Client) -> tuple[int, int]:
    async with client.app[SESSIONS]() as s:
        convs = await s.scalar(select(func.count()).select_from(Conversation))
        keys = await s.scalar(select(func.count()).select_from(ProcessedMessage))
    return int(convs or 0), int(keys or 0)


async def test_url_verification(client: Client, settings: Settings, clock: FakeClock) -> None:
    ts = str(int(clock.now().timestamp()))
    sig = compute_signature(settings.wechat.token.reveal(), ts, "n1")
    ok = await client.get(
        "/wechat", params={"signature": sig, "timestamp": ts, "nonce": "n1", "echostr": "123"}
    )
    assert ok.status == 200 and await ok.text() == "123"
    bad = await client.get(
        "/wechat", params={"signature": "0" * 40, "timestamp": ts, "nonce": "n1", "echostr": "1"}
    )
    assert bad.status == 403


async def test_bad_signature_is_403_and_changes_nothing(client: Client, customer: Customer) -> None:
    query, body = customer.codec.build_text(customer.openid, "同意", 1)
    query["msg_signature"] = "0" * 40
    resp = await client.post("/wechat", params=query, data=body)
    assert resp.status == 403
    assert await rows(client) == (0, 0)


async def test_plaintext_body_is_refused_in_safe_mode_and_changes_nothing(
    client: Client, settings: Settings, clock: FakeClock
) -> None:
    """The forgery hole: a copied signature triple cannot carry an invented plaintext body."""
    forger = Customer(client, settings, clock, openid="oInventedCustomer", mode="plain")
    query, body = forger.codec.build_text(forger.openid, "DD20250503123456", 1)
    resp = await client.post("/wechat", params=query, data=body)
    assert resp.status == 403
    assert await rows(client) == (0, 0)


@pytest.mark.parametrize(("wechat_encrypt_mode", "mode"), [("plain", "plain"), ("compat", "plain")])
async def test_one_signature_carries_one_message(
    client: Client, settings: Settings, clock: FakeClock, mode: Literal["plain"]
) -> None:
    customer = Customer(client, settings, clock, mode=mode)
    query, body = customer.codec.build_text(customer.openid, "你好", 7)
    first = await client.post("/wechat", params=query, data=body)
    assert first.status == 200
    before = await rows(client)
    # the same signature with an invented message (another customer, another MsgId)
    forged = body.replace(customer.openid.encode(), b"oInventedCustomer").replace(
        b"<MsgId>7<", b"<MsgId>8<"
    )
    refused = await client.post("/wechat", params=query, data=forged)
    assert refused.status == 403
    assert await rows(client) == before
    # WeChat retrying the very same message under the same signature is still answered
    retry = await client.post("/wechat", params=query, data=body)
    assert retry.status == 200 and await retry.read() == await first.read()
    assert await rows(client) == before


async def test_stale_timestamp_is_403(client: Client, customer: Customer, clock: FakeClock) -> None:
    query, body = customer.codec.build_text(customer.openid, "同意", 1)
    clock.advance(timedelta(seconds=301))
    resp = await client.post("/wechat", params=query, data=body)
    assert resp.status == 403
    assert await rows(client) == (0, 0)


async def test_oversized_body_is_413(client: Client, customer: Customer) -> None:
    query, _ = customer.codec.build_text(customer.openid, "同意", 1)
    resp = await client.post("/wechat", params=query, data=b"<xml>" + b"a" * 70_000 + b"</xml>")
    assert resp.status == 413
    health = await client.get("/healthz")
    assert health.status == 200


@pytest.mark.parametrize("wechat_encrypt_mode", ["compat"])
async def test_doctype_and_entities_are_400(
    client: Client, settings: Settings, clock: FakeClock
) -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        "<xml><ToUserName>gh</ToUserName><FromUserName>&lol2;</FromUserName>"
        "<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>x</Content>"
        "<MsgId>5</MsgId></xml>"
    )
    for mode in ("plain", "safe"):
        customer = Customer(client, settings, clock, mode=mode)
        query, body = customer.codec.build_document(bomb, customer.openid)
        resp = await client.post("/wechat", params=query, data=body)
        assert resp.status == 400, mode
    assert await rows(client) == (0, 0)


async def test_malformed_bodies_are_4xx_never_500(client: Client, customer: Customer) -> None:
    query, _ = customer.codec.build_text(customer.openid, "同意", 1)
    for body in (b"", b"not xml", b"<xml><Encrypt>", b"\xff\xfe\x00<", b"<xml></xml>"):
        resp = await client.post("/wechat", params=query, data=body)
        assert 400 <= resp.status < 500, (body, resp.status)
    assert (await client.get("/healthz")).status == 200


@pytest.mark.parametrize("wechat_encrypt_mode", ["compat"])
async def test_cdata_terminator_in_customer_text_keeps_reply_xml_valid(
    client: Client, settings: Settings, clock: FakeClock
) -> None:
    customer = Customer(client, settings, clock, mode="plain")
    await customer.say("你好")
    await customer.say("同意")
    query, body = customer.codec.build_text(customer.openid, "DD20990101000000 ]]><x>&", 9)
    resp = await client.post("/wechat", params=query, data=body)
    raw = await resp.read()
    root = safe_xml.fromstring(raw)  # parses: the reply is well-formed
    assert root.findtext("MsgType") == "text"
    # and a reply that quotes the customer's text verbatim survives too
    from bot.channels.wechat_oa import OARequest, OfficialAccount

    account = OfficialAccount(settings.wechat, clock)
    call = account.parse(OARequest(query=query, body=body))
    echoed = safe_xml.fromstring(account.render_text(call, "you said: ]]><x>&"))
    assert echoed.findtext("Content") == "you said: ]]><x>&"


async def test_healthz_and_metrics(client: Client, customer: Customer) -> None:
    await customer.say("同意")
    await customer.say("同意")
    assert (await client.get("/healthz")).status == 200
    metrics = await (await client.get("/metrics")).text()
    assert 'billbot_deliveries_total{channel="wechat",outcome="ok"} 2.0' in metrics


async def test_a_failing_turn_gets_friendly_words_in_the_customers_language(
    settings: Settings,
    clock: FakeClock,
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
) -> None:
    class OrdersDown:
        async def find(self, order_no: str) -> None:
            raise ConnectionError("order backend unreachable")

        async def shapes(self) -> list[str]:
            return []

        async def paid_by(self, user_id: str, since: object, limit: int) -> list[OrderRecord]:
            return []

    client = await aiohttp_client(create_app(settings, clock, orders=OrdersDown()))
    customer = Customer(client, settings, clock)
    await customer.say("hello there")
    await customer.say("ok")
    reply = await customer.say("my order is DD20250503123456")  # HTTP 200, checked in say()
    assert "send your last message again" in reply
    assert "Traceback" not in reply and "ConnectionError" not in reply
