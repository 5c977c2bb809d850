"""`billbot agents list | reset-password | disable | enable`, run as the operator runs them, on
a real SQLite file (and PostgreSQL when configured)."""

from __future__ import annotations

import asyncio
import json
import unicodedata
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.cli import main
from bot.clock import FakeClock
from bot.console.auth import AgentDirectory
from bot.handoff.events import EventBus
from bot.handoff.queue import HandoffService
from bot.refusals import Refusal
from storage.db import create_engine, session_factory
from storage.records import HandoffStatus, Owner
from storage.repositories import AuditRepository, Repositories
from tests.conftest import POSTGRES_URL, SKIP_PG, reset_postgres
from tests.handoff.held import held_by

T = TypeVar("T")
Sessions = async_sessionmaker[AsyncSession]
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
LONG_NAME = "客服" * 32  # 64 characters, 128 columns
COLUMNS = 80


def display_width(line: str) -> int:
    """Columns a terminal gives the line: wide and full-width characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in line)


def assert_fits(out: str) -> None:
    for line in out.splitlines():
        assert display_width(line) <= COLUMNS, line


@pytest.fixture(
    params=[pytest.param("sqlite", id="sqlite"), pytest.param("pg", id="postgresql", marks=SKIP_PG)]
)
def db(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)  # no stray .env from the repository
    url = f"sqlite+aiosqlite:///{tmp_path}/cli.db"
    if request.param == "pg":
        asyncio.run(reset_postgres(POSTGRES_URL))
        url = POSTGRES_URL
    monkeypatch.setenv("BILLBOT_DATABASE_URL", url)
    return url


def on_db(url: str, work: Callable[[Sessions], Awaitable[T]]) -> T:
    """Runs ``work`` on the command's database, outside the command."""

    async def run() -> T:
        engine = create_engine(url)
        try:
            return await work(session_factory(engine))
        finally:
            await engine.dispose()

    return asyncio.run(run())


def now_clock() -> FakeClock:
    """A fake clock at the real time: the commands read the system clock."""
    return FakeClock(datetime.now(UTC))


def add(name: str, capsys: pytest.CaptureFixture[str], role: str = "agent") -> str:
    """Creates a login with the real command; returns its one-time password."""
    assert main(["agents", "add", name, "--role", role]) == 0
    return capsys.readouterr().out.split("One-time password:")[1].split()[0]


def test_agents_list_says_each_status_in_words_and_fits_80_columns(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    first = add("amy", capsys)
    add("小王", capsys, role="admin")
    add(LONG_NAME, capsys)
    add("bob", capsys)
    add("carol", capsys)
    clock = FakeClock(datetime.now(UTC) - timedelta(minutes=10))

    async def arrange(sessions: Sessions) -> None:
        directory = AgentDirectory(sessions, clock, hasher=FAST)
        _, _, amy = await directory.login("amy", first)  # seen, still to change her password
        await directory.change_password(amy, first, "a much better passphrase")
        clock.advance(timedelta(minutes=10))
        for _ in range(5):  # bob locks himself out from one address
            with pytest.raises(Refusal):
                await directory.login("bob", "wrong-wrong-wrong", "10.0.0.7")
        carol = await directory.find("carol")
        assert carol is not None
        await directory.disable(carol.id, actor="system")

    on_db(db, arrange)
    assert main(["agents", "list"]) == 0
    table = capsys.readouterr().out
    assert_fits(table)
    for words in (
        "正常",
        "active",
        "须修改密码",
        "must change password",
        "锁定至",
        "locked out until",
        "已停用",
        "disabled",
        "从未登录",
        "never",
        "ago",
        "管理员",
    ):
        assert words in table, words
    assert "15 min" in table or "14 min" in table  # the lockout's end, with units
    assert "10 分" in table and "10 min" in table and "ago" in table  # amy, 10 minutes ago
    assert LONG_NAME[:8] in table  # a long name is folded onto more lines, not cut

    assert main(["agents", "list", "--json"]) == 0
    listed = {a["name"]: a for a in json.loads(capsys.readouterr().out)}
    assert {n: a["status"] for n, a in listed.items()} == {
        "amy": "active",
        "小王": "must_change_password",
        LONG_NAME: "must_change_password",
        "bob": "locked_out",
        "carol": "disabled",
    }
    assert listed["bob"]["locked_until"] is not None and listed["carol"]["disabled_at"]
    assert listed["amy"]["last_seen_seconds"] is not None and listed["bob"]["last_seen_at"] is None


def test_reset_password_prints_a_one_time_password_ends_sessions_and_lifts_lockouts(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    first = add("dora", capsys)
    clock = now_clock()

    async def session_then_lockout(sessions: Sessions) -> str:
        directory = AgentDirectory(sessions, clock, hasher=FAST)
        token, _, _ = await directory.login("dora", first, "10.0.0.8")
        for _ in range(5):
            with pytest.raises(Refusal):
                await directory.login("dora", "wrong-wrong-wrong", "10.0.0.9")
        return token

    token = on_db(db, session_then_lockout)
    assert main(["agents", "reset-password", "DORA"]) == 0  # names match whatever the case
    out = capsys.readouterr().out
    password = out.split("New one-time password for 'dora':")[1].split()[0]
    assert password != first and "next login" in out and "下次登录" in out

    async def after(sessions: Sessions) -> None:
        directory = AgentDirectory(sessions, clock, hasher=FAST)
        assert await directory.session(token) is None  # the old session ended
        with pytest.raises(Refusal):
            await directory.login("dora", first, "10.0.0.8")  # the old password is gone
        # from the address that was locked out, the new one works, and must be changed
        *_, agent = await directory.login("dora", password, "10.0.0.9")
        assert agent.must_change_password
        async with sessions() as s:
            actions = [e.action for e in await AuditRepository(s).since(None)]
        assert "password_reset" in actions

    on_db(db, after)


def test_disable_stops_the_login_and_gives_back_what_it_held_then_enable_restores_it(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    password = add("erin", capsys)
    add("frank", capsys)
    clock = now_clock()
    lease = timedelta(minutes=2)

    async def erin_at_work(sessions: Sessions) -> tuple[str, list[int], int]:
        directory = AgentDirectory(sessions, clock, hasher=FAST)
        token, _, erin = await directory.login("erin", password)
        frank = await directory.find("frank")
        assert frank is not None
        now = clock.now()
        async with sessions() as s, s.begin():
            repos = Repositories.on(s)
            held = await held_by(repos, (erin.id, erin.id, frank.id), now, lease)
            await repos.handoffs.answered(held[1], now)
            await repos.handoffs.park(held[1])  # answered: waiting for the customer
        return token, held, frank.id

    token, held, frank_id = on_db(db, erin_at_work)
    assert main(["agents", "disable", "erin"]) == 0
    out = capsys.readouterr().out
    assert "2" in out and "queue within seconds" in out and "放回队列" in out

    async def after_disable(sessions: Sessions) -> None:
        directory = AgentDirectory(sessions, clock, hasher=FAST)
        assert await directory.session(token) is None
        with pytest.raises(Refusal) as refused:
            await directory.login("erin", password)
        assert refused.value.status == 403 and refused.value.key == "login_disabled"
        with pytest.raises(Refusal) as wrong:  # a guesser learns nothing new
            await directory.login("erin", "not-her-password")
        assert wrong.value.status == 401 and wrong.value.key is None
        async with sessions() as s:
            lapsed = [await Repositories.on(s).handoffs.get(i) for i in held[:2]]
        now = datetime.now(UTC)
        assert all(h and h.lease_until and h.lease_until < now for h in lapsed)
        # the running server's lapse sweep gives them back (and tells every console)
        server = FakeClock(now)
        sweep = HandoffService(sessions, server, None, EventBus(), lease=timedelta(minutes=2))
        await sweep.release_expired_leases()
        async with sessions() as s:
            repos = Repositories.on(s)
            mine = [await repos.handoffs.get(i) for i in held]
            owners = [(await repos.conversations.by_id(h.conversation_id)) for h in mine if h]
            actions = [e.action for e in await AuditRepository(s).since(None)]
        erins, franks = mine[:2], mine[2]
        for h in erins:
            assert h is not None and h.status == HandoffStatus.WAITING
            assert h.claimed_by is None and h.dropped_by == "erin" and h.priority == 1
        assert franks is not None and franks.status == HandoffStatus.CLAIMED
        assert [c.owner for c in owners if c] == [Owner.QUEUE, Owner.QUEUE, Owner.agent(frank_id)]
        assert "agent_disabled" in actions

    on_db(db, after_disable)

    assert main(["agents", "disable", "erin"]) == 0  # again: nothing to do, and said so
    assert "already" in capsys.readouterr().out
    assert main(["agents", "enable", "erin"]) == 0

    async def signs_in_again(sessions: Sessions) -> None:
        directory = AgentDirectory(sessions, clock, hasher=FAST)
        *_, agent = await directory.login("erin", password)
        assert agent.name == "erin"
        async with sessions() as s:
            assert "agent_enabled" in [e.action for e in await AuditRepository(s).since(None)]

    on_db(db, signs_in_again)


@pytest.mark.parametrize("action", ["reset-password", "disable", "enable", "unlock"])
def test_an_unknown_name_is_one_clear_line_and_exit_status_2(
    db: str, capsys: pytest.CaptureFixture[str], action: str
) -> None:
    add("gina", capsys)
    assert main(["agents", action, "nobody"]) == 2
    captured = capsys.readouterr()
    [line] = captured.err.strip().splitlines()
    assert "nobody" in line and "billbot agents list" in line and not captured.out
