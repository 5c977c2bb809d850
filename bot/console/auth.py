"""Console logins: argon2id passwords, lockout per login and client address, browser sessions.

A session token lives only in the agent's cookie; the database keeps its SHA-256, so a leaked
table opens no browser. Unknown names and wrong passwords get the same answer after the same
work (a dummy hash is verified), so the login form does not tell which names exist. Five
wrong passwords lock the login *from that address* for 15 minutes: somebody guessing from
elsewhere cannot keep the agent out of their own desk. A disabled login cannot sign in (it
is told so only once its password is right) and its sessions stop working at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.handoff.queue import AgentView, HandoffService
from bot.refusals import Refusal
from storage.repositories.agents import AgentRecord, AgentRepository
from storage.repositories.audit import AuditRepository
from storage.repositories.handoffs import HandoffRepository

T = TypeVar("T")
# Who changes a login: the operator at the command line, or an admin in the console.
Actor = AgentView | Literal["system"]

SESSION_TTL = timedelta(hours=12)
MAX_FAILURES = 5  # wrong passwords in a row from one address before the login locks there
LOCK_FOR = timedelta(minutes=15)
MIN_PASSWORD = 12
MAX_PASSWORD = 256  # long enough for any passphrase, short enough not to be a hashing DoS
MAX_NAME = 64
ROLES = ("agent", "admin")
LAPSED_AGO = timedelta(seconds=1)  # a disabled login's leases end this long before the disable
TOUCH_EVERY_SECONDS = 15  # requests refresh last_seen_at at most this often: fewer writes
# No 0/O, 1/l/I: a one-time password is read off a terminal and typed by hand.
PASSWORD_ALPHABET = "23456789abcdefghijkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ"
ONE_TIME_PASSWORD_LENGTH = 18  # ~104 bits


def _wrong_login() -> Refusal:
    """The one answer to an unknown name, a wrong password and a locked login alike (same
    status, same words, same work), so the form tells nobody which names exist or are locked."""
    return Refusal(
        401,
        "用户名或密码不正确；多次输错后账号会暂时锁定 15 分钟。请稍后再试，或请管理员帮忙解锁。",
        "Wrong name or password; after several wrong tries a login locks for 15 minutes. Try"
        " again later, or ask an admin to unlock it.",
    )


def _disabled_login() -> Refusal:
    return Refusal(
        403,
        "这个账号已停用，不能登录。如需恢复，请管理员运行 billbot agents enable 账号名。",
        "This login is disabled and cannot sign in. To restore it, an admin runs"
        " `billbot agents enable NAME`.",
        key="login_disabled",
    )


def _no_such_agent() -> Refusal:
    return Refusal(404, "找不到这个账号。", "No such login.", key="no_such_agent")


# Password hashing is slow on purpose: it runs in a small pool of its own, so a flood of
# logins queues there instead of taking the threads the webhook's work needs.
_HASHING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_one_time_password() -> str:
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(ONE_TIME_PASSWORD_LENGTH))


def clean_name(name: str) -> str:
    """An agent name as stored: trimmed, NFKC, printable, at most 64 characters (names are
    unique after NFKC and case folding: ＡＬＩＣＥ and alice are one login)."""
    cleaned = unicodedata.normalize("NFKC", name.strip())
    if not cleaned or len(cleaned) > MAX_NAME:
        raise Refusal(
            422,
            f"名字不能为空，且最多 {MAX_NAME} 个字符。",
            f"A name must be 1 to {MAX_NAME} characters.",
        )
    if any(not ch.isprintable() for ch in cleaned):
        raise Refusal(422, "名字里不能有控制字符。", "A name cannot hold control characters.")
    return cleaned


def _cannot_disable_self() -> Refusal:
    return Refusal(
        409,
        "不能停用自己的账号：请另一位管理员来停用，"
        "或在服务器上运行 billbot agents disable 账号名。",
        "You cannot disable your own login: ask another admin, or run"
        " `billbot agents disable NAME` on the server.",
        key="disable_self",
    )


def _cannot_reset_self() -> Refusal:
    return Refusal(
        409,
        "不能重置自己的密码：请用“改密码”修改，或请另一位管理员重置。",
        "You cannot reset your own password: change it with Change password, or ask another"
        " admin to reset it.",
        key="reset_self",
    )


def _actor(actor: Actor) -> str:
    """The audit log's actor: ``system`` or ``agent:<id>``."""
    return actor if isinstance(actor, str) else f"agent:{actor.id}"


async def _existing(session: AsyncSession, agent_id: int) -> AgentRepository:
    """The agents, once the login acted on is known to exist (Refusal 404 otherwise)."""
    repo = AgentRepository(session)
    if await repo.get(agent_id) is None:
        raise _no_such_agent()
    return repo


async def _audit_act(
    session: AsyncSession, action: str, agent_id: int, actor: Actor, now: datetime, reason: str = ""
) -> None:
    """Audits what ``actor`` did to the login ``agent_id``."""
    await AuditRepository(session).record(
        action,
        actor=_actor(actor),
        target=f"agent:{agent_id}",
        reason=reason,
        now=now,
        agent_id=agent_id,
    )


class LoginStatus(StrEnum):
    """What an admin needs to know of a login, the first that applies in this order."""

    DISABLED = "disabled"
    LOCKED_OUT = "locked_out"  # from at least one address, until ``locked_until``
    MUST_CHANGE_PASSWORD = "must_change_password"
    ACTIVE = "active"


@dataclass(frozen=True, slots=True)
class LoginState:
    """A login as an admin sees it (the CLI's ``agents list``, the console's Team section)."""

    id: int
    name: str
    role: str
    status: LoginStatus
    must_change_password: bool
    locked_until: datetime | None
    locked_seconds: float | None  # left on the lockout
    disabled_at: datetime | None
    last_seen_at: datetime | None
    seen_seconds: float | None  # how long ago; None if never seen

    @classmethod
    def of(cls, record: AgentRecord, locked_until: datetime | None, now: datetime) -> LoginState:
        if record.disabled_at is not None:
            status = LoginStatus.DISABLED
        elif locked_until is not None:
            status = LoginStatus.LOCKED_OUT
        elif record.must_change_password:
            status = LoginStatus.MUST_CHANGE_PASSWORD
        else:
            status = LoginStatus.ACTIVE
        seen = record.last_seen_at
        return cls(
            id=record.id,
            name=record.name,
            role=record.role,
            status=status,
            must_change_password=record.must_change_password,
            locked_until=locked_until,
            locked_seconds=None if locked_until is None else (locked_until - now).total_seconds(),
            disabled_at=record.disabled_at,
            last_seen_at=seen,
            seen_seconds=None if seen is None else max(0.0, (now - seen).total_seconds()),
        )


def view_of(record: AgentRecord) -> AgentView:
    return AgentView(
        id=record.id,
        name=record.name,
        role=record.role,
        must_change_password=record.must_change_password,
        lang=record.lang,
    )


class AgentDirectory:
    """Creates logins, checks passwords, and holds the console's browser sessions."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._hasher = hasher or PasswordHasher()  # argon2id, RFC 9106's second recommendation
        self._dummy_hash: str | None = None

    async def create(self, name: str, role: str = "agent") -> tuple[AgentView, str]:
        """A new login and its one-time password (to be changed at first login)."""
        name = clean_name(name)
        if role not in ROLES:
            raise Refusal(
                422, "角色只能是 agent 或 admin。", "The role must be 'agent' or 'admin'."
            )
        password = new_one_time_password()
        password_hash = await self._in_pool(self._hasher.hash, password)
        async with self._sessions.begin() as session:
            record = await AgentRepository(session).create(
                name, role, password_hash, self._clock.now()
            )
        if record is None:
            raise Refusal(
                409, f"已经有名为「{name}」的账号。", f"There is already a login named {name!r}."
            )
        return view_of(record), password

    async def login(
        self, name: str, password: str, address: str = "-"
    ) -> tuple[str, str, AgentView]:
        """A new session: ``(session token, CSRF token, agent)``; Refusal 401 otherwise.

        ``address`` is the client's (see ``bot.handlers.clients``): lockouts are per address.
        """
        try:
            name = clean_name(name)
        except Refusal:
            name = ""
        if len(password) > MAX_PASSWORD:
            raise _wrong_login()
        async with self._sessions.begin() as session:
            repo = AgentRepository(session)
            record = await repo.by_name(name) if name else None
            # Counted before the (slow) check, so parallel guesses cannot pass the limit.
            attempts, locked = (
                await self._count_attempt(repo, record, address) if record else (0, None)
            )
        if record is None:
            await self._verify(await self._dummy(), password)
            await self._audit("login_failed", None, "unknown name")
            raise _wrong_login()
        if locked is not None:
            await self._verify(record.password_hash, password)  # the same work as any answer
            await self._audit("login_failed", record.id, "locked")
            raise locked
        if not await self._verify(record.password_hash, password):
            await self._audit("login_failed", record.id, "wrong password")
            await self._refuse_attempt(record.id, address, attempts)
            raise _wrong_login()
        if record.disabled_at is not None:  # said only to whoever knows the password
            await self._audit("login_failed", record.id, "disabled")
            raise _disabled_login()
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        rehash = self._needs_rehash(record.password_hash)
        new_hash = await self._in_pool(self._hasher.hash, password) if rehash else None
        now = self._clock.now()
        async with self._sessions.begin() as session:
            repo = AgentRepository(session)
            await repo.login_succeeded(record.id, address, now)
            if new_hash is not None:
                await repo.set_password(
                    record.id, new_hash, must_change=record.must_change_password
                )
            await repo.delete_sessions(record.id, expired_before=now)
            await repo.add_session(hash_token(token), record.id, csrf, now, now + SESSION_TTL)
            await AuditRepository(session).record(
                "login", actor=f"agent:{record.id}", now=now, agent_id=record.id
            )
        return token, csrf, view_of(record)

    async def session(self, token: str, *, touch: bool = False) -> tuple[AgentView, str] | None:
        """The agent and CSRF token behind a session cookie, or None if unknown or expired.

        With ``touch``, the agent is also marked as seen (every API request and live ping).
        """
        if not token or len(token) > 128:
            return None
        now = self._clock.now()
        async with self._sessions.begin() as session:
            repo = AgentRepository(session)
            found = await repo.session(hash_token(token), now)
            if found is None:
                return None
            record, csrf = found
            if touch:
                await repo.touch(record.id, now, every_seconds=TOUCH_EVERY_SECONDS)
        return view_of(record), csrf

    async def change_password(
        self,
        agent: AgentView,
        old: str,
        new: str,
        *,
        keep_session: str | None = None,
        address: str = "-",
    ) -> AgentView:
        """Sets a new password (clears must_change_password) and ends the agent's other sessions.

        A wrong old password counts towards the lockout, so a stolen session cannot be used to
        guess the password either.
        """
        if not MIN_PASSWORD <= len(new) <= MAX_PASSWORD:
            raise Refusal(
                422,
                f"新密码需要 {MIN_PASSWORD} 到 {MAX_PASSWORD} 个字符。",
                f"The new password needs {MIN_PASSWORD} to {MAX_PASSWORD} characters.",
            )
        if new == old:
            raise Refusal(
                422, "新密码不能与旧密码相同。", "The new password must differ from the old one."
            )
        if len(set(new)) == 1:
            raise Refusal(
                422,
                "新密码不能只由一个字符重复组成。",
                "The new password cannot be one character repeated.",
            )
        if unicodedata.normalize("NFKC", new).casefold() == agent.name.casefold():
            raise Refusal(422, "新密码不能与账号名相同。", "The new password cannot be your name.")
        async with self._sessions.begin() as session:
            repo = AgentRepository(session)
            record = await repo.get(agent.id)
            if record is None or record.disabled_at is not None:
                raise Refusal(401, "请重新登录。", "Please log in again.")
            attempts, locked = await self._count_attempt(repo, record, address)
        if locked is not None:
            raise locked
        if len(old) > MAX_PASSWORD or not await self._verify(record.password_hash, old):
            await self._refuse_attempt(record.id, address, attempts)
            raise Refusal(422, "当前密码不正确。", "The current password is wrong.")
        new_hash = await self._in_pool(self._hasher.hash, new)
        now = self._clock.now()
        async with self._sessions.begin() as session:
            repo = AgentRepository(session)
            await repo.login_succeeded(record.id, address, now)
            await repo.set_password(record.id, new_hash, must_change=False)
            keep = hash_token(keep_session) if keep_session else None
            await repo.delete_sessions(record.id, keep=keep)
            updated = await repo.get(record.id)
        assert updated is not None
        return view_of(updated)

    # -- what an admin does to a login (the CLI and the console alike) --------------------

    async def find(self, name: str) -> AgentRecord | None:
        """The login of that name, however its case or width is typed; ``None`` if none."""
        try:
            name = clean_name(name)
        except Refusal:
            return None
        async with self._sessions() as session:
            return await AgentRepository(session).by_name(name)

    async def logins(self) -> list[LoginState]:
        """Every login by name, with its status (locked out from some address now?)."""
        now = self._clock.now()
        async with self._sessions() as session:
            repo = AgentRepository(session)
            records = await repo.list_all()
            lockouts = await repo.lockouts(now)
        return [LoginState.of(r, lockouts.get(r.id), now) for r in records]

    async def login_state(self, agent_id: int) -> LoginState:
        """One login as ``logins`` lists it; Refusal 404 if there is none."""
        now = self._clock.now()
        async with self._sessions() as session:
            repo = AgentRepository(session)
            record = await repo.get(agent_id)
            if record is None:
                raise _no_such_agent()
            lockouts = await repo.lockouts(now)
        return LoginState.of(record, lockouts.get(agent_id), now)

    async def unlock(self, agent_id: int, *, actor: Actor) -> int:
        """Lifts the login's lockouts from every address; returns how many there were."""
        now = self._clock.now()
        async with self._sessions.begin() as session:
            repo = await _existing(session, agent_id)
            locked = await repo.unlock(agent_id, now)
            await _audit_act(
                session, "unlock", agent_id, actor, now, f"{locked} address(es) locked out"
            )
        return locked

    async def reset_password(self, agent_id: int, *, actor: Actor) -> tuple[AgentView, str, int]:
        """A new one-time password, to be changed at the next login: the agent's sessions end
        and their lockouts are lifted. Returns the agent, the password, and how many addresses
        were locked out. An admin cannot reset their own (409, ``reset_self``): it would end
        the session they are reading the new password in."""
        if not isinstance(actor, str) and actor.id == agent_id:
            raise _cannot_reset_self()
        password = new_one_time_password()
        password_hash = await self._in_pool(self._hasher.hash, password)
        now = self._clock.now()
        async with self._sessions.begin() as session:
            repo = await _existing(session, agent_id)
            locked = await repo.reset_password(agent_id, password_hash, now)
            await _audit_act(
                session,
                "password_reset",
                agent_id,
                actor,
                now,
                f"{locked} address(es) were locked out",
            )
            record = await repo.get(agent_id)
        assert record is not None
        return view_of(record), password, locked

    async def disable(
        self, agent_id: int, *, actor: Actor, queue: HandoffService | None = None
    ) -> int | None:
        """The login can no longer sign in, its sessions end, and what it holds in the queue
        lapses at once. Given the ``queue``, the lapsed conversations go back to the other
        agents now; otherwise the server's lapse sweep (``release_expired_leases``, every few
        seconds) does it. Returns how many conversations lapsed, or ``None`` if the login was
        already disabled. An admin cannot disable themselves (409, ``disable_self``)."""
        if not isinstance(actor, str) and actor.id == agent_id:
            raise _cannot_disable_self()
        now = self._clock.now()
        async with self._sessions.begin() as session:
            repo = await _existing(session, agent_id)
            if not await repo.disable(agent_id, now):
                return None
            # a lease that ended a moment ago: the sweep takes leases that ended before now
            ended = now - LAPSED_AGO
            lapsed = await HandoffRepository(session).lapse_leases(agent_id, ended)
            await _audit_act(
                session,
                "agent_disabled",
                agent_id,
                actor,
                now,
                f"{lapsed} conversation(s) went back to the queue",
            )
        if lapsed and queue is not None:
            await queue.release_expired_leases()
        return lapsed

    async def enable(self, agent_id: int, *, actor: Actor) -> bool:
        """A disabled login may sign in again (with its old password); ``False`` if it was
        not disabled."""
        now = self._clock.now()
        async with self._sessions.begin() as session:
            repo = await _existing(session, agent_id)
            if not await repo.enable(agent_id):
                return False
            await _audit_act(session, "agent_enabled", agent_id, actor, now)
        return True

    async def logout(self, token: str) -> None:
        if not token or len(token) > 128:
            return
        async with self._sessions.begin() as session:
            await AgentRepository(session).delete_session(hash_token(token))

    async def touch(self, agent_id: int) -> None:
        """Marks the agent as seen now (``last_seen_at``: who is at their desk)."""
        async with self._sessions.begin() as session:
            await AgentRepository(session).touch(agent_id, self._clock.now())

    async def _count_attempt(
        self, repo: AgentRepository, record: AgentRecord, address: str
    ) -> tuple[int, Refusal | None]:
        """Counts an attempt; with the refusal to answer if the login is (or now becomes)
        locked from this address.

        The refusal is returned, not raised, so the transaction still commits the count.
        """
        now = self._clock.now()
        attempts, locked_until = await repo.count_attempt(record.id, address, now)
        if locked_until is None and attempts > MAX_FAILURES:  # parallel guesses got here
            locked_until = now + LOCK_FOR
            await repo.lock(record.id, address, locked_until)
        if locked_until is not None:
            return attempts, _wrong_login()
        return attempts, None

    async def _refuse_attempt(self, agent_id: int, address: str, attempts: int) -> None:
        """After a wrong password: the last allowed one locks the login from that address."""
        if attempts >= MAX_FAILURES:
            now = self._clock.now()
            async with self._sessions.begin() as session:
                await AgentRepository(session).lock(agent_id, address, now + LOCK_FOR)
                await AuditRepository(session).record(
                    "lockout",
                    actor="system",
                    target=f"agent:{agent_id}",
                    reason=f"{attempts} wrong passwords from one address",
                    now=now,
                    agent_id=agent_id,
                )
            raise _wrong_login()

    async def _audit(self, action: str, agent_id: int | None, reason: str) -> None:
        async with self._sessions.begin() as session:
            await AuditRepository(session).record(
                action,
                actor=f"agent:{agent_id}" if agent_id else "unknown",
                reason=reason,
                now=self._clock.now(),
                agent_id=agent_id,
            )

    async def _verify(self, password_hash: str, password: str) -> bool:
        def check() -> bool:
            try:
                return self._hasher.verify(password_hash, password)
            except (VerificationError, InvalidHashError):
                return False

        return await self._in_pool(check)

    @staticmethod
    async def _in_pool(work: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(_HASHING, work, *args)

    def _needs_rehash(self, password_hash: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return False

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await self._in_pool(self._hasher.hash, secrets.token_urlsafe(16))
        return self._dummy_hash
