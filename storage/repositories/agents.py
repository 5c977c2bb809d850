"""Console logins and their browser sessions: password hashes, lockouts, session token hashes.

Password attempts are counted per login and client address in the row of that pair, locked
for update and read back in the same transaction, so concurrent guesses cannot slip past the
limit: on SQLite writers are serialised, on PostgreSQL the row lock orders them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.crypto import keyring
from storage.db import dialect_insert
from storage.models import Agent, ConsoleSession, LoginGuard


def source_key(address: str) -> str:
    """A client address as the guards keep it: an HMAC blind index, not the address."""
    return keyring().index(f"login-source\x00{address}")


@dataclass(frozen=True, slots=True)
class AgentRecord:
    id: int
    name: str
    role: str
    password_hash: str
    must_change_password: bool
    last_seen_at: datetime | None
    created_at: datetime
    disabled_at: datetime | None = None
    lang: str = "zh"  # the console's language: zh | en | both


def _record(row: Agent) -> AgentRecord:
    return AgentRecord(
        id=row.id,
        name=row.name,
        role=row.role,
        password_hash=row.password_hash,
        must_change_password=row.must_change_password,
        last_seen_at=row.last_seen_at,
        created_at=row.created_at,
        disabled_at=row.disabled_at,
        lang=row.lang,
    )


class AgentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def get(self, agent_id: int) -> AgentRecord | None:
        row = await self._s.get(Agent, agent_id, populate_existing=True)
        return None if row is None else _record(row)

    async def by_name(self, name: str) -> AgentRecord | None:
        """The login of that name, compared after case folding (names are few)."""
        row = (await self._s.execute(select(Agent).where(Agent.name == name))).scalar_one_or_none()
        if row is None:
            folded = name.casefold()
            row = next(
                (a for a in await self._s.scalars(select(Agent)) if a.name.casefold() == folded),
                None,
            )
        return None if row is None else _record(row)

    async def list_all(self) -> list[AgentRecord]:
        rows = await self._s.execute(select(Agent).order_by(Agent.name))
        return [_record(r) for r in rows.scalars()]

    async def names(self) -> dict[int, str]:
        """Every agent's name by id (transcripts and queue rows say who, in words)."""
        return {i: n for i, n in await self._s.execute(select(Agent.id, Agent.name))}

    async def create(
        self, name: str, role: str, password_hash: str, now: datetime
    ) -> AgentRecord | None:
        """A new login that must change its password; ``None`` if the name is taken (after
        case folding)."""
        if await self.by_name(name) is not None:
            return None
        row = Agent(
            name=name,
            role=role,
            password_hash=password_hash,
            must_change_password=True,
            created_at=now,
        )
        try:
            async with self._s.begin_nested():
                self._s.add(row)
        except IntegrityError:
            return None
        return _record(row)

    async def count_attempt(
        self, agent_id: int, address: str, now: datetime
    ) -> tuple[int, datetime | None]:
        """Counts one more password attempt for the login from ``address`` (a failure until
        proven otherwise).

        Returns the new count and the end of a lock still in force. A lock that has lapsed is
        lifted here and the count starts again from one.
        """
        source = source_key(address)
        await self._s.execute(
            dialect_insert(self._s, LoginGuard)
            .values(agent_id=agent_id, source=source, failures=0, last_attempt_at=now)
            .on_conflict_do_nothing(index_elements=["agent_id", "source"])
        )
        guard = await self._s.scalar(
            select(LoginGuard)
            .where(LoginGuard.agent_id == agent_id, LoginGuard.source == source)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        assert guard is not None
        if guard.locked_until is not None and guard.locked_until <= now:
            guard.failures, guard.locked_until = 0, None
        guard.failures += 1
        guard.last_attempt_at = now
        await self._s.flush()
        return guard.failures, guard.locked_until

    async def lock(self, agent_id: int, address: str, until: datetime) -> None:
        await self._s.execute(
            update(LoginGuard)
            .where(LoginGuard.agent_id == agent_id, LoginGuard.source == source_key(address))
            .values(locked_until=until)
        )

    async def unlock(self, agent_id: int, now: datetime) -> int:
        """Lifts every lock on the login and forgets its wrong tries, from every address;
        returns how many addresses were locked out."""
        locked = await self.locked_addresses(agent_id, now)
        await self._s.execute(delete(LoginGuard).where(LoginGuard.agent_id == agent_id))
        return locked

    async def lockouts(self, now: datetime) -> dict[int, datetime]:
        """Logins locked out from some address now, with the end of their last lock."""
        rows = await self._s.execute(
            select(LoginGuard.agent_id, func.max(LoginGuard.locked_until))
            .where(LoginGuard.locked_until > now)
            .group_by(LoginGuard.agent_id)
        )
        return {agent_id: until for agent_id, until in rows if until is not None}

    async def locked_addresses(self, agent_id: int, now: datetime) -> int:
        """How many client addresses are locked out of the login now."""
        count = await self._s.scalar(
            select(func.count())
            .select_from(LoginGuard)
            .where(LoginGuard.agent_id == agent_id, LoginGuard.locked_until > now)
        )
        return int(count or 0)

    async def purge_guards_before(self, cutoff: datetime) -> int:
        """Forgets attempts older than ``cutoff`` whose lock (if any) has ended by then."""
        result = await self._s.execute(
            delete(LoginGuard).where(
                LoginGuard.last_attempt_at < cutoff,
                or_(LoginGuard.locked_until.is_(None), LoginGuard.locked_until < cutoff),
            )
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def login_succeeded(self, agent_id: int, address: str, now: datetime) -> None:
        """The password was right: that address's wrong tries are forgotten."""
        await self._s.execute(
            delete(LoginGuard).where(
                LoginGuard.agent_id == agent_id, LoginGuard.source == source_key(address)
            )
        )
        await self._s.execute(update(Agent).where(Agent.id == agent_id).values(last_seen_at=now))

    async def set_password(
        self, agent_id: int, password_hash: str, *, must_change: bool = False
    ) -> None:
        await self._s.execute(
            update(Agent)
            .where(Agent.id == agent_id)
            .values(password_hash=password_hash, must_change_password=must_change)
        )

    async def reset_password(self, agent_id: int, password_hash: str, now: datetime) -> int:
        """A one-time password the agent must change at their next login: every session of
        theirs ends and every lockout is lifted. Returns how many addresses were locked out."""
        await self.set_password(agent_id, password_hash, must_change=True)
        await self.delete_sessions(agent_id)
        return await self.unlock(agent_id, now)

    async def disable(self, agent_id: int, now: datetime) -> bool:
        """The login cannot sign in any more and its sessions end; ``False`` if it was
        already disabled (then nothing changes). What the agent holds in the queue is the
        caller's to return (``HandoffRepository.lapse_leases``)."""
        result = await self._s.execute(
            update(Agent)
            .where(Agent.id == agent_id, Agent.disabled_at.is_(None))
            .values(disabled_at=now)
        )
        await self.delete_sessions(agent_id)
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def enable(self, agent_id: int) -> bool:
        """A disabled login may sign in again; ``False`` if it was not disabled."""
        result = await self._s.execute(
            update(Agent)
            .where(Agent.id == agent_id, Agent.disabled_at.is_not(None))
            .values(disabled_at=None)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def touch(self, agent_id: int, now: datetime, *, every_seconds: float = 0) -> None:
        """Marks the agent as seen now (skipped if seen less than ``every_seconds`` ago)."""
        stale = now - timedelta(seconds=every_seconds)
        await self._s.execute(
            update(Agent)
            .where(
                Agent.id == agent_id,
                or_(Agent.last_seen_at.is_(None), Agent.last_seen_at <= stale),
            )
            .values(last_seen_at=now)
        )

    # -- browser sessions -------------------------------------------------------------------

    async def add_session(
        self, token_hash: str, agent_id: int, csrf_token: str, now: datetime, expires_at: datetime
    ) -> None:
        self._s.add(
            ConsoleSession(
                token_hash=token_hash,
                agent_id=agent_id,
                csrf_token=csrf_token,
                created_at=now,
                expires_at=expires_at,
            )
        )
        await self._s.flush()

    async def session(self, token_hash: str, now: datetime) -> tuple[AgentRecord, str] | None:
        """The agent and CSRF token of an unexpired session of a login that is not disabled."""
        row = (
            await self._s.execute(
                select(Agent, ConsoleSession.csrf_token)
                .join(ConsoleSession, ConsoleSession.agent_id == Agent.id)
                .where(
                    ConsoleSession.token_hash == token_hash,
                    ConsoleSession.expires_at > now,
                    Agent.disabled_at.is_(None),  # a disabled login's sessions stop at once
                )
            )
        ).first()
        if row is None:
            return None
        agent, csrf = row
        return _record(agent), csrf

    async def delete_session(self, token_hash: str) -> None:
        await self._s.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == token_hash))

    async def delete_sessions(
        self, agent_id: int, *, keep: str | None = None, expired_before: datetime | None = None
    ) -> None:
        """Ends an agent's sessions: all but ``keep``, or only those expired by then."""
        where = [ConsoleSession.agent_id == agent_id]
        if keep is not None:
            where.append(ConsoleSession.token_hash != keep)
        if expired_before is not None:
            where.append(ConsoleSession.expires_at <= expired_before)
        await self._s.execute(delete(ConsoleSession).where(*where))

    # -- the agent's own settings -----------------------------------------------------------

    async def set_lang(self, agent_id: int, lang: str) -> bool:
        """Stores the console language the agent chose (zh | en | both); False if no such
        agent."""
        result = await self._s.execute(update(Agent).where(Agent.id == agent_id).values(lang=lang))
        return bool(result.rowcount)  # type: ignore[attr-defined]
