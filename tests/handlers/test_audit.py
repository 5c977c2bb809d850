"""The audit log over real HTTP: logins, lockouts, unmasking, consent and withdrawal are
recorded, with customers under a pseudonym and free-text reasons sealed."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import Text, select, type_coerce

from bot.clock import FakeClock
from bot.config import Settings
from bot.keys import SESSIONS
from storage.models import AuditEntry
from storage.repositories import AuditRepository
from tests.conftest import Customer
from tests.handlers.conftest import PASSWORD, Browser, new_agent, ready_agent

Client = TestClient[web.Request, web.Application]
OPENID = "oAuditCustomer000000000001"
REASON = "客户投诉，电话 13912345678"


async def test_sensitive_acts_are_audited_without_personal_data(
    api: Client, settings: Settings, clock: FakeClock, browsers: Callable[[], Browser]
) -> None:
    customer = Customer(api, settings, clock, openid=OPENID)
    await customer.say("你好")
    await customer.say("同意")
    await customer.say("撤回同意")
    await customer.say("同意")
    await customer.say("转人工")

    await new_agent(api, "mallory")
    guesser = browsers()
    for _ in range(5):
        await guesser.login("mallory", "not the password at all")
    await guesser.login("nobody-by-this-name", "whatever it is, really")
    admin = await ready_agent(api, browsers(), "boss", "admin")
    item = (await (await admin.get("/api/queue")).json())["items"][0]
    shown = await admin.get(f"/api/handoffs/{item['id']}?" + urlencode({"unmask_reason": REASON}))
    assert shown.status == 200

    async with api.app[SESSIONS]() as s:
        entries = await AuditRepository(s).since(None)
        raw_reasons = list(await s.scalars(select(type_coerce(AuditEntry.reason, Text))))
    actions = [e.action for e in entries]
    assert actions.count("consent") == 2 and actions.count("withdraw") == 1
    assert actions.count("login_failed") >= 6 and "lockout" in actions
    assert "login" in actions and "unmask" in actions
    unmask = next(e for e in entries if e.action == "unmask")
    assert unmask.reason == REASON and unmask.target.startswith("handoff:")
    consent = next(e for e in entries if e.action == "consent")
    assert consent.actor.startswith("customer:") and OPENID not in consent.actor
    assert all(OPENID not in f"{e.actor}{e.target}{e.reason}" for e in entries)
    assert not any("13912345678" in r for r in raw_reasons)  # sealed at rest
    assert PASSWORD not in str(entries)
