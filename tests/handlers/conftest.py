"""What the console's tests share: the app sending to a fake WeChat API, and agents' browsers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from markupsafe import escape
from pytest_aiohttp import AiohttpClient

from bot.app import create_app
from bot.clock import FakeClock
from bot.config import Settings
from bot.console.labels import console_catalogue
from bot.demo import seed_demo
from bot.keys import AGENTS, SESSIONS
from bot.texts import Lang
from tests.conftest import Customer
from tests.fakes.wechat_api import FakeWeChatState

Client = TestClient[web.Request, web.Application]
PASSWORD = "a long enough password"
HX = {"HX-Request": "true"}


@pytest.fixture
async def api(
    settings: Settings, clock: FakeClock, wechat: TestServer, aiohttp_client: AiohttpClient
) -> Client:
    """The whole app on a real local server, seeded, sending to the fake WeChat API."""
    base = str(wechat.make_url("")).rstrip("/")
    app = create_app(replace(settings, wechat_api_base=base), clock)
    client = await aiohttp_client(app)
    await seed_demo(app[SESSIONS], clock.now())
    return client


class Browser:
    """One agent's browser: its own cookie jar, and the CSRF token the page would keep."""

    def __init__(self, api: Client) -> None:
        self.api = api
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    def url(self, path: str) -> str:
        return str(self.api.make_url(path))

    async def login(self, name: str, password: str = PASSWORD) -> aiohttp.ClientResponse:
        resp = await self.http.post(
            self.url("/api/login"), json={"name": name, "password": password}
        )
        if resp.status == 200:
            self.csrf = (await resp.json())["csrf_token"]
        return resp

    async def get(self, path: str) -> aiohttp.ClientResponse:
        return await self.http.get(self.url(path))

    async def send(
        self, method: str, path: str, body: Any = None, *, csrf: bool = True, raw: bytes = b""
    ) -> aiohttp.ClientResponse:
        headers = {"X-CSRF-Token": self.csrf} if csrf else {}
        if raw:
            return await self.http.request(method, self.url(path), data=raw, headers=headers)
        return await self.http.request(method, self.url(path), json=body, headers=headers)

    async def post(
        self, path: str, body: Any = None, *, csrf: bool = True
    ) -> aiohttp.ClientResponse:
        return await self.send("POST", path, body if body is not None else {}, csrf=csrf)


@pytest.fixture
async def browsers(api: Client) -> AsyncIterator[Callable[[], Browser]]:
    opened: list[Browser] = []

    def open_browser() -> Browser:
        opened.append(Browser(api))
        return opened[-1]

    yield open_browser
    for browser in opened:
        await browser.http.close()


async def new_agent(api: Client, name: str, role: str = "agent") -> str:
    """A login as `billbot agents add` makes it; returns the one-time password."""
    _, one_time = await api.app[AGENTS].create(name, role)
    return one_time


async def ready_agent(api: Client, browser: Browser, name: str, role: str = "agent") -> Browser:
    """An agent who has logged in and replaced the one-time password."""
    one_time = await new_agent(api, name, role)
    assert (await browser.login(name, one_time)).status == 200
    resp = await browser.post("/api/password", {"old_password": one_time, "new_password": PASSWORD})
    assert resp.status == 200, await resp.text()
    return browser


async def queued_customer(
    api: Client, settings: Settings, clock: FakeClock, wechat: FakeWeChatState | None = None
) -> Customer:
    """A customer who asked for a person and waits in the queue; with ``wechat``, the fake
    WeChat API also knows they just wrote (its reply window is open)."""
    customer = Customer(api, settings, clock)
    for text in ("你好", "同意", "转人工"):
        await customer.say(text)
    if wechat is not None:
        wechat.customer_wrote(customer.openid, clock.now())
    return customer


async def hx_get(browser: Browser, path: str) -> tuple[aiohttp.ClientResponse, str]:
    """A partial of the server-rendered console, as htmx fetches it."""
    resp = await browser.http.get(browser.url(path), headers=HX)
    return resp, await resp.text()


async def hx_post(
    browser: Browser,
    path: str,
    form: Mapping[str, str] | None = None,
    *,
    csrf: bool = True,
    method: str = "POST",
) -> tuple[aiohttp.ClientResponse, str]:
    """A form of the server-rendered console, as htmx sends it (with the page's CSRF token)."""
    headers = {**HX, "X-CSRF-Token": browser.csrf} if csrf else dict(HX)
    resp = await browser.http.request(
        method, browser.url(path), data=dict(form or {}), headers=headers
    )
    return resp, await resp.text()


def said(key: str, lang: Lang = "zh", *, html: bool = True, **values: object) -> re.Pattern[str]:
    """The console's words for ``key`` as a page shows them (HTML-escaped, unless ``html`` is
    False: as a browser shows the text): the values given are filled in, any other placeholder
    matches anything. Tests find labels by their key, so rewording one is an edit to the
    catalogue alone."""

    def shown(text: object) -> str:
        return re.escape(str(escape(text)) if html else str(text))

    parts = re.split(r"\{(\w+)\}", console_catalogue(lang)[key])
    pieces = [
        shown(part) if n % 2 == 0 else shown(values[part]) if part in values else ".*?"
        for n, part in enumerate(parts)
    ]
    return re.compile("".join(pieces))
