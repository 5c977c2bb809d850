"""WeCom end to end over real HTTP: card → contact way with its state → encrypted "contact
added" event → remark and welcome, against a local fake of WeCom's API."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.app import create_app
from bot.channels.wecom import WeComClientCodec
from bot.clock import FakeClock
from bot.config import Settings
from bot.demo import seed_demo
from bot.funnel import funnel_report
from bot.keys import CONTACT_WAYS, SESSIONS
from bot.privacy.watermark import render_qr_png, watermark_png
from storage.models import ApiError, Card, FunnelEvent, Message
from storage.records import ContactRecord
from storage.repositories import ContactRepository
from tests.conftest import Customer
from tests.fakes.wecom_api import FAKE_WECOM_STATE, FakeWeComState, fake_wecom_app, qr_png

Client = TestClient[web.Request, web.Application]
CORP_ID = "ww0123456789abcdef"
CORP_SECRET = "contact-secret-for-tests"
WECOM_TOKEN = "wecomcallbacktoken"
WECOM_AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
MEMBER = "wangxm"
OWN_QR = "https://u.wechat.com/EDemoAlice-billbot-2025"
ORDER = "DD20250503123456"
CARD_PATH = re.compile(r"http://bot\.test(/card/[A-Za-z0-9_.-]+)")


@dataclass
class WeCom:
    client: Client
    fake: FakeWeComState
    codec: WeComClientCodec
    clock: FakeClock
    settings: Settings

    async def card_for(self, n: int = 1) -> tuple[Customer, str]:
        """A new customer who gets a card; returns them and the card page's path."""
        customer = Customer(
            self.client,
            self.settings,
            self.clock,
            openid=f"oWeComCustomer{n:06d}",
            first_msg_id=n * 100,
        )
        await customer.say(ORDER)
        await customer.say("同意")
        match = CARD_PATH.search(await customer.say("128.5"))
        assert match
        return customer, match.group(1)

    async def added(
        self, state: str | None, external: str = "wmExternal001", welcome: str | None = None
    ) -> int:
        query, body = self.codec.contact_event(
            "add_external_contact", MEMBER, external, state=state, welcome_code=welcome
        )
        resp = await self.client.post("/wecom", params=query, data=body)
        assert await resp.text() == "success" or resp.status != 200
        return resp.status

    async def cards(self) -> list[Card]:
        async with self.client.app[SESSIONS]() as s:
            return list(await s.scalars(select(Card).order_by(Card.id)))

    async def count(self, model: Any) -> int:
        async with self.client.app[SESSIONS]() as s:
            return int(await s.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
async def wecom(
    db_url: str,
    clock: FakeClock,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
) -> WeCom:
    fake_app = fake_wecom_app(clock, CORP_ID, CORP_SECRET)
    fake_server = await aiohttp_server(fake_app, access_log=None)
    settings = Settings.from_env(
        {
            "BILLBOT_DATABASE_URL": db_url,
            "BILLBOT_PUBLIC_URL": "http://bot.test",
            "WECOM_CORP_ID": CORP_ID,
            "WECOM_SECRET": CORP_SECRET,
            "WECOM_TOKEN": WECOM_TOKEN,
            "WECOM_AES_KEY": WECOM_AES_KEY,
            "WECOM_API_BASE": str(fake_server.make_url("")).rstrip("/"),
        }
    )
    client = await aiohttp_client(create_app(settings, clock))
    sessions = client.app[SESSIONS]
    await seed_demo(sessions, clock.now())
    async with sessions() as s, s.begin():
        await ContactRepository(s).upsert_many(
            [
                ContactRecord(
                    contact="alice",
                    name="王小美（售后）",
                    wechat_id="wx_ab12cd89",
                    store="旗舰店",
                    qr_url=OWN_QR,
                    wecom_userid=MEMBER,
                )
            ],
            clock.now(),
        )
    fake = fake_app[FAKE_WECOM_STATE]
    fake.add_member(MEMBER)
    codec = WeComClientCodec(CORP_ID, WECOM_TOKEN, WECOM_AES_KEY, clock)
    return WeCom(client, fake, codec, clock, settings)


async def test_card_contact_way_add_event_remark_and_welcome(wecom: WeCom) -> None:
    customer, page = await wecom.card_for()
    assert (await wecom.client.get(page)).status == 200
    qr = await wecom.client.get(f"{page}/qr.png")
    assert qr.status == 200 and qr.content_type == "image/png"

    [way] = wecom.fake.contact_ways.values()
    [card] = await wecom.cards()
    assert (way.user, way.state, way.skip_verify, way.type, way.scene) == (
        [MEMBER],
        card.state,
        True,
        1,
        2,
    )
    assert card.config_id in wecom.fake.contact_ways
    # the page shows WeCom's own QR image, watermarked with the customer's masked id
    expected = watermark_png(
        qr_png(f"https://work.weixin.qq.com/u/fake-{card.config_id}"), "oWeC****01"
    )
    assert await qr.read() == expected
    # reloading the page does not make a second contact way
    assert (await wecom.client.get(f"{page}/qr.png")).status == 200
    assert len(wecom.fake.contact_ways) == 1

    wecom.fake.issue_welcome_code("WELCOME-1")
    assert await wecom.added(card.state, welcome="WELCOME-1") == 200

    [remark] = wecom.fake.remarks
    assert remark["userid"] == MEMBER and remark["external_userid"] == "wmExternal001"
    assert "3456" in remark["remark"] and "128.50" in remark["remark"]
    assert len(remark["remark"]) <= 20 and len(remark["description"]) <= 150
    assert "****3456" in remark["description"]
    assert customer.openid not in str(remark) and ORDER not in str(remark)
    [(code, text)] = wecom.fake.welcomes
    assert code == "WELCOME-1" and "3456" in text
    assert wecom.fake.deleted_ways == [card.config_id]
    [card] = await wecom.cards()
    assert card.added_at is not None and card.way_deleted_at is not None
    async with wecom.client.app[SESSIONS]() as s:
        system = list(await s.scalars(select(Message.text).where(Message.sender == "system")))
        steps = set(await s.scalars(select(FunnelEvent.step)))
    assert len(system) == 1 and "王小美" in system[0]
    assert {"card_opened", "contact_added"} <= steps

    # WeCom retries the same event: nothing happens twice
    before = (len(wecom.fake.remarks), len(wecom.fake.welcomes), await wecom.count(Message))
    query, body = wecom.codec.contact_event(
        "add_external_contact", MEMBER, "wmExternal001", state=card.state, welcome_code="WELCOME-1"
    )
    first = await wecom.client.post("/wecom", params=query, data=body)
    again = await wecom.client.post("/wecom", params=query, data=body)
    assert first.status == again.status == 200
    assert (len(wecom.fake.remarks), len(wecom.fake.welcomes), await wecom.count(Message)) == before


async def test_unknown_expired_and_used_states_are_answered_and_ignored(wecom: WeCom) -> None:
    _, page = await wecom.card_for(1)
    await wecom.card_for(2)
    await wecom.client.get(f"{page}/qr.png")
    first, second = await wecom.cards()

    assert await wecom.added("NotAStateWeIssued") == 200
    assert await wecom.added(None, external="wmNoState") == 200
    assert await wecom.added(first.state, external="wmFirst") == 200
    assert await wecom.added(first.state, external="wmSomeoneElse") == 200  # used
    wecom.clock.advance(timedelta(minutes=31))
    assert await wecom.added(second.state, external="wmLate") == 200  # expired
    assert len(wecom.fake.remarks) == 1  # only the first real add
    first, second = await wecom.cards()
    assert first.added_at is not None and second.added_at is None


async def test_forged_or_stale_callbacks_are_refused_and_change_nothing(wecom: WeCom) -> None:
    await wecom.card_for()
    [card] = await wecom.cards()
    query, body = wecom.codec.contact_event(
        "add_external_contact", MEMBER, "wmExternal001", state=card.state
    )
    forged = {**query, "msg_signature": "0" * 40}
    assert (await wecom.client.post("/wecom", params=forged, data=body)).status == 403
    other = WeComClientCodec(CORP_ID, "another-token", WECOM_AES_KEY, wecom.clock)
    q2, b2 = other.contact_event("add_external_contact", MEMBER, "wmX", state=card.state)
    assert (await wecom.client.post("/wecom", params=q2, data=b2)).status == 403
    wecom.clock.advance(timedelta(seconds=301))
    assert (await wecom.client.post("/wecom", params=query, data=body)).status == 403
    bad_xml = await wecom.client.post("/wecom", params=query, data=b"<xml><Encrypt>")
    assert 400 <= bad_xml.status < 500
    [card] = await wecom.cards()
    assert card.added_at is None and wecom.fake.remarks == []


async def test_url_verification(wecom: WeCom) -> None:
    ok = await wecom.client.get("/wecom", params=wecom.codec.verify_query("1616140317555161061"))
    assert ok.status == 200 and await ok.text() == "1616140317555161061"
    query = wecom.codec.verify_query("123")
    bad = await wecom.client.get("/wecom", params={**query, "msg_signature": "f" * 40})
    assert bad.status == 403


async def test_wecom_errors_never_cost_the_customer_their_card(wecom: WeCom) -> None:
    # an expired token is refreshed and the call retried once
    _, page = await wecom.card_for(1)
    wecom.fake.fail_next(42001, on="add_way")
    ok = await wecom.client.get(f"{page}/qr.png")
    assert ok.status == 200 and len(wecom.fake.contact_ways) == 1

    # WeCom refuses the contact way: the card falls back to the contact's own QR code
    _, page2 = await wecom.card_for(2)
    wecom.fake.fail_next(84061, on="add_way")
    fallback = await wecom.client.get(f"{page2}/qr.png")
    assert fallback.status == 200
    assert await fallback.read() == render_qr_png(OWN_QR, "oWeC****02")
    async with wecom.client.app[SESSIONS]() as s:
        codes = list(await s.scalars(select(ApiError.errcode)))
    assert codes == [84061]
    metrics = await (await wecom.client.get("/metrics")).text()
    assert 'billbot_api_errors_total{code="84061",service="wecom"} 1.0' in metrics

    # remark and welcome failing still mark the contact as added
    [_, second] = await wecom.cards()
    wecom.fake.fail_next(-1, on="remark")
    assert await wecom.added(second.state, external="wmTwo") == 200
    [_, second] = await wecom.cards()
    assert second.added_at is not None


async def test_a_contact_without_a_qr_of_its_own_gets_a_kind_page_when_wecom_fails(
    wecom: WeCom,
) -> None:
    async with wecom.client.app[SESSIONS]() as s, s.begin():
        await ContactRepository(s).upsert_many(
            [
                ContactRecord(
                    contact="alice",
                    name="王小美（售后）",
                    wechat_id="wx_ab12cd89",
                    store="旗舰店",
                    wecom_userid=MEMBER,
                )
            ],
            wecom.clock.now(),
        )
    _, page = await wecom.card_for()
    wecom.fake.fail_next(84061, on="add_way")
    resp = await wecom.client.get(f"{page}/qr.png")
    assert resp.status == 503 and resp.content_type == "text/html"
    assert "wx_ab12cd89" not in await resp.text()


async def test_spent_contact_ways_are_deleted_and_lost_contacts_counted(wecom: WeCom) -> None:
    _, page = await wecom.card_for(1)
    _, page2 = await wecom.card_for(2)
    await wecom.client.get(f"{page}/qr.png")
    await wecom.client.get(f"{page2}/qr.png")
    first, second = await wecom.cards()
    assert await wecom.added(first.state, external="wmFirst") == 200
    wecom.clock.advance(timedelta(minutes=31))
    assert await wecom.client.app[CONTACT_WAYS].delete_spent_ways() == 1  # the expired one
    assert set(wecom.fake.deleted_ways) == {first.config_id, second.config_id}
    assert wecom.fake.contact_ways == {}

    query, body = wecom.codec.contact_event("del_external_contact", MEMBER, "wmFirst")
    assert (await wecom.client.post("/wecom", params=query, data=body)).status == 200
    report = await funnel_report(wecom.client.app[SESSIONS])
    assert report.contacts_lost == 1
    assert (
        report.count(
            report.steps[0].__class__
            and __import__("storage.records").records.FunnelStep.CONTACT_ADDED
        )
        == 1
    )


async def test_hostile_bodies_are_refused_with_4xx(wecom: WeCom) -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]>'
        "<xml><ToUserName>x</ToUserName><CreateTime>1</CreateTime><Event>&lol;</Event></xml>"
    )
    query, body = wecom.codec.build_document(bomb)
    assert (await wecom.client.post("/wecom", params=query, data=body)).status == 400
    too_big = b"<xml><Encrypt>" + b"A" * 70_000 + b"</Encrypt></xml>"
    assert (await wecom.client.post("/wecom", params=query, data=too_big)).status == 413
    unsigned = await wecom.client.post("/wecom", data=body)
    assert unsigned.status == 403
    assert (await wecom.client.get("/healthz")).status == 200


async def test_a_card_opened_many_times_at_once_gets_one_contact_way(wecom: WeCom) -> None:
    import asyncio

    _, page = await wecom.card_for()
    answers = await asyncio.gather(*(wecom.client.get(f"{page}/qr.png") for _ in range(5)))
    assert [a.status for a in answers] == [200] * 5
    assert len(wecom.fake.contact_ways) == 1 and wecom.fake.requests["add_way"] == 1
