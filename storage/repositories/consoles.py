"""Open live consoles, one row per connection, shared by every server process.

A connection's row is written when its console opens, refreshed by a heartbeat while it stays
open, and deleted when it closes. A worker killed outright deletes nothing: its rows stop
being refreshed, and whoever counts treats a row older than the cutoff as gone.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import dialect_insert
from storage.models import Agent, ConsoleConnection


class ConsoleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def beat(self, connection: str, agent_id: int, worker: str, now: datetime) -> None:
        """The connection is open now: its row is written, or refreshed. A row swept as stale
        meanwhile (the worker was stalled, the database out of reach) comes back."""
        statement = dialect_insert(self._s, ConsoleConnection).values(
            id=connection, agent_id=agent_id, worker=worker, opened_at=now, seen_at=now
        )
        await self._s.execute(
            statement.on_conflict_do_update(index_elements=["id"], set_={"seen_at": now})
        )

    async def hold_agent(self, agent_id: int) -> None:
        """Locks the agent's row for the rest of the transaction: one close or sweep of an
        agent's consoles at a time, so two consoles closing together cannot each still count
        the other (PostgreSQL reads what is committed) and both leave the leases unstarted."""
        await self._s.execute(select(Agent.id).where(Agent.id == agent_id).with_for_update())

    async def close(self, connection: str) -> None:
        await self._s.execute(delete(ConsoleConnection).where(ConsoleConnection.id == connection))

    async def live(self, agent_id: int, seen_since: datetime) -> int:
        """How many of the agent's consoles are open: rows seen at or after ``seen_since``."""
        count = await self._s.scalar(
            select(func.count())
            .select_from(ConsoleConnection)
            .where(ConsoleConnection.agent_id == agent_id, ConsoleConnection.seen_at >= seen_since)
        )
        return int(count or 0)

    async def forget_stale(self, seen_before: datetime) -> list[int]:
        """Deletes the rows last seen before ``seen_before`` (their worker is gone); returns
        the agents they belonged to, each once."""
        gone = await self._s.scalars(
            delete(ConsoleConnection)
            .where(ConsoleConnection.seen_at < seen_before)
            .returning(ConsoleConnection.agent_id)
        )
        return sorted(set(gone))
