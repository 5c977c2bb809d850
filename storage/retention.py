"""The retention job: what lapsed 72 hours ago is deleted, not just hidden."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import ConsoleSession, Conversation
from storage.repositories.agents import AgentRepository
from storage.repositories.cards import ApiErrorRepository, CardRepository
from storage.repositories.conversations import ConversationRepository
from storage.repositories.guards import OrderGuardRepository
from storage.repositories.handoffs import HandoffRepository
from storage.repositories.inbox import InboxRepository
from storage.repositories.qrs import OrderQrRepository
from storage.repositories.rechecks import RecheckRepository

# WeChat redelivers within seconds; keys older than a session are of no use.
DELIVERY_KEYS_KEPT = timedelta(hours=72)
API_ERRORS_KEPT = timedelta(days=7)  # long enough for an admin to notice a pattern


async def purge_expired(
    sessions: async_sessionmaker[AsyncSession], now: datetime
) -> dict[str, int]:
    """Clears expired conversations' data and transcripts, closes their handoffs, drops old keys."""
    async with sessions() as session, session.begin():
        # rows a turn holds right now are skipped (PostgreSQL): that turn ends them itself
        expired = list(
            await session.scalars(
                select(Conversation.id)
                .where(Conversation.expires_at <= now, Conversation.last_inbound_at.is_not(None))
                .with_for_update(skip_locked=True)
            )
        )
        messages = await ConversationRepository(session).end(expired, now)
        keys = await InboxRepository(session).purge_before(now - DELIVERY_KEYS_KEPT)
        cards = await CardRepository(session).purge_before(now - DELIVERY_KEYS_KEPT)
        await OrderGuardRepository(session).purge_before(now - DELIVERY_KEYS_KEPT)
        await AgentRepository(session).purge_guards_before(now - DELIVERY_KEYS_KEPT)
        cancelled = await HandoffRepository(session).purge_cancelled(now - DELIVERY_KEYS_KEPT)
        rechecks = await RecheckRepository(session).purge_done_before(now - DELIVERY_KEYS_KEPT)
        # receipt codes: kept 72 h past their expiry (a late scan is told it expired)
        codes = await OrderQrRepository(session).purge_before(now - DELIVERY_KEYS_KEPT)
        await ApiErrorRepository(session).purge_before(now - API_ERRORS_KEPT)
        logins = (
            await session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
        ).rowcount  # type: ignore[attr-defined]
    return {
        "conversations": len(expired),
        "messages": messages,
        "delivery_keys": keys,
        "cards": cards,
        "cancelled_handoffs": cancelled,
        "order_rechecks": rechecks,
        "receipt_codes": codes,
        "console_sessions": int(logins),
    }
