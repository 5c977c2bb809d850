"""Canned replies: short texts an admin keeps for agents to pick from in the console."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import CannedReply
from storage.records import CannedRecord


class CannedReplyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def list_all(self) -> list[CannedRecord]:
        """By title, as the console lists them."""
        rows = await self._s.scalars(select(CannedReply).order_by(CannedReply.title))
        return [CannedRecord(c.id, c.title, c.text) for c in rows]

    async def add(self, title: str, text: str, now: datetime) -> CannedRecord:
        row = CannedReply(title=title, text=text, created_at=now)
        self._s.add(row)
        await self._s.flush()
        return CannedRecord(row.id, row.title, row.text)

    async def delete(self, canned_id: int) -> bool:
        """``False`` if there was no such reply."""
        result = await self._s.execute(delete(CannedReply).where(CannedReply.id == canned_id))
        return bool(result.rowcount)  # type: ignore[attr-defined]
