"""The access log over a real HTTP server: no query strings, no card tokens, quiet by default."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.access_log import AccessLog, access_logger_class
from bot.app import create_app
from bot.clock import FakeClock
from bot.config import Settings
from tests.conftest import Customer

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]


async def serve_with(
    aiohttp_client: MakeClient, settings: Settings, clock: FakeClock, mode: AccessLog
) -> Client:
    server = TestServer(create_app(settings, clock))
    # the runner options are given when the server starts (TestServer() drops them)
    await server.start_server(
        access_log_class=access_logger_class(mode), access_log=logging.getLogger("billbot.access")
    )
    return await aiohttp_client(server)


async def test_all_mode_logs_every_request_without_query_strings(
    aiohttp_client: MakeClient,
    settings: Settings,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="billbot.access")
    client = await serve_with(aiohttp_client, settings, clock, AccessLog.ALL)
    customer = Customer(client, settings, clock, openid="oSecretOpenId000001")
    await customer.say("你好")
    await client.get("/api/queue", params={"openid": "oSecretOpenId000001", "reason": "r"})
    await client.get("/card/eyJzZWNyZXQiOiJ0b2tlbiJ9.c2ln")
    lines = [r.getMessage() for r in caplog.records if r.name == "billbot.access"]
    assert any('"POST /wechat" 200' in line for line in lines)
    assert any('"GET /api/queue" 401' in line for line in lines)
    assert any('"GET /card/…"' in line for line in lines)
    joined = "\n".join(lines)
    for secret in ("signature", "nonce", "oSecretOpenId", "eyJzZWNyZXQ", "?"):
        assert secret not in joined


async def test_errors_mode_skips_successes_and_polling(
    aiohttp_client: MakeClient,
    settings: Settings,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="billbot.access")
    client = await serve_with(aiohttp_client, settings, clock, AccessLog.ERRORS)
    await Customer(client, settings, clock).say("你好")
    await client.get("/healthz")
    await client.get("/api/queue")  # 401: a logged-out console polling
    await client.post("/wechat", params={"signature": "0" * 40}, data=b"<xml/>")
    lines = [r.getMessage() for r in caplog.records if r.name == "billbot.access"]
    assert len(lines) == 1 and '"POST /wechat" 403' in lines[0]


async def test_off_mode_logs_nothing(
    aiohttp_client: MakeClient,
    settings: Settings,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="billbot.access")
    client = await serve_with(aiohttp_client, settings, clock, AccessLog.OFF)
    await client.post("/wechat", data=b"<xml/>")
    assert not [r for r in caplog.records if r.name == "billbot.access"]


async def test_errors_mode_never_logs_the_consoles_pages_partials_static_files_or_reads(
    aiohttp_client: MakeClient,
    settings: Settings,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="billbot.access")
    client = await serve_with(aiohttp_client, settings, clock, AccessLog.ERRORS)
    quiet = [
        "/console",  # the page
        "/console/static/console-main.js",
        "/console/static/no-such-file.js",  # 404
        "/console/partials/queue",  # the server-rendered console's parts, logged out
        "/console/funnel",
        "/api/handoffs/1",  # an open conversation's view, polled while logged out: 401
        "/api/agents",
        "/api/canned",
        "/metrics",
        "/favicon.ico",  # browsers ask for it beside the console: 404
    ]
    statuses = [(await client.get(path)).status for path in quiet]
    assert any(status >= 400 for status in statuses)  # errors, and still not logged
    # actions refused are worth a line, from the JSON API and from the console's forms alike
    await client.post("/api/handoffs/1/claim")
    await client.post("/console/login", data={"name": "nobody", "password": "wrong"})
    lines = [r.getMessage() for r in caplog.records if r.name == "billbot.access"]
    assert len(lines) == 2, lines
    assert '"POST /api/handoffs/1/claim" 40' in lines[0]
    assert '"POST /console/login" 40' in lines[1]
