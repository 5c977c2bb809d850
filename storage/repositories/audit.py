"""The append-only audit log: who did what sensitive thing, when and why — no personal data
in clear (customers appear by pseudonym, free-text reasons are sealed)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import run, table_of
from storage.models import AuditEntry

_RECORD = insert(table_of(AuditEntry))


@dataclass(frozen=True, slots=True)
class AuditRecord:
    at: datetime
    actor: str
    action: str
    target: str
    reason: str


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def record(
        self,
        action: str,
        *,
        actor: str,
        target: str = "",
        reason: str = "",
        now: datetime,
        agent_id: int | None = None,
    ) -> None:
        entry = {
            "agent_id": agent_id,
            "actor": actor[:64],
            "action": action[:32],
            "target": target[:64],
            "reason": reason,
            "created_at": now,
        }
        await run(self._s, _RECORD, entry)

    async def recent_reasons(
        self, agent_id: int, action: str, target: str, since: datetime
    ) -> list[str]:
        """Reasons an agent gave for ``action`` on ``target`` since ``since`` (sealed, so they
        are compared once opened)."""
        return list(
            await self._s.scalars(
                select(AuditEntry.reason).where(
                    AuditEntry.agent_id == agent_id,
                    AuditEntry.action == action,
                    AuditEntry.target == target,
                    AuditEntry.created_at >= since,
                )
            )
        )

    async def since(self, since: datetime | None) -> list[AuditRecord]:
        query = select(AuditEntry).order_by(AuditEntry.id)
        if since is not None:
            query = query.where(AuditEntry.created_at >= since)
        return [
            AuditRecord(e.created_at, e.actor, e.action, e.target, e.reason)
            for e in await self._s.scalars(query)
        ]
