"""Abuse limits over a real server: per-address login limits and lockouts (behind a trusted
proxy too), bodies that trickle or are abandoned, JSON nested to break the parser."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request
from sqlalchemy import func, select

from bot.app import create_app
from bot.channels.wechat_oa import OAClientCodec
from bot.clock import FakeClock
from bot.config import Settings
from bot.demo import seed_demo
from bot.handlers.clients import client_address
from bot.handlers.console import LOGINS_PER_MINUTE
from bot.keys import AGENTS, SESSIONS, SETTINGS
from storage.models import Conversation, ProcessedMessage

Client = TestClient[web.Request, web.Application]
AiohttpClient = Callable[[web.Application], Awaitable[Client]]
PROXY = ipaddress.ip_network("127.0.0.1/32")  # the test client connects from here
PASSWORD = "a long enough password"


@pytest.fixture
async def server(settings: Settings, clock: FakeClock, aiohttp_client: AiohttpClient) -> Client:
    """The app behind a trusted proxy (the test client's address), with a short body limit."""
    app = create_app(replace(settings, trusted_proxies=(PROXY,)), clock, body_deadline=0.3)
    client = await aiohttp_client(app)
    await seed_demo(app[SESSIONS], clock.now())
    return client


async def login(server: Client, name: str, password: str, client: str) -> int:
    resp = await server.post(
        "/api/login",
        json={"name": name, "password": password},
        headers={"X-Forwarded-For": f"{client}, 127.0.0.1"},
    )
    return resp.status


async def agent_with_password(server: Client, name: str) -> None:
    """A login whose password is PASSWORD (set as the console would, after the first login)."""
    view, one_time = await server.app[AGENTS].create(name)
    await server.app[AGENTS].change_password(view, one_time, PASSWORD)


async def test_a_guesser_elsewhere_cannot_lock_an_agent_out_of_their_desk(
    server: Client,
) -> None:
    await agent_with_password(server, "alice")
    for _ in range(6):
        assert await login(server, "alice", "wrong password!", "203.0.113.9") == 401
    assert await login(server, "alice", PASSWORD, "203.0.113.9") == 401  # locked from there
    assert await login(server, "alice", PASSWORD, "198.51.100.20") == 200  # not from her desk


async def test_logins_are_rate_limited_per_client_address(server: Client, clock: FakeClock) -> None:
    statuses = [
        await login(server, f"nobody{n}", "wrong password!", "203.0.113.9")
        for n in range(LOGINS_PER_MINUTE + 1)
    ]
    assert statuses[:-1] == [401] * LOGINS_PER_MINUTE
    assert statuses[-1] == 429
    refused = await server.post(
        "/api/login",
        json={"name": "x", "password": "y"},
        headers={"X-Forwarded-For": "203.0.113.9"},
    )
    assert refused.status == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60
    assert {"zh", "en"} <= set((await refused.json())["error"])
    # another client behind the same proxy is not slowed down
    assert await login(server, "nobody", "wrong password!", "198.51.100.20") == 401
    clock.advance(timedelta(minutes=1))
    assert await login(server, "nobody", "wrong password!", "203.0.113.9") == 401


async def test_an_untrusted_forwarded_header_is_ignored(
    settings: Settings, clock: FakeClock, aiohttp_client: AiohttpClient
) -> None:
    """Without BILLBOT_TRUSTED_PROXIES, X-Forwarded-For is anybody's word: a guesser cannot
    escape the limit by inventing addresses."""
    client = await aiohttp_client(create_app(settings, clock))
    await seed_demo(client.app[SESSIONS], clock.now())
    statuses = [
        await login(client, "nobody", "wrong password!", f"203.0.113.{n}")
        for n in range(LOGINS_PER_MINUTE + 1)
    ]
    assert statuses[-1] == 429


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 60_000,
        b'{"name": ' + b"{" * 30_000,
        b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
        b"\xff\xfe\x00garbage",
        b'"just a string"',
    ],
    ids=["deep-array", "deep-object-unclosed", "deep-object", "not-utf8", "not-an-object"],
)
async def test_malformed_or_deeply_nested_json_is_a_400(server: Client, body: bytes) -> None:
    resp = await server.post("/api/login", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert {"zh", "en"} <= set((await resp.json())["error"])


async def raw_request(
    server: Client | tuple[str, int], head: bytes, body: bytes, *, hang_up: bool
) -> bytes:
    """Sends ``head`` and part of a body on a raw connection; returns what the server answers
    (after a hang-up: nothing). With ``hang_up``, the head asks for "100 Continue", so the
    connection is dropped only once the server's handler is reading the body."""
    host, port = server if isinstance(server, tuple) else (server.host, server.port)
    reader, writer = await asyncio.open_connection(host, port)
    if hang_up:
        writer.write(head.replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n", 1))
        assert (await asyncio.wait_for(reader.readline(), timeout=10)).startswith(b"HTTP/1.1 100")
        writer.write(body)
    else:
        writer.write(head + body)
    await writer.drain()
    if hang_up:
        writer.close()
        await writer.wait_closed()
        return b""
    answer = await asyncio.wait_for(reader.read(), timeout=10)  # read() ends when it closes
    writer.close()
    return answer


@pytest.mark.parametrize("path", ["/api/login", "/wechat?signature=x&timestamp=1&nonce=n"])
async def test_a_body_slower_than_the_limit_is_cut_off(server: Client, path: str) -> None:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: bot.test\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000\r\n\r\n"
    ).encode()
    answer = await raw_request(server, head, b'{"name": "al', hang_up=False)
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"Connection: close" in answer  # read() returned: the server closed it


class Gate(logging.Handler):
    """Opens when a log record arrives (no sleeping until the server got round to it)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.opened = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.opened.set()


@pytest.fixture
async def served_as_in_production(
    settings: Settings, clock: FakeClock
) -> AsyncIterator[tuple[web.AppRunner, tuple[str, int]]]:
    """The app served as ``billbot serve`` serves it (``web.run_app``'s defaults: a handler
    is not cancelled when its client hangs up, unlike aiohttp's test server)."""
    app = create_app(settings, clock)
    runner = web.AppRunner(app, handler_cancellation=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield runner, (host, port)
    if runner.server is not None:
        await runner.cleanup()


async def test_an_abandoned_upload_logs_one_line_and_changes_nothing(
    served_as_in_production: tuple[web.AppRunner, tuple[str, int]],
    settings: Settings,
    clock: FakeClock,
) -> None:
    runner, address = served_as_in_production
    app = runner.app
    codec = OAClientCodec(settings.wechat, clock, "safe")
    query, body = codec.build_text("oCustomer0000000000000000001", "DD20250503123456", 4242)
    head = (
        f"POST /wechat?{urlencode(query)} HTTP/1.1\r\nHost: bot.test\r\n"
        f"Content-Type: text/xml\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    gate = Gate()
    logging.getLogger("bot").addHandler(gate)
    logging.getLogger("aiohttp").addHandler(gate)
    try:
        await raw_request(address, head, body[: len(body) // 2], hang_up=True)
        await asyncio.wait_for(gate.opened.wait(), timeout=10)
        async with app[SESSIONS]() as session:
            assert await session.scalar(select(func.count()).select_from(ProcessedMessage)) == 0
            assert await session.scalar(select(func.count()).select_from(Conversation)) == 0
        await runner.cleanup()  # waits for the request to be finished with: all it logs is in
    finally:
        logging.getLogger("bot").removeHandler(gate)
        logging.getLogger("aiohttp").removeHandler(gate)
    assert len(gate.records) == 1, [r.getMessage() for r in gate.records]
    (line,) = gate.records
    assert line.exc_info is None and "hung up" in line.getMessage()
    assert "\n" not in line.getMessage()


@pytest.mark.parametrize(
    ("remote", "forwarded", "client"),
    [
        ("127.0.0.1", "203.0.113.9", "203.0.113.9"),
        ("127.0.0.1", "198.51.100.1, 203.0.113.9", "203.0.113.9"),  # the proxy appended .9
        ("127.0.0.1", "203.0.113.9, 127.0.0.1", "203.0.113.9"),  # two proxies of ours
        ("127.0.0.1", "127.0.0.1", "127.0.0.1"),  # only proxies: the proxy itself
        ("127.0.0.1", "not-an-address", "127.0.0.1"),
        ("127.0.0.1", "", "127.0.0.1"),
        ("192.0.2.7", "203.0.113.9", "192.0.2.7"),  # not our proxy: its header is ignored
    ],
)
def test_the_client_address_believes_only_trusted_proxies(
    remote: str, forwarded: str, client: str
) -> None:
    app = web.Application()
    app[SETTINGS] = Settings.from_env({"BILLBOT_TRUSTED_PROXIES": "127.0.0.1"})
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    request = make_mocked_request("POST", "/api/login", headers=headers, app=app)
    request = request.clone(remote=remote)
    assert client_address(request) == client
