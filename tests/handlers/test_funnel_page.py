"""The admins' Funnel page, rendered on the server: who may see it, and what it shows."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import FakeClock
from bot.config import Settings
from bot.keys import SESSIONS
from storage.repositories import ApiErrorRepository
from tests.conftest import Customer
from tests.handlers.conftest import Browser, ready_agent

Client = TestClient[web.Request, web.Application]
STEP_ROW = re.compile(r'<tr data-step="(\w+)"><td>[^<]*</td><td>(\d+)</td>')


async def test_admins_see_the_funnel_with_the_counts_of_the_report(
    api: Client, browsers: Callable[[], Browser], settings: Settings, clock: FakeClock
) -> None:
    for n, texts in enumerate(
        (["你好", "同意", "DD20250503123456", "128.5"], ["你好", "不同意"], ["你好"]), start=1
    ):
        customer = Customer(api, settings, clock, openid=f"oPage{n:08d}", first_msg_id=n * 100)
        for text in texts:
            await customer.say(text)
    async with api.app[SESSIONS]() as s, s.begin():
        assert isinstance(s, AsyncSession)
        await ApiErrorRepository(s).record(
            "wecom", "add_contact_way", 84061, "not allowed", clock.now()
        )

    admin = await ready_agent(api, browsers(), "boss", "admin")
    resp = await admin.get("/console/funnel?since=2000-01-01&until=2099-12-31")
    assert resp.status == 200 and resp.content_type == "text/html"
    assert resp.headers["Cache-Control"] == "no-store"
    html = await resp.text()
    counts = dict(STEP_ROW.findall(html))
    assert counts["started"] == "3" and counts["card_issued"] == "1"
    assert counts["declined"] == "1" and counts["consented"] == "1"
    assert '<svg class="chart"' in html and html.count("<rect") == 11
    assert "84061" in html  # WeCom's errors, for admins
    assert "oPage" not in html  # no personal data on the page

    # a bad date is explained, not a 500
    bad = await admin.get("/console/funnel?since=yesterday")
    assert bad.status == 200 and 'role="alert"' in await bad.text()


async def test_agents_are_refused_and_strangers_sent_to_sign_in(
    api: Client, browsers: Callable[[], Browser]
) -> None:
    agent = await ready_agent(api, browsers(), "amy")
    refused = await agent.get("/console/funnel")
    assert refused.status == 403
    assert 'data-testid="funnel-forbidden"' in await refused.text()
    stranger = browsers()
    resp = await stranger.http.get(stranger.url("/console/funnel"), allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/console"


@pytest.mark.parametrize("path", ["/console/funnel?since=2026-13-01", "/console/funnel?until=x"])
async def test_odd_queries_never_fail(
    api: Client, browsers: Callable[[], Browser], path: str
) -> None:
    admin = await ready_agent(api, browsers(), "boss", "admin")
    assert (await admin.get(path)).status == 200
