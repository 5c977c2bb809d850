"""Shared fixtures: a real database (SQLite file always; PostgreSQL when configured), the fake
clock, the app on a real local HTTP server, and a customer speaking WeChat's protocol."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Literal

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.app import create_app
from bot.channels.wechat_oa import OAClientCodec
from bot.clock import FakeClock
from bot.config import DEMO_APP_ID, DEMO_APP_SECRET, Settings
from bot.demo import seed_demo
from storage.crypto import configure as configure_keyring
from storage.db import create_engine, migrate, session_factory
from tests.fakes.wechat_api import FAKE_STATE, FakeWeChatState, fake_wechat_app

POSTGRES_URL = os.environ.get("BILLBOT_TEST_POSTGRES_URL", "")
SKIP_PG = pytest.mark.skipif(
    not POSTGRES_URL,
    reason="set BILLBOT_TEST_POSTGRES_URL (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test)"
    " to run against PostgreSQL; .ci/run sets it",
)
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=SKIP_PG),
]
Mode = Literal["plain", "compat", "safe"]


async def reset_postgres(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


@pytest.fixture(autouse=True)
def field_keys() -> None:
    """Every test starts with the default settings' field-encryption keys (the app and the
    CLI set their own from their settings, as in production)."""
    configure_keyring([k.reveal() for k in Settings.from_env({}).secret_keys])


@pytest.fixture(params=BACKENDS)
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        await reset_postgres(POSTGRES_URL)
        return POSTGRES_URL
    return f"sqlite+aiosqlite:///{tmp_path}/billbot.db"


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(db_url)
    await migrate(eng)
    yield eng
    await eng.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def wechat(
    aiohttp_server: Callable[..., Awaitable[TestServer]], clock: FakeClock
) -> TestServer:
    """The fake WeChat API, on its own local server."""
    return await aiohttp_server(
        fake_wechat_app(clock, DEMO_APP_ID, DEMO_APP_SECRET), access_log=None
    )


@pytest.fixture
def wechat_state(wechat: TestServer) -> FakeWeChatState:
    state = wechat.app[FAKE_STATE]
    assert isinstance(state, FakeWeChatState)
    return state


@pytest.fixture
def wechat_encrypt_mode() -> Mode:
    """The server's WECHAT_ENCRYPT_MODE; a test parametrizes this name to change it."""
    return "safe"


@pytest.fixture
def settings(db_url: str, wechat_encrypt_mode: Mode) -> Settings:
    return Settings.from_env(
        {
            "BILLBOT_DATABASE_URL": db_url,
            "BILLBOT_PUBLIC_URL": "http://bot.test",
            "WECHAT_ENCRYPT_MODE": wechat_encrypt_mode,
        }
    )


@pytest.fixture
async def client(
    settings: Settings,
    clock: FakeClock,
    aiohttp_client: Callable[
        [web.Application], Awaitable[TestClient[web.Request, web.Application]]
    ],
) -> TestClient[web.Request, web.Application]:
    """The app on a real local HTTP server, its database migrated and seeded with demo data."""
    app = create_app(settings, clock)
    test_client = await aiohttp_client(app)
    from bot.keys import SESSIONS

    await seed_demo(app[SESSIONS], clock.now())
    return test_client


class Customer:
    """A customer on WeChat: each ``say`` is a signed (and, unless plain, encrypted) callback."""

    def __init__(
        self,
        client: TestClient[web.Request, web.Application],
        settings: Settings,
        clock: FakeClock,
        openid: str = "oCustomer0000000000000000001",
        mode: Mode = "safe",
        first_msg_id: int = 1000,
    ) -> None:
        self.client = client
        self.codec = OAClientCodec(settings.wechat, clock, mode)
        self.openid = openid
        self._next_id = first_msg_id  # MsgIds are unique across customers, as WeChat's are

    def next_msg_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def post(self, query: dict[str, str], body: bytes) -> str:
        resp = await self.client.post("/wechat", params=query, data=body)
        payload = await resp.read()
        assert resp.status == 200, payload
        return self.codec.read_reply(payload)

    async def say(self, text: str, msg_id: int | None = None) -> str:
        query, body = self.codec.build_text(self.openid, text, msg_id or self.next_msg_id())
        return await self.post(query, body)

    async def event(self, event: str, key: str = "") -> str:
        query, body = self.codec.build_event(self.openid, event, key)
        return await self.post(query, body)


@pytest.fixture
def customer(
    client: TestClient[web.Request, web.Application], settings: Settings, clock: FakeClock
) -> Customer:
    return Customer(client, settings, clock)


@pytest.fixture
async def seeded(sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> None:
    await seed_demo(sessions, clock.now())
