"""Conversations: loaded under a row lock for one turn, saved back with a bumped version."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import dialect_insert
from storage.models import Conversation, Message
from storage.records import ConversationRecord


def _record(row: Conversation) -> ConversationRecord:
    return ConversationRecord(
        id=row.id,
        channel=row.channel,
        user_id=row.user_id,
        state=row.state,
        data=dict(row.data or {}),
        lang=row.lang,
        owner=row.owner,
        version=row.version,
        last_inbound_at=row.last_inbound_at,
        expires_at=row.expires_at,
    )


class ConversationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def load_for_update(
        self, channel: str, user_id: str, initial_state: str, now: datetime, ttl_expires: datetime
    ) -> ConversationRecord:
        """The user's conversation, created if new, locked for the rest of the transaction."""
        stmt = (
            dialect_insert(self._s, Conversation)
            .values(
                channel=channel,
                user_id=user_id,
                state=initial_state,
                data={},
                lang="zh",
                owner="bot",
                version=0,
                created_at=now,
                updated_at=now,
                expires_at=ttl_expires,
            )
            .on_conflict_do_nothing(index_elements=["channel", "user_id"])
        )
        await self._s.execute(stmt)
        row = await self._s.scalar(
            select(Conversation)
            .where(Conversation.channel == channel, Conversation.user_id == user_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        assert row is not None  # just inserted or already there, and locked
        return _record(row)

    async def save(self, conv: ConversationRecord, now: datetime) -> None:
        await self._s.execute(
            update(Conversation)
            .where(Conversation.id == conv.id)
            .values(
                state=conv.state,
                data=conv.data,
                lang=conv.lang,
                owner=conv.owner,
                version=conv.version + 1,
                updated_at=now,
                last_inbound_at=conv.last_inbound_at,
                expires_at=conv.expires_at,
            )
        )
        conv.version += 1

    async def get(self, channel: str, user_id: str) -> ConversationRecord | None:
        row = await self._s.scalar(
            select(Conversation).where(
                Conversation.channel == channel, Conversation.user_id == user_id
            )
        )
        return None if row is None else _record(row)


class TranscriptRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(
        self, conversation_id: int, direction: str, sender: str, text: str, now: datetime
    ) -> None:
        self._s.add(
            Message(
                conversation_id=conversation_id,
                direction=direction,
                sender=sender,
                text=text,
                created_at=now,
            )
        )

    async def for_conversation(self, conversation_id: int) -> list[tuple[str, str, str]]:
        rows = await self._s.execute(
            select(Message.direction, Message.sender, Message.text)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.id)
        )
        return [(d, s, t) for d, s, t in rows]

    async def delete_for_conversation(self, conversation_id: int) -> None:
        await self._s.execute(delete(Message).where(Message.conversation_id == conversation_id))
