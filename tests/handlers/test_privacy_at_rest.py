"""Canaries: personal values go through the whole product — the dialogue, a card opened, a
handoff with an agent's reply and note, the retention job — and then the raw database (the
SQLite file with its WAL, or a PostgreSQL dump) and every log line are searched for them."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy.engine import make_url

from bot.clock import FakeClock
from bot.config import Settings
from bot.keys import SESSIONS
from storage.records import ContactRecord, OrderRecord
from storage.repositories import ContactRepository, OrderRepository
from storage.retention import purge_expired
from tests.conftest import Customer
from tests.fakes.wechat_api import FakeWeChatState
from tests.handlers.conftest import Browser, ready_agent

Client = TestClient[web.Request, web.Application]
OPENID = "oCanaryOpenId7Q3xZ9kLmN0pR2s"
ORDER = "CN20261202771234"
WECHAT_ID = "wx_canaryzz81"
QR = "https://u.wechat.com/CanaryQr771"
TRACKING = "SF8877665544"
PHONE = "13912345678"
CANARIES = [OPENID, ORDER, WECHAT_ID, "CanaryQr771", TRACKING, PHONE, "139 1234 5678"]
CARD = re.compile(r"http://bot\.test(/card/[A-Za-z0-9_.-]+)")


async def raw_database(db_url: str) -> bytes:
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        path = Path(str(url.database))
        return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
    proc = await asyncio.create_subprocess_exec(
        "pg_dump",
        "-h",
        url.host or "127.0.0.1",
        "-p",
        str(url.port or 5432),
        "-U",
        url.username or "postgres",
        url.database or "test",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err
    return out


async def test_no_personal_value_is_stored_or_logged_in_clear(
    api: Client,
    db_url: str,
    settings: Settings,
    clock: FakeClock,
    wechat_state: FakeWeChatState,
    browsers: Callable[[], Browser],
    caplog: pytest.LogCaptureFixture,
) -> None:
    if not db_url.startswith("sqlite"):
        import shutil

        if shutil.which("pg_dump") is None:
            pytest.skip("needs pg_dump (Debian: apt-get install postgresql-client)")
    caplog.set_level(logging.DEBUG)
    sessions = api.app[SESSIONS]
    async with sessions() as s, s.begin():
        await ContactRepository(s).upsert_many(
            [ContactRecord(contact="canary", name="金丝雀", wechat_id=WECHAT_ID, qr_url=QR)],
            clock.now(),
        )
        await OrderRepository(s).upsert_many(
            [
                OrderRecord(
                    order_no=ORDER,
                    amount_cents=4321,
                    contact="canary",
                    payer_openid=OPENID,
                    card_last4="9876",
                    tracking_no=TRACKING,
                )
            ],
            clock.now(),
        )

    customer = Customer(api, settings, clock, openid=OPENID)
    await customer.say(ORDER)
    # the customer paid the order with this WeChat: the card follows the consent at once
    card = CARD.search(await customer.say("同意"))
    assert card
    assert (await api.get(card.group(1))).status == 200
    assert (await api.get(f"{card.group(1)}/qr.png")).status == 200
    await customer.say(f"我的电话是 139 1234 5678，也可以打 {PHONE}")
    await customer.say("转人工")
    wechat_state.customer_wrote(OPENID, clock.now())

    agent = await ready_agent(api, browsers(), "amy")
    taken = await (await agent.post("/api/handoffs/claim-next")).json()
    handoff = taken["item"]["id"]
    assert (await agent.post(f"/api/handoffs/{handoff}/reply", {"text": "您好"})).status == 200
    await agent.post(f"/api/handoffs/{handoff}/note", {"text": f"客户电话 {PHONE}"})
    assert wechat_state.sent == [(OPENID, "您好")]
    await agent.post(f"/api/handoffs/{handoff}/resolve")

    clock.advance(timedelta(hours=73))
    await purge_expired(sessions, clock.now())

    stored = await raw_database(db_url)
    found = [c for c in CANARIES if c.encode() in stored]
    assert found == [], f"in clear in the database: {found}"
    logged = "\n".join(
        r.getMessage() + (r.exc_text or "") for r in caplog.records if r.name != "aiohttp.access"
    )
    assert [c for c in CANARIES if c in logged] == []
