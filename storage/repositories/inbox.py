"""Delivery keys: each delivery is claimed under a unique constraint before it is processed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import Upsert, dialect_insert, run, table_of
from storage.models import ProcessedMessage, SignatureUse

_INBOX = table_of(ProcessedMessage)
_CLAIM = Upsert(
    lambda insert: (
        insert(_INBOX)
        .values(dedup_key=bindparam("key"), reply=None, created_at=bindparam("now"))
        .on_conflict_do_nothing(index_elements=["dedup_key"])
    )
)
_REPLY_FOR = select(_INBOX.c.reply).where(_INBOX.c.dedup_key == bindparam("key"))
_STORE_REPLY = (
    update(_INBOX).where(_INBOX.c.dedup_key == bindparam("key")).values(reply=bindparam("text"))
)


class InboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def claim(self, dedup_key: str, now: datetime) -> bool:
        """True if this transaction is the first to see the key.

        On PostgreSQL a concurrent claim of the same key waits here until the first
        transaction ends, then sees the conflict; on SQLite writers are serialised.
        """
        result = await run(self._s, _CLAIM.on(self._s), {"key": dedup_key, "now": now})
        return bool(result.rowcount)

    async def reply_for(self, dedup_key: str) -> str | None:
        """The reply recorded for a key, or None when unknown (or still being processed)."""
        reply: str | None = (await run(self._s, _REPLY_FOR, {"key": dedup_key})).scalar()
        return reply

    async def store_reply(self, dedup_key: str, reply: str) -> None:
        await run(self._s, _STORE_REPLY, {"key": dedup_key, "text": reply})

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
