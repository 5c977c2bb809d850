"""The outbound WeChat client against a local fake WeChat API, on SQLite and PostgreSQL:
token caching, early refresh, one refresher across processes, one bounded retry on a refused
token, the 48-hour window and the reply quota, and secrets kept out of logs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.channels.wechat_api import (
    MAX_WAITS,
    REFRESH_LEASE,
    REFRESH_MARGIN,
    TokenManager,
    WeChatApi,
    WeChatApiError,
)
from bot.clock import FakeClock
from bot.config import Secret
from storage.db import create_engine, session_factory
from storage.models import AccessToken
from storage.repositories.tokens import TokenRepository
from tests.fakes.wechat_api import FAKE_STATE, FakeWeChatState, fake_wechat_app

APP_ID = "wx0000000000fake01"
APP_SECRET = "s3cret-app-secret-never-logged"
OPENID = "oCustomer-wechat-api-0001"
DB_DRIVER_LOGGERS = ("aiosqlite", "asyncpg", "sqlalchemy")

Wait = Callable[[float], Awaitable[None]]
ServerFactory = Callable[..., Awaitable[TestServer]]


@pytest.fixture
async def token_sessions(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> async_sessionmaker[AsyncSession]:
    """The migrated database, plus the access_tokens table until its migration exists."""
    table: Table = AccessToken.__table__  # type: ignore[assignment]
    async with engine.begin() as conn:
        await conn.run_sync(table.create, checkfirst=True)
    return sessions


@pytest.fixture
async def other_process(
    db_url: str, token_sessions: object
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A second engine on the same database: what another worker process would have."""
    eng = create_engine(db_url)
    yield session_factory(eng)
    await eng.dispose()


@pytest.fixture
async def server(aiohttp_server: ServerFactory, clock: FakeClock) -> TestServer:
    # No access log: the token request line carries the secret (WeChat's logs have it too).
    return await aiohttp_server(fake_wechat_app(clock, APP_ID, APP_SECRET), access_log=None)


@pytest.fixture
def fake(server: TestServer) -> FakeWeChatState:
    return server.app[FAKE_STATE]


@pytest.fixture
def base_url(server: TestServer) -> str:
    return str(server.make_url("/")).rstrip("/")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def clock_wait(clock: FakeClock) -> Wait:
    """Waiting without sleeping: the fake clock moves on, and other tasks get a turn."""

    async def wait(seconds: float) -> None:
        clock.advance(timedelta(seconds=seconds))
        await asyncio.sleep(0)

    return wait


@pytest.fixture
def make_tokens(
    http: aiohttp.ClientSession,
    token_sessions: async_sessionmaker[AsyncSession],
    base_url: str,
    clock: FakeClock,
) -> Callable[..., TokenManager]:
    def make(**overrides: Any) -> TokenManager:
        args: dict[str, Any] = {
            "sessions": token_sessions,
            "app_secret": Secret(APP_SECRET),
            "wait": clock_wait(clock),
        }
        args.update(overrides)
        return TokenManager(
            http,
            args.pop("sessions"),
            base_url,
            APP_ID,
            args.pop("app_secret"),
            clock,
            **args,
        )

    return make


@pytest.fixture
def tokens(make_tokens: Callable[..., TokenManager]) -> TokenManager:
    return make_tokens()


@pytest.fixture
def api(http: aiohttp.ClientSession, tokens: TokenManager, base_url: str) -> WeChatApi:
    return WeChatApi(http, tokens, base_url)


async def test_send_within_window_reaches_the_customer(
    api: WeChatApi, fake: FakeWeChatState
) -> None:
    fake.customer_wrote(OPENID)
    await api.send_text(OPENID, "您好，我是客服小李。Hello!")
    assert fake.sent == [(OPENID, "您好，我是客服小李。Hello!")]


async def test_token_is_cached_across_sends(
    api: WeChatApi, fake: FakeWeChatState, token_sessions: async_sessionmaker[AsyncSession]
) -> None:
    fake.customer_wrote(OPENID)
    for n in range(4):
        await api.send_text(OPENID, f"message {n}")
    assert fake.token_requests == 1
    assert len(fake.sent) == 4
    async with token_sessions() as session:
        stored, expires_at = await TokenRepository(session).get(APP_ID)
    assert stored == fake.current
    assert expires_at is not None


async def test_token_survives_a_restart(
    make_tokens: Callable[..., TokenManager], fake: FakeWeChatState
) -> None:
    first = await make_tokens().token()
    again = await make_tokens().token()  # a new process: nothing in memory, the DB has it
    assert first == again
    assert fake.token_requests == 1


async def test_token_is_refreshed_early_when_less_than_5_minutes_are_left(
    api: WeChatApi, tokens: TokenManager, fake: FakeWeChatState, clock: FakeClock
) -> None:
    fake.customer_wrote(OPENID)
    await api.send_text(OPENID, "first")
    first = await tokens.token()

    clock.advance(timedelta(seconds=7200 - 301))  # 5 min 1 s left: still good
    assert await tokens.token() == first
    assert fake.token_requests == 1

    clock.advance(timedelta(seconds=2))  # 4 min 59 s left: replaced before it can lapse
    await api.send_text(OPENID, "second")
    assert fake.token_requests == 2
    assert await tokens.token() != first
    assert fake.sent == [(OPENID, "first"), (OPENID, "second")]


async def test_token_revoked_behind_our_back_is_replaced_once(
    api: WeChatApi, fake: FakeWeChatState
) -> None:
    fake.customer_wrote(OPENID)
    await api.send_text(OPENID, "before")
    fake.revoke_tokens()  # e.g. someone fetched a token in WeChat's debugging console

    await api.send_text(OPENID, "after")

    assert fake.sent == [(OPENID, "before"), (OPENID, "after")]
    assert fake.token_requests == 2
    assert fake.send_requests == 3  # the refused one, then one retry


@pytest.mark.parametrize("errcode", [40001, 40014, 42001])
async def test_token_refused_every_time_gives_up_after_one_retry(
    api: WeChatApi, fake: FakeWeChatState, errcode: int
) -> None:
    fake.customer_wrote(OPENID)
    fake.fail_next(errcode, times=10)

    with pytest.raises(WeChatApiError) as caught:
        await api.send_text(OPENID, "hello")

    assert caught.value.errcode == errcode
    assert fake.send_requests == 2
    assert fake.token_requests == 2
    assert fake.sent == []


async def test_expired_token_at_wechat_gets_42001_then_a_fresh_one(
    http: aiohttp.ClientSession,
    aiohttp_server: ServerFactory,
    token_sessions: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> None:
    # WeChat's clock runs ahead of ours: it considers our token expired while we don't.
    wechat_clock = FakeClock(clock.now())
    server = await aiohttp_server(
        fake_wechat_app(wechat_clock, APP_ID, APP_SECRET), access_log=None
    )
    fake = server.app[FAKE_STATE]
    base = str(server.make_url("/")).rstrip("/")
    tokens = TokenManager(http, token_sessions, base, APP_ID, Secret(APP_SECRET), clock)
    api = WeChatApi(http, tokens, base)
    fake.customer_wrote(OPENID)
    await api.send_text(OPENID, "before")

    wechat_clock.advance(timedelta(hours=2, seconds=1))
    fake.customer_wrote(OPENID)
    await api.send_text(OPENID, "after")

    assert fake.sent == [(OPENID, "before"), (OPENID, "after")]
    assert fake.send_requests == 3
    assert fake.token_requests == 2


async def test_outside_48_hours_is_refused_with_45015(
    api: WeChatApi, fake: FakeWeChatState, clock: FakeClock
) -> None:
    fake.customer_wrote(OPENID, clock.now() - timedelta(hours=48, minutes=1))

    with pytest.raises(WeChatApiError) as caught:
        await api.send_text(OPENID, "too late")

    assert caught.value.errcode == 45015 and caught.value.reached
    assert fake.sent == []


async def test_sixth_reply_is_refused_until_the_customer_writes_again(
    api: WeChatApi, fake: FakeWeChatState
) -> None:
    fake.customer_wrote(OPENID)
    for n in range(5):
        await api.send_text(OPENID, f"reply {n}")

    with pytest.raises(WeChatApiError) as caught:
        await api.send_text(OPENID, "reply 5")
    assert caught.value.errcode == 45047
    assert len(fake.sent) == 5

    fake.customer_wrote(OPENID)
    await api.send_text(OPENID, "reply 5")
    assert len(fake.sent) == 6
    assert fake.token_requests == 1  # quota errors never touch the token


async def test_unknown_openid(api: WeChatApi, fake: FakeWeChatState) -> None:
    with pytest.raises(WeChatApiError) as caught:
        await api.send_text("oNobody", "hello")
    assert caught.value.errcode == 40003


@pytest.mark.parametrize("errcode", [-1, 48001, 45009])
async def test_other_refusals_are_raised_without_retry(
    api: WeChatApi, fake: FakeWeChatState, errcode: int
) -> None:
    fake.customer_wrote(OPENID)
    fake.fail_next(errcode)
    with pytest.raises(WeChatApiError) as caught:
        await api.send_text(OPENID, "hello")
    assert caught.value.errcode == errcode and caught.value.reached  # WeChat answered
    assert fake.send_requests == 1


async def test_unreachable_wechat_is_an_error_not_a_loop(
    http: aiohttp.ClientSession,
    token_sessions: async_sessionmaker[AsyncSession],
    aiohttp_server: ServerFactory,
    clock: FakeClock,
) -> None:
    server = await aiohttp_server(fake_wechat_app(clock, APP_ID, APP_SECRET), access_log=None)
    base = str(server.make_url("/")).rstrip("/")
    await server.close()  # nothing listens there any more
    tokens = TokenManager(http, token_sessions, base, APP_ID, Secret(APP_SECRET), clock)

    with pytest.raises(WeChatApiError) as caught:
        await WeChatApi(http, tokens, base).send_text(OPENID, "hello")

    assert caught.value.errcode == -1 and not caught.value.reached
    # The failed refresh gave its lease back: the next caller may try at once.
    async with token_sessions.begin() as session:
        assert await TokenRepository(session).try_take_lease(APP_ID, clock.now(), REFRESH_LEASE)


async def test_two_processes_refreshing_at_once_make_one_token_request(
    make_tokens: Callable[..., TokenManager],
    other_process: async_sessionmaker[AsyncSession],
    fake: FakeWeChatState,
    clock: FakeClock,
) -> None:
    tasks: dict[str, asyncio.Task[str]] = {}

    def waiting_for(other: str) -> Wait:
        async def wait(seconds: float) -> None:
            # Whoever waits has seen the other's lease: only now may WeChat answer it.
            fake.release_token_requests()
            clock.advance(timedelta(seconds=seconds))
            await asyncio.wait({tasks[other]})

        return wait

    fake.hold_token_requests()
    first = make_tokens(wait=waiting_for("second"))
    second = make_tokens(sessions=other_process, wait=waiting_for("first"))
    tasks["first"] = asyncio.create_task(first.token())
    tasks["second"] = asyncio.create_task(second.token())
    async with asyncio.timeout(10):
        got = await asyncio.gather(*tasks.values())

    assert got[0] == got[1] == fake.current
    assert fake.token_requests == 1


async def test_many_callers_in_one_process_make_one_token_request(
    tokens: TokenManager, fake: FakeWeChatState
) -> None:
    got = await asyncio.gather(*(tokens.token() for _ in range(10)))
    assert set(got) == {fake.current}
    assert fake.token_requests == 1


async def test_a_stuck_refresher_is_waited_for_then_bypassed(
    tokens: TokenManager,
    fake: FakeWeChatState,
    clock: FakeClock,
    token_sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with token_sessions.begin() as session:  # another process took the lease, then hung
        assert await TokenRepository(session).try_take_lease(APP_ID, clock.now(), REFRESH_LEASE)
    start = clock.now()

    token = await tokens.token()

    assert token == fake.current
    assert fake.token_requests == 1
    waited = clock.now() - start
    assert waited == timedelta(seconds=0.5 * MAX_WAITS)  # bounded, and no real time passed
    async with token_sessions.begin() as session:  # storing the token ended the lease
        assert await TokenRepository(session).try_take_lease(APP_ID, clock.now(), REFRESH_LEASE)


async def test_an_expired_lease_is_taken_over_at_once(
    tokens: TokenManager,
    fake: FakeWeChatState,
    clock: FakeClock,
    token_sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with token_sessions.begin() as session:
        assert await TokenRepository(session).try_take_lease(APP_ID, clock.now(), REFRESH_LEASE)
    clock.advance(REFRESH_LEASE + timedelta(seconds=1))
    start = clock.now()

    assert await tokens.token() == fake.current
    assert clock.now() == start  # no waiting
    assert fake.token_requests == 1


async def test_old_token_is_used_while_another_process_refreshes_it(
    tokens: TokenManager,
    fake: FakeWeChatState,
    clock: FakeClock,
    token_sessions: async_sessionmaker[AsyncSession],
) -> None:
    old = await tokens.token()
    clock.advance(timedelta(seconds=7200 - 60))  # one minute left: due for refresh
    async with token_sessions.begin() as session:  # ...which another process is doing
        assert await TokenRepository(session).try_take_lease(APP_ID, clock.now(), REFRESH_LEASE)
    start = clock.now()

    assert await tokens.token() == old
    assert clock.now() == start
    assert fake.token_requests == 1


async def test_invalidate_leaves_a_newer_token_alone(
    tokens: TokenManager, token_sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    current = await tokens.token()
    await tokens.invalidate("an-older-token")
    assert await tokens.token() == current
    await tokens.invalidate(current)
    async with token_sessions() as session:
        assert await TokenRepository(session).get(APP_ID) == (None, None)


async def test_bad_secret_is_refused_with_40125(
    make_tokens: Callable[..., TokenManager],
    fake: FakeWeChatState,
    token_sessions: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> None:
    tokens = make_tokens(app_secret=Secret("wrong-secret"))

    with pytest.raises(WeChatApiError) as caught:
        await tokens.token()

    assert caught.value.errcode == 40125
    assert fake.token_requests == 1
    async with token_sessions.begin() as session:  # the lease was given back
        assert await TokenRepository(session).try_take_lease(APP_ID, clock.now(), REFRESH_LEASE)


async def test_secret_and_token_never_reach_logs_or_reprs(
    make_tokens: Callable[..., TokenManager],
    http: aiohttp.ClientSession,
    base_url: str,
    fake: FakeWeChatState,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    bad = make_tokens(app_secret=Secret("wrong-secret-also-hidden"))
    with pytest.raises(WeChatApiError) as caught:
        await bad.token()
    tokens = make_tokens()
    api = WeChatApi(http, tokens, base_url)
    fake.customer_wrote(OPENID)
    await api.send_text(OPENID, "hello")
    fake.revoke_tokens()
    await api.send_text(OPENID, "again")  # a refused token gets logged: by errcode only
    fake.customer_wrote(OPENID, fake.clock.now() - timedelta(days=3))
    with pytest.raises(WeChatApiError) as refused:
        await api.send_text(OPENID, "late")

    issued = list(fake.issued)
    assert len(issued) == 2
    # The database drivers' own DEBUG logs print SQL parameters, the stored token among them,
    # by design (like SQLAlchemy's echo): an operator's choice, and not ours to police.
    ours = [r for r in caplog.records if not r.name.startswith(DB_DRIVER_LOGGERS)]
    assert {r.name for r in ours} >= {"bot.channels.wechat_api"}  # refresh and refusal logged
    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in ours)
    shown = [logged, repr(tokens), repr(bad), repr(api), repr(caught.value), str(caught.value)]
    shown += [repr(refused.value), str(refused.value)]
    for text in shown:
        for hidden in (APP_SECRET, "wrong-secret-also-hidden", *issued):
            assert hidden not in text


async def test_no_lease_over_a_token_another_process_just_stored(
    token_sessions: async_sessionmaker[AsyncSession],
    other_process: async_sessionmaker[AsyncSession],
    clock: FakeClock,
    db_url: str,
) -> None:
    """A caller that read "no token" must not refresh after another process stored a fresh
    one meanwhile: on PostgreSQL the lease's UPDATE sees the newer row, so the lease itself
    refuses while a fresh token is stored (regression: two workers, two token requests)."""
    now = clock.now()
    fresh_until = now + REFRESH_MARGIN
    async with token_sessions.begin() as session:
        repo = TokenRepository(session)
        assert await repo.get(APP_ID) == (None, None)  # this caller looks: no token yet
        if db_url.startswith("postgresql"):  # SQLite's writers cannot interleave like this
            async with other_process.begin() as elsewhere:
                await TokenRepository(elsewhere).store(
                    APP_ID, "FRESH", now + timedelta(hours=2), now
                )
        else:
            await repo.store(APP_ID, "FRESH", now + timedelta(hours=2), now)
        refused = await repo.try_take_lease(APP_ID, now, REFRESH_LEASE, refresh_before=fresh_until)
    assert not refused
    async with other_process.begin() as session:  # a token about to expire may be replaced
        await TokenRepository(session).store(APP_ID, "OLD", now + timedelta(minutes=1), now)
    async with token_sessions.begin() as session:
        assert await TokenRepository(session).try_take_lease(
            APP_ID, now, REFRESH_LEASE, refresh_before=fresh_until
        )


async def test_lease_race_has_exactly_one_winner(
    token_sessions: async_sessionmaker[AsyncSession],
    other_process: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> None:
    async def try_lease(sessions: async_sessionmaker[AsyncSession]) -> bool:
        async with sessions.begin() as session:
            return await TokenRepository(session).try_take_lease(APP_ID, clock.now(), REFRESH_LEASE)

    both = [token_sessions, other_process] * 10
    won = await asyncio.gather(*(try_lease(s) for s in both))
    assert won.count(True) == 1
