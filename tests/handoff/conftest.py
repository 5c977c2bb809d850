"""The ``desk`` fixture: see tests/handoff/desk.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp.test_utils import TestServer

from bot.clock import FakeClock
from tests.handoff.desk import Desk, Sessions, open_desk


@pytest.fixture
async def desk(
    sessions: Sessions,
    clock: FakeClock,
    seeded: None,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> AsyncIterator[Desk]:
    async with open_desk(sessions, clock, aiohttp_server) as opened:
        yield opened
