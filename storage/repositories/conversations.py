"""Conversations: loaded under a row lock for one turn, saved back with a bumped version."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.crypto import keyring
from storage.db import Upsert, run, table_of
from storage.models import Conversation, Handoff, Message
from storage.records import (
    OPEN_STATUSES,
    ConversationData,
    ConversationRecord,
    FunnelStep,
    HandoffStatus,
    MessageRecord,
    Owner,
)
from storage.repositories.funnel import FunnelRepository

_CONVERSATIONS = table_of(Conversation)
_MESSAGES = table_of(Message)
_LOCK_USER = (
    select(_CONVERSATIONS)
    .where(
        _CONVERSATIONS.c.channel == bindparam("channel"),
        _CONVERSATIONS.c.user_index.in_(bindparam("indexes", expanding=True)),
    )
    .with_for_update()
)
_START = Upsert(
    lambda insert: (
        insert(_CONVERSATIONS)
        .values(
            channel=bindparam("channel"),
            user_id=bindparam("user"),
            user_index=bindparam("index"),
            state=bindparam("initial"),
            data={},
            lang="zh",
            owner=Owner.BOT,
            version=0,
            created_at=bindparam("now"),
            updated_at=bindparam("now"),
            expires_at=bindparam("expires"),
        )
        .on_conflict_do_nothing(index_elements=["channel", "user_index"])
    )
)
_SAVE = (
    update(_CONVERSATIONS)
    .where(_CONVERSATIONS.c.id == bindparam("conv"))
    .values(
        state=bindparam("new_state"),
        data=bindparam("new_data"),
        lang=bindparam("new_lang"),
        owner=bindparam("new_owner"),
        version=bindparam("new_version"),
        updated_at=bindparam("now"),
        last_inbound_at=bindparam("inbound_at"),
        expires_at=bindparam("new_expiry"),
    )
)
_ADD_LINE = insert(_MESSAGES)


def _record(row: Any) -> ConversationRecord:
    return ConversationRecord(
        id=row.id,
        channel=row.channel,
        user_id=row.user_id,
        state=row.state,
        data=ConversationData.from_json(row.data),
        lang=row.lang,
        owner=row.owner,
        version=row.version,
        last_inbound_at=row.last_inbound_at,
        expires_at=row.expires_at,
    )


def _line(row: Message) -> MessageRecord:
    return MessageRecord(
        id=row.id,
        conversation_id=row.conversation_id,
        direction=row.direction,
        sender=row.sender,
        text=row.text,
        created_at=row.created_at,
    )


class ConversationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def load_for_update(
        self, channel: str, user_id: str, initial_state: str, now: datetime, ttl_expires: datetime
    ) -> ConversationRecord:
        """The user's conversation, created if new, locked for the rest of the transaction.

        Most turns find it (one statement); a first message inserts it, tolerating a
        concurrent insert of the same user, and reads it back.
        """
        keys = keyring()
        who = {"channel": channel, "indexes": keys.index_variants(user_id)}
        row = (await run(self._s, _LOCK_USER, who)).first()
        if row is not None:
            return _record(row)
        start = {
            "channel": channel,
            "user": user_id,
            "index": keys.index(user_id),
            "initial": initial_state,
            "now": now,
            "expires": ttl_expires,
        }
        await run(self._s, _START.on(self._s), start)
        row = (await run(self._s, _LOCK_USER, who)).first()
        assert row is not None  # just inserted (by us or a concurrent turn), and locked
        return _record(row)

    async def lock(self, conversation_id: int) -> ConversationRecord | None:
        """The conversation by id, locked for the rest of the transaction: for work the bot
        does between the customer's turns (rechecks), under the same row lock as a turn."""
        row = await self._s.scalar(
            select(Conversation)
            .where(Conversation.id == conversation_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return None if row is None else _record(row)

    async def save(self, conv: ConversationRecord, now: datetime) -> None:
        saved = {
            "conv": conv.id,
            "new_state": conv.state,
            "new_data": conv.data.to_json(),
            "new_lang": conv.lang,
            "new_owner": conv.owner,
            "new_version": conv.version + 1,
            "now": now,
            "inbound_at": conv.last_inbound_at,
            "new_expiry": conv.expires_at,
        }
        await run(self._s, _SAVE, saved)
        conv.version += 1

    async def end(self, conversation_ids: list[int], now: datetime) -> int:
        """Ends conversations whose 72 hours lapsed: the transcript is deleted, open handoffs
        expire, the row starts afresh; a journey that got no answer (no card, no person)
        counts as abandoned where it stopped. The caller holds the rows. Returns lines deleted."""
        if not conversation_ids:
            return 0
        ending = await self._s.execute(
            select(Conversation.channel, Conversation.data).where(
                Conversation.id.in_(conversation_ids)
            )
        )
        funnel = FunnelRepository(self._s)
        for channel, data in ending:
            journey = ConversationData.from_json(data).journey
            if journey is not None and not journey.done:
                await funnel.record(
                    journey.id,
                    [FunnelStep.ABANDONED],
                    channel,
                    journey.mode,
                    now,
                    stopped_at=journey.stage.value,
                )
        deleted = await self._s.execute(
            delete(Message).where(Message.conversation_id.in_(conversation_ids))
        )
        await self._s.execute(
            update(Handoff)
            .where(Handoff.conversation_id.in_(conversation_ids), Handoff.status.in_(OPEN_STATUSES))
            .values(status=HandoffStatus.EXPIRED, closed_at=now)
            .execution_options(synchronize_session=False)
        )
        await self._s.execute(
            update(Conversation)
            .where(Conversation.id.in_(conversation_ids))
            .values(state="new", data={}, owner=Owner.BOT, last_inbound_at=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return int(deleted.rowcount)  # type: ignore[attr-defined]

    async def get(self, channel: str, user_id: str) -> ConversationRecord | None:
        row = await self._s.scalar(
            select(Conversation).where(
                Conversation.channel == channel,
                Conversation.user_index.in_(keyring().index_variants(user_id)),
            )
        )
        return None if row is None else _record(row)

    async def by_id(self, conversation_id: int) -> ConversationRecord | None:
        """The conversation as it stands, unlocked (for reading only)."""
        row = await self._s.scalar(
            select(Conversation)
            .where(Conversation.id == conversation_id)
            .execution_options(populate_existing=True)
        )
        return None if row is None else _record(row)

    async def pass_to(self, conversation_id: int, owner: Owner) -> None:
        """The conversation changes hands (the queue, an agent). Its version moves on, so a
        message prepared for the previous owner is not sent. The caller holds the row."""
        await self._bump(conversation_id, owner=owner)

    async def return_to_bot(self, conversation_id: int, state: str, data: ConversationData) -> None:
        """A person is done: the bot speaks again, from ``state`` with ``data``. The caller
        holds the row."""
        await self._bump(conversation_id, owner=Owner.BOT, state=state, data=data.to_json())

    async def bump_version(self, conversation_id: int) -> None:
        """Something was said on the conversation's behalf outside a turn (an agent's reply):
        a send prepared before it is stale. The caller holds the row."""
        await self._bump(conversation_id)

    async def _bump(self, conversation_id: int, **values: object) -> None:
        await self._s.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id)
            .values(version=Conversation.version + 1, **values)
            .execution_options(synchronize_session=False)  # records are read afresh
        )


class TranscriptRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add_turn(
        self, conversation_id: int, lines: list[tuple[str, str, str]], now: datetime
    ) -> None:
        """One turn's lines — (direction, sender, text) — in a single statement."""
        if lines:
            await run(
                self._s,
                _ADD_LINE,
                [
                    {
                        "conversation_id": conversation_id,
                        "direction": direction,
                        "sender": sender,
                        "text": text,
                        "created_at": now,
                    }
                    for direction, sender, text in lines
                ],
            )

    async def add_line(
        self, conversation_id: int, direction: str, sender: str, text: str, now: datetime
    ) -> int:
        """One line, recorded before it is sent (it takes its place in WeChat's quota);
        returns its id, so a send that fails can take it back."""
        line = Message(
            conversation_id=conversation_id,
            direction=direction,
            sender=sender,
            text=text,
            created_at=now,
        )
        self._s.add(line)
        await self._s.flush()
        return line.id

    async def take_back(self, line_id: int) -> None:
        """A line that was never delivered leaves the transcript."""
        await self._s.execute(delete(Message).where(Message.id == line_id))

    async def api_sends_since_customer(self, conversation_id: int, bot_sender: str) -> int:
        """Lines sent through WeChat's customer-service API — agents' (``agent:<id>``) and
        the bot's own (``bot_sender``) — since the customer's last message: WeChat allows
        five per customer message."""
        last_in = (
            select(func.coalesce(func.max(Message.id), 0))
            .where(Message.conversation_id == conversation_id, Message.direction == "in")
            .scalar_subquery()
        )
        sent = await self._s.scalar(
            select(func.count())
            .select_from(Message)
            .where(
                Message.conversation_id == conversation_id,
                Message.direction == "out",
                Message.sender.like("agent:%") | (Message.sender == bot_sender),
                Message.id > last_in,
            )
        )
        return int(sent or 0)

    async def resend_as(self, conversation_id: int, text: str, sender: str, resent_by: str) -> None:
        """Marks the newest ``sender`` line with this text as delivered by ``resent_by``.

        Lines are sealed with a fresh nonce each, so the text is compared once opened."""
        recent = await self._s.execute(
            select(Message.id, Message.text)
            .where(
                Message.conversation_id == conversation_id,
                Message.direction == "out",
                Message.sender == sender,
            )
            .order_by(Message.id.desc())
            .limit(20)
        )
        newest = next((line_id for line_id, said in recent if said == text), None)
        if newest is None:
            return
        await self._s.execute(
            update(Message)
            .where(Message.id == newest)
            .values(sender=resent_by)
            .execution_options(synchronize_session=False)
        )

    async def lines(self, conversation_id: int) -> list[MessageRecord]:
        """The whole transcript, notes included, oldest first."""
        rows = await self._s.scalars(
            select(Message).where(Message.conversation_id == conversation_id).order_by(Message.id)
        )
        return [_line(m) for m in rows]

    async def last_lines(
        self, conversation_ids: list[int], count: int
    ) -> dict[int, list[MessageRecord]]:
        """Each conversation's newest ``count`` lines said to or by the customer (no notes),
        oldest first, in one query however many conversations are asked for."""
        newest_first = (
            func.row_number()
            .over(partition_by=Message.conversation_id, order_by=Message.id.desc())
            .label("newest_first")
        )
        recent = (
            select(Message.id, newest_first)
            .where(Message.conversation_id.in_(conversation_ids), Message.direction != "note")
            .subquery()
        )
        last: dict[int, list[MessageRecord]] = {cid: [] for cid in conversation_ids}
        for m in await self._s.scalars(
            select(Message)
            .join(recent, recent.c.id == Message.id)
            .where(recent.c.newest_first <= count)
            .order_by(Message.id)
        ):
            last[m.conversation_id].append(_line(m))
        return last

    async def delete_for_conversation(self, conversation_id: int) -> None:
        await self._s.execute(delete(Message).where(Message.conversation_id == conversation_id))
