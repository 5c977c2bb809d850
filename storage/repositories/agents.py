"""Console logins and their browser sessions: password hashes, lockouts, session token hashes.

Password attempts are counted with a single UPDATE that also ends a lapsed lock, and the count
is read back in the same transaction, so concurrent guesses cannot slip past the limit: on
SQLite writers are serialised, on PostgreSQL the row lock orders them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Agent, ConsoleSession


@dataclass(frozen=True, slots=True)
class AgentRecord:
    id: int
    name: str
    role: str
    password_hash: str
    must_change_password: bool
    failed_logins: int
    locked_until: datetime | None
    last_seen_at: datetime | None
    created_at: datetime


def _record(row: Agent) -> AgentRecord:
    return AgentRecord(
        id=row.id,
        name=row.name,
        role=row.role,
        password_hash=row.password_hash,
        must_change_password=row.must_change_password,
        failed_logins=row.failed_logins,
        locked_until=row.locked_until,
        last_seen_at=row.last_seen_at,
        created_at=row.created_at,
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
            failed_logins=0,
            created_at=now,
        )
        try:
            async with self._s.begin_nested():
                self._s.add(row)
        except IntegrityError:
            return None
        return _record(row)

    async def count_attempt(self, agent_id: int, now: datetime) -> tuple[int, datetime | None]:
        """Counts one more password attempt (a failure until proven otherwise).

        Returns the new count and the end of a lock still in force. A lock that has lapsed is
        lifted here and the count starts again from one.
        """
        lapsed = and_(Agent.locked_until.is_not(None), Agent.locked_until <= now)
        await self._s.execute(
            update(Agent)
            .where(Agent.id == agent_id)
            .values(
                failed_logins=case((lapsed, 1), else_=Agent.failed_logins + 1),
                locked_until=case((lapsed, None), else_=Agent.locked_until),
            )
        )
        row = (
            await self._s.execute(
                select(Agent.failed_logins, Agent.locked_until).where(Agent.id == agent_id)
            )
        ).one()
        return int(row.failed_logins), row.locked_until

    async def unlock(self, agent_id: int) -> None:
        await self._s.execute(
            update(Agent).where(Agent.id == agent_id).values(failed_logins=0, locked_until=None)
        )

    async def lock(self, agent_id: int, until: datetime) -> None:
        await self._s.execute(update(Agent).where(Agent.id == agent_id).values(locked_until=until))

    async def login_succeeded(self, agent_id: int, now: datetime) -> None:
        await self._s.execute(
            update(Agent)
            .where(Agent.id == agent_id)
            .values(failed_logins=0, locked_until=None, last_seen_at=now)
        )

    async def set_password(
        self, agent_id: int, password_hash: str, *, must_change: bool = False
    ) -> None:
        await self._s.execute(
            update(Agent)
            .where(Agent.id == agent_id)
            .values(password_hash=password_hash, must_change_password=must_change)
        )

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
        """The agent and CSRF token of an unexpired session."""
        row = (
            await self._s.execute(
                select(Agent, ConsoleSession.csrf_token)
                .join(ConsoleSession, ConsoleSession.agent_id == Agent.id)
                .where(ConsoleSession.token_hash == token_hash, ConsoleSession.expires_at > now)
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
