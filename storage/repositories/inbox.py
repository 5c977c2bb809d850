"""Delivery keys: each delivery is claimed under a unique constraint before it is processed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import dialect_insert
from storage.models import ProcessedMessage, SignatureUse


class InboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def claim(self, dedup_key: str, now: datetime) -> bool:
        """True if this transaction is the first to see the key.

        On PostgreSQL a concurrent claim of the same key waits here until the first
        transaction ends, then sees the conflict; on SQLite writers are serialised.
        """
        result = await self._s.execute(
            dialect_insert(self._s, ProcessedMessage)
            .values(dedup_key=dedup_key, reply=None, created_at=now)
            .on_conflict_do_nothing(index_elements=["dedup_key"])
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def reply_for(self, dedup_key: str) -> str | None:
        """The reply recorded for a key, or None when unknown (or still being processed)."""
        return await self._s.scalar(
            select(ProcessedMessage.reply).where(ProcessedMessage.dedup_key == dedup_key)
        )

    async def store_reply(self, dedup_key: str, reply: str) -> None:
        await self._s.execute(
            update(ProcessedMessage)
            .where(ProcessedMessage.dedup_key == dedup_key)
            .values(reply=reply)
            .execution_options(synchronize_session=False)  # no ORM objects to keep in step
        )

    async def mark_answered_late(self, dedup_key: str, now: datetime) -> None:
        """Records that this delivery's callback got an empty "success" and its reply goes out
        through the message API. Written in the turn's transaction, so the mark and the reply
        become visible together: a redelivery never sees one without the other."""
        await self._s.execute(
            update(ProcessedMessage)
            .where(ProcessedMessage.dedup_key == dedup_key)
            .values(answered_late_at=now)
            .execution_options(synchronize_session=False)
        )

    async def answered_late(self, dedup_key: str) -> bool:
        """True if this delivery's reply went out through the message API, not the callback."""
        when = await self._s.scalar(
            select(ProcessedMessage.answered_late_at).where(ProcessedMessage.dedup_key == dedup_key)
        )
        return when is not None

    async def bind_signature(self, signature_key: str, body_digest: str, now: datetime) -> bool:
        """True if this signature is new, or already carried this very body (a retry).

        False means the signature was used for a different body: a forgery riding on a
        signature copied from somewhere (plaintext signatures do not cover the body).
        """
        await self._s.execute(
            dialect_insert(self._s, SignatureUse)
            .values(signature_key=signature_key, body_digest=body_digest, created_at=now)
            .on_conflict_do_nothing(index_elements=["signature_key"])
        )
        bound = await self._s.scalar(
            select(SignatureUse.body_digest).where(SignatureUse.signature_key == signature_key)
        )
        return bound == body_digest

    async def purge_before(self, cutoff: datetime) -> int:
        """Drops delivery keys and signature uses recorded before ``cutoff``."""
        result = await self._s.execute(
            delete(ProcessedMessage).where(ProcessedMessage.created_at < cutoff)
        )
        await self._s.execute(delete(SignatureUse).where(SignatureUse.created_at < cutoff))
        return int(result.rowcount)  # type: ignore[attr-defined]
