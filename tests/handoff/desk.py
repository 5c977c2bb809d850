"""A help desk for the handoff tests: the bot, the queue service, agents, and WeChat's fake
API on a real local HTTP server, over the test's real database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
from aiohttp.test_utils import TestServer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.channels.wechat_api import TokenManager, WeChatApi
from bot.clock import FakeClock
from bot.config import Secret
from bot.engine.dispatcher import Dispatcher
from bot.handoff.events import EventBus
from bot.handoff.queue import AgentView, HandoffService
from bot.messages import Inbound, InboundKind
from storage.models import Agent
from storage.records import HandoffRecord
from storage.repositories import Repositories
from tests.engine.test_dispatcher import make_dispatcher
from tests.fakes.wechat_api import FAKE_STATE, FakeWeChatState, fake_wechat_app

Sessions = async_sessionmaker[AsyncSession]
ORDER = "DD20250503123456"
APP_ID, SECRET = "wxfake0000000001", "fake-secret-000000"
LEASE = timedelta(minutes=2)


@dataclass
class Desk:
    """A help desk: the bot, the queue service, agents, and WeChat's fake servers."""

    sessions: Sessions
    clock: FakeClock
    service: HandoffService
    bot: Dispatcher
    wechat: FakeWeChatState
    events: EventBus
    agents: list[AgentView]
    http: aiohttp.ClientSession
    msg_id: int = 0

    async def say(self, user: str, text: str) -> str:
        self.msg_id += 1
        self.wechat.customer_wrote(user, self.clock.now())
        inbound = Inbound("wechat", user, InboundKind.TEXT, text, f"msg:{self.msg_id}")
        return (await self.bot.handle(inbound)).reply

    async def queued(self, user: str, *before: str) -> int:
        """Drives a customer into the queue; returns the handoff id."""
        for text in ("你好", "同意", *before, "转人工"):
            await self.say(user, text)
        [item] = [i for i in await self.service.queue(self.agents[0]) if i.customer[:4] == user[:4]]
        return item.id

    def service_at(self, base_url: str, events: EventBus | None = None) -> HandoffService:
        """The queue service of a server whose WECHAT_API_BASE is ``base_url``."""
        secret = Secret(SECRET)
        tokens = TokenManager(self.http, self.sessions, base_url, APP_ID, secret, self.clock)
        api = WeChatApi(self.http, tokens, base_url)
        return HandoffService(self.sessions, self.clock, api, events or self.events, lease=LEASE)

    async def stored(self, handoff_id: int) -> HandoffRecord:
        async with self.sessions() as s:
            handoff = await Repositories.on(s).handoffs.get(handoff_id)
        assert handoff is not None
        return handoff


@asynccontextmanager
async def open_desk(
    sessions: Sessions, clock: FakeClock, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> AsyncIterator[Desk]:
    """An admin (agents[0]) and twenty agents a0…a19 (agents[1:]); the demo data is seeded."""
    fake = fake_wechat_app(clock, APP_ID, SECRET)
    server = await aiohttp_server(fake, access_log=None)
    base = str(server.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as http:
        tokens = TokenManager(http, sessions, base, APP_ID, Secret(SECRET), clock)
        events = EventBus()
        api = WeChatApi(http, tokens, base)
        service = HandoffService(sessions, clock, api, events, lease=LEASE)
        agents = []
        async with sessions() as s, s.begin():
            for name, role in [("admin", "admin")] + [(f"a{i}", "agent") for i in range(20)]:
                row = Agent(
                    name=name,
                    role=role,
                    password_hash="-",
                    must_change_password=False,
                    created_at=clock.now(),
                )
                s.add(row)
                await s.flush()
                agents.append(AgentView(row.id, name, role))
        yield Desk(
            sessions,
            clock,
            service,
            make_dispatcher(sessions, clock, handoffs=service),
            fake[FAKE_STATE],
            events,
            agents,
            http,
        )


def user(n: int) -> str:
    return f"u{n:03d}Customer000000000000000{n:03d}"
