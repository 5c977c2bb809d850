"""Delivery keys: each delivery is claimed under a unique constraint before it is processed."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

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
_RECORDED = select(_INBOX.c.reply, _INBOX.c.answered_late_at).where(
    _INBOX.c.dedup_key == bindparam("key")
)
_STORE_REPLY = (
    update(_INBOX)
    .where(_INBOX.c.dedup_key == bindparam("key"))
    .values(reply=bindparam("text"), answered_late_at=bindparam("late_at"))
)

_UNMARK_LATE = (
    update(_INBOX)
    .where(_INBOX.c.dedup_key == bindparam("key"), _INBOX.c.answered_late_at.is_not(None))
    .values(answered_late_at=None)
)


class Recorded(NamedTuple):
    reply: str | None
    answered_late: bool


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

    async def recorded(self, dedup_key: str) -> Recorded:
        """What the record says of a delivery already claimed: its reply (None while still
        being processed) and whether that reply went out through the message API."""
        row = (await run(self._s, _RECORDED, {"key": dedup_key})).first()
        if row is None:
            return Recorded(None, answered_late=False)
        return Recorded(row.reply, answered_late=row.answered_late_at is not None)

    async def store_reply(
        self, dedup_key: str, reply: str, *, answered_late_at: datetime | None = None
    ) -> None:
        """The turn's reply, with ``answered_late_at`` when the callback already got an empty
        "success" and the reply goes out through the message API. Written in the turn's
        transaction, so a redelivery never sees the mark without the reply, or the reverse."""
        params = {"key": dedup_key, "text": reply, "late_at": answered_late_at}
        await run(self._s, _STORE_REPLY, params)

    async def unmark_late(self, dedup_key: str) -> bool:
        """The reply meant for the message API never went out: a redelivery gets it in its
        callback again. ``False`` if the record was not marked (or is gone)."""
        result = await run(self._s, _UNMARK_LATE, {"key": dedup_key})
        return bool(result.rowcount)

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
