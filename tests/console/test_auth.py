"""Console logins on a real database: argon2id hashes, lockout, sessions, password changes."""

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.cli import main
from bot.clock import FakeClock
from bot.console.auth import AgentDirectory
from bot.handoff.events import EventBus
from bot.handoff.queue import HandoffService
from bot.refusals import Refusal
from storage.db import create_engine, session_factory
from storage.models import Agent, ConsoleSession, LoginGuard
from storage.records import HandoffStatus, Owner
from storage.repositories import AuditRepository, Repositories
from tests.handoff.held import held_by

# Cheap parameters keep the suite quick; the app itself uses argon2-cffi's defaults.
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
NEW_PASSWORD = "correct horse battery"


@pytest.fixture
def directory(sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> AgentDirectory:
    return AgentDirectory(sessions, clock, hasher=FAST)


async def stored_agent(sessions: async_sessionmaker[AsyncSession], name: str) -> Agent:
    async with sessions() as session:
        return (await session.execute(select(Agent).where(Agent.name == name))).scalar_one()


async def test_a_new_login_has_a_strong_one_time_password_stored_as_argon2id(
    directory: AgentDirectory, sessions: async_sessionmaker[AsyncSession]
) -> None:
    agent, password = await directory.create("王芳", "admin")
    assert agent.name == "王芳" and agent.role == "admin" and agent.must_change_password
    assert len(password) >= 16
    row = await stored_agent(sessions, "王芳")
    assert row.password_hash.startswith("$argon2id$") and password not in row.password_hash
    _, other = await directory.create("李雷")
    assert other != password


async def test_a_taken_name_or_a_bad_role_is_refused(directory: AgentDirectory) -> None:
    await directory.create("alice")
    with pytest.raises(Refusal) as taken:
        await directory.create(" alice ")
    assert taken.value.status == 409 and "alice" in taken.value.en
    with pytest.raises(Refusal) as role:
        await directory.create("bob", "root")
    assert role.value.status == 422
    with pytest.raises(Refusal) as empty:
        await directory.create("   ")
    assert empty.value.status == 422


async def test_login_gives_a_session_whose_token_is_stored_only_as_a_hash(
    directory: AgentDirectory, sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    created, password = await directory.create("alice")
    token, csrf, agent = await directory.login("alice", password)
    assert agent == created and len(token) >= 32 and len(csrf) >= 32 and token != csrf
    assert await directory.session(token) == (agent, csrf)
    async with sessions() as session:
        rows = list(await session.scalars(select(ConsoleSession)))
    assert [r.token_hash for r in rows] == [hashlib.sha256(token.encode()).hexdigest()]
    assert token not in {r.token_hash for r in rows}
    assert await directory.session(token + "x") is None
    assert await directory.session("") is None

    clock.advance(timedelta(hours=11, minutes=59))
    assert await directory.session(token) is not None
    clock.advance(timedelta(minutes=2))  # 12 h after login
    assert await directory.session(token) is None


async def test_unknown_name_and_wrong_password_get_the_same_answer(
    directory: AgentDirectory,
) -> None:
    _, password = await directory.create("alice")
    with pytest.raises(Refusal) as wrong:
        await directory.login("alice", password + "x")
    with pytest.raises(Refusal) as unknown:
        await directory.login("nobody", password)
    assert wrong.value.status == unknown.value.status == 401
    assert (wrong.value.zh, wrong.value.en) == (unknown.value.zh, unknown.value.en)


async def test_unknown_names_cost_a_hash_check_too(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    """Timing must not tell which names exist: both paths verify one (real-cost) hash."""
    directory = AgentDirectory(sessions, clock)  # the default, memory-hard parameters
    await directory.create("alice")

    async def fastest(name: str) -> float:
        spans = []
        for _ in range(3):
            started = time.perf_counter()
            with pytest.raises(Refusal):
                await directory.login(name, "not the password")
            spans.append(time.perf_counter() - started)
        return min(spans)

    await fastest("nobody")  # the dummy hash is made on first use
    known, unknown = await fastest("alice"), await fastest("nobody")
    assert unknown > 0.5 * known, (known, unknown)


async def test_five_wrong_passwords_lock_the_login_from_that_address_for_fifteen_minutes(
    directory: AgentDirectory, clock: FakeClock
) -> None:
    _, password = await directory.create("alice")
    guesser, desk = "203.0.113.5", "198.51.100.7"
    for _ in range(4):
        with pytest.raises(Refusal) as wrong:
            await directory.login("alice", "guess-guess", guesser)
        assert wrong.value.status == 401
    with pytest.raises(Refusal) as fifth:
        await directory.login("alice", "guess-guess", guesser)
    # locked: the same status and words as a wrong password, so nobody learns it from outside
    assert (fifth.value.status, fifth.value.en) == (wrong.value.status, wrong.value.en)
    with pytest.raises(Refusal) as locked:
        await directory.login("alice", password, guesser)  # even the right password waits
    assert (locked.value.status, locked.value.zh) == (401, wrong.value.zh)
    # the guesser cannot keep alice out of her own desk
    await directory.login("alice", password, desk)

    clock.advance(timedelta(minutes=14))
    with pytest.raises(Refusal) as still:
        await directory.login("alice", password, guesser)
    assert still.value.status == 401
    clock.advance(timedelta(minutes=1, seconds=1))
    await directory.login("alice", password, guesser)


async def test_login_guards_keep_no_address_in_clear(
    directory: AgentDirectory, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await directory.create("alice")
    with pytest.raises(Refusal):
        await directory.login("alice", "guess-guess", "203.0.113.5")
    async with sessions() as session:
        sources = list(await session.scalars(select(LoginGuard.source)))
    assert len(sources) == 1 and "203.0.113" not in sources[0] and len(sources[0]) == 64


async def test_a_right_password_resets_the_count(directory: AgentDirectory) -> None:
    _, password = await directory.create("alice")
    for _ in range(3):
        with pytest.raises(Refusal):
            await directory.login("alice", "guess-guess")
    await directory.login("alice", password)
    for _ in range(4):
        with pytest.raises(Refusal) as wrong:
            await directory.login("alice", "guess-guess")
        assert wrong.value.status == 401


async def test_parallel_guesses_cannot_pass_the_limit(directory: AgentDirectory) -> None:
    await directory.create("alice")
    answers = await asyncio.gather(
        *(directory.login("alice", f"guess-{i}") for i in range(12)), return_exceptions=True
    )
    assert all(isinstance(a, Refusal) and a.status == 401 for a in answers)
    async with directory._sessions() as s:
        reasons = [e.reason for e in await AuditRepository(s).since(None)]
    # never more than 5 passwords actually checked before the lock: the rest were refused unseen
    assert reasons.count("wrong password") <= 5 and reasons.count("locked") >= 7


async def test_changing_the_password_clears_the_flag_and_ends_other_sessions(
    directory: AgentDirectory,
) -> None:
    _, password = await directory.create("alice")
    here, _, agent = await directory.login("alice", password)
    elsewhere, _, _ = await directory.login("alice", password)

    with pytest.raises(Refusal) as short:
        await directory.change_password(agent, password, "short")
    assert short.value.status == 422 and "12" in short.value.en
    with pytest.raises(Refusal) as repeated:
        await directory.change_password(agent, password, "a" * 14)
    assert repeated.value.status == 422
    with pytest.raises(Refusal) as wrong_old:
        await directory.change_password(agent, "not-the-password", NEW_PASSWORD)
    assert wrong_old.value.status == 422
    with pytest.raises(Refusal) as same:
        await directory.change_password(agent, password, password)
    assert same.value.status == 422

    updated = await directory.change_password(agent, password, NEW_PASSWORD, keep_session=here)
    assert not updated.must_change_password
    assert await directory.session(here) is not None
    assert await directory.session(elsewhere) is None
    with pytest.raises(Refusal):
        await directory.login("alice", password)
    *_, again = await directory.login("alice", NEW_PASSWORD)
    assert not again.must_change_password


async def test_logout_ends_the_session(directory: AgentDirectory) -> None:
    _, password = await directory.create("alice")
    token, _, _ = await directory.login("alice", password)
    await directory.logout(token)
    assert await directory.session(token) is None
    await directory.logout(token)  # twice is harmless


async def test_touch_marks_the_agent_as_seen(
    directory: AgentDirectory, sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    agent, _ = await directory.create("alice")
    assert (await stored_agent(sessions, "alice")).last_seen_at is None
    clock.advance(timedelta(minutes=3))
    await directory.touch(agent.id)
    assert (await stored_agent(sessions, "alice")).last_seen_at == clock.now()


# -- disabled logins, reset passwords -----------------------------------------------------------


async def test_a_disabled_login_is_told_so_only_with_its_password_and_its_sessions_end(
    directory: AgentDirectory, sessions: async_sessionmaker[AsyncSession]
) -> None:
    agent, password = await directory.create("alice")
    token, _, _ = await directory.login("alice", password)
    assert await directory.disable(agent.id, actor="system") == 0  # she held nothing
    assert (await stored_agent(sessions, "alice")).disabled_at is not None
    assert await directory.session(token) is None
    with pytest.raises(Refusal) as disabled:
        await directory.login("alice", password)
    assert disabled.value.status == 403 and disabled.value.key == "login_disabled"
    assert "enable" in disabled.value.en and "停用" in disabled.value.zh
    with pytest.raises(Refusal) as guessed:  # without the password: the usual answer
        await directory.login("alice", "guess-guess")
    assert guessed.value.status == 401 and guessed.value.key is None
    assert await directory.disable(agent.id, actor="system") is None  # already disabled

    assert await directory.enable(agent.id, actor="system")
    assert not await directory.enable(agent.id, actor="system")
    token, _, _ = await directory.login("alice", password)
    assert await directory.session(token) is not None
    async with sessions() as session:
        actions = [e.action for e in await AuditRepository(session).since(None)]
    assert actions.count("agent_disabled") == 1 and actions.count("agent_enabled") == 1
    assert "login_failed" in actions


async def test_a_session_stops_working_the_moment_its_login_is_disabled(
    directory: AgentDirectory, sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    """Even a session row left behind (disabled by another path) opens nothing."""
    _, password = await directory.create("alice")
    token, _, _ = await directory.login("alice", password)
    async with sessions.begin() as session:
        await session.execute(update(Agent).values(disabled_at=clock.now()))
    assert await directory.session(token, touch=True) is None
    async with sessions() as session:
        assert len(list(await session.scalars(select(ConsoleSession)))) == 1


async def test_disabling_gives_what_the_agent_held_back_to_the_queue(
    directory: AgentDirectory, sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    """Answering or parked, what a disabled agent held lapses, and the queue's own lapse sweep
    returns it: at the head of the queue, with a note of who dropped it."""
    alice, _ = await directory.create("alice")
    bob, _ = await directory.create("bob")
    now, lease = clock.now(), timedelta(minutes=2)
    async with sessions.begin() as session:
        repos = Repositories.on(session)
        held = await held_by(repos, (alice.id, alice.id, bob.id), now, lease)
        await repos.handoffs.answered(held[1], now)
        await repos.handoffs.park(held[1])

    assert await directory.disable(alice.id, actor="system") == 2
    clock.advance(timedelta(seconds=1))
    service = HandoffService(sessions, clock, None, EventBus(), lease=lease)
    assert await service.release_expired_leases() == 2
    async with sessions() as session:
        repos = Repositories.on(session)
        after = [await repos.handoffs.get(i) for i in held]
        owners = [await repos.conversations.by_id(h.conversation_id) for h in after if h]
    for h in after[:2]:
        assert h is not None and h.status == HandoffStatus.WAITING and h.claimed_by is None
        assert h.dropped_by == "alice" and h.priority == 1
    assert after[2] is not None and after[2].status == HandoffStatus.CLAIMED
    assert [c.owner for c in owners if c] == [Owner.QUEUE, Owner.QUEUE, Owner.agent(bob.id)]


async def test_reset_password_ends_sessions_lifts_lockouts_and_must_be_changed(
    directory: AgentDirectory, sessions: async_sessionmaker[AsyncSession]
) -> None:
    agent, first = await directory.create("alice")
    token, _, view = await directory.login("alice", first, "198.51.100.7")
    await directory.change_password(view, first, NEW_PASSWORD, keep_session=token)
    for _ in range(5):
        with pytest.raises(Refusal):
            await directory.login("alice", "guess-guess", "203.0.113.5")
    reset, password, locked = await directory.reset_password(agent.id, actor="system")
    assert reset.must_change_password and locked == 1 and password not in (first, NEW_PASSWORD)
    assert await directory.session(token) is None
    with pytest.raises(Refusal):
        await directory.login("alice", NEW_PASSWORD, "198.51.100.7")
    *_, again = await directory.login("alice", password, "203.0.113.5")  # the lock is lifted
    assert again.must_change_password
    async with sessions() as session:
        assert "password_reset" in [e.action for e in await AuditRepository(session).since(None)]


# -- the operator's command -------------------------------------------------------------------


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no stray .env from the repository
    monkeypatch.setenv("BILLBOT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/cli.db")
    return tmp_path


def test_agents_add_prints_a_one_time_password_that_logs_in(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["agents", "add", "小王", "--role", "admin"]) == 0
    out = capsys.readouterr().out
    assert "must be changed" in out and "admin" in out
    password = out.split("One-time password:")[1].split()[0]

    async def log_in() -> bool:
        engine = create_engine(f"sqlite+aiosqlite:///{workdir}/cli.db")
        try:
            directory = AgentDirectory(session_factory(engine), FakeClock())
            *_, agent = await directory.login("小王", password)
        finally:
            await engine.dispose()
        return agent.role == "admin" and agent.must_change_password

    assert asyncio.run(log_in())
    assert main(["agents", "add", "小王"]) == 1
    assert "小王" in capsys.readouterr().err


async def test_passwords_and_names_that_are_too_easy_are_refused(
    directory: AgentDirectory,
) -> None:
    _, password = await directory.create("longagentname1")
    _, _, agent = await directory.login("longagentname1", password)
    with pytest.raises(Refusal) as named:
        await directory.change_password(agent, password, "ＬＯＮＧＡＧＥＮＴＮＡＭＥ１")
    assert named.value.status == 422
    with pytest.raises(Refusal) as taken:
        await directory.create("LongAgentName1")  # one login, whatever the case or width
    assert taken.value.status == 409
    # and the name signs in however it is typed
    await directory.login("ＬＯＮＧagentNAME1", password)


def test_agents_unlock_lifts_a_lockout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio as aio

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BILLBOT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/u.db")
    assert main(["agents", "add", "amy"]) == 0

    async def lock_and_try(password: str | None) -> int:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/u.db")
        directory = AgentDirectory(session_factory(engine), FakeClock())
        try:
            if password is None:
                for _ in range(5):
                    with pytest.raises(Refusal):
                        await directory.login("amy", "wrong-wrong-wrong")
                return 0
            async with session_factory(engine)() as s:
                locks = await s.scalars(select(LoginGuard.locked_until))
                return sum(1 for until in locks if until is not None)
        finally:
            await engine.dispose()

    aio.run(lock_and_try(None))
    assert aio.run(lock_and_try("check")) == 1
    assert main(["agents", "unlock", "amy"]) == 0
    assert aio.run(lock_and_try("check")) == 0
    assert main(["agents", "unlock", "nobody"]) == 2
