"""The retention job: what lapsed 72 hours ago is deleted, not just hidden — and what it
deleted, in words."""

from __future__ import annotations

from collections.abc import Mapping
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

# What each count of ``purge_expired`` is, in its order: (key, Chinese with its measure word,
# English singular, English plural).
PURGED: tuple[tuple[str, str, str, str], ...] = (
    ("conversations", "个过期会话（数据已清空）", "expired conversation", "expired conversations"),
    ("messages", "条对话记录", "transcript line", "transcript lines"),
    ("delivery_keys", "个消息去重记录", "message delivery key", "message delivery keys"),
    ("cards", "张过期名片链接", "expired card link", "expired card links"),
    ("cancelled_handoffs", "个已取消的转人工", "cancelled handoff", "cancelled handoffs"),
    ("order_rechecks", "个已完成的订单复查", "finished order recheck", "finished order rechecks"),
    ("receipt_codes", "个过期的收据二维码", "expired receipt QR code", "expired receipt QR codes"),
    ("console_sessions", "个过期的客服登录", "expired console session", "expired console sessions"),
    (
        "order_guards",
        "个旧的订单猜测记录",
        "old order-guessing record",
        "old order-guessing records",
    ),
    ("login_guards", "个旧的登录失败记录", "old failed-login record", "old failed-login records"),
    ("api_errors", "条旧的微信接口错误", "old WeChat API error", "old WeChat API errors"),
)


def describe_purge(counts: Mapping[str, int]) -> str:
    """What a run deleted, Chinese then English: "已删除：3 个过期会话…、12 条对话记录。 /
    Deleted: 3 expired conversations, 12 transcript lines." — or that nothing was due."""
    done = [(n, zh, one if n == 1 else many) for key, zh, one, many in PURGED if (n := counts[key])]
    if not done:
        return "没有到期需要删除的内容。 / Nothing was due for deletion."
    zh = "、".join(f"{n} {words}" for n, words, _ in done)
    en = ", ".join(f"{n} {words}" for n, _, words in done)
    return f"已删除：{zh}。 / Deleted: {en}."


async def purge_expired(
    sessions: async_sessionmaker[AsyncSession], now: datetime
) -> dict[str, int]:
    """Clears expired conversations' data and transcripts, closes their handoffs, drops old keys.

    Returns how many of each kind went, keyed as in ``PURGED`` (``describe_purge`` says it)."""
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
        guards = await OrderGuardRepository(session).purge_before(now - DELIVERY_KEYS_KEPT)
        failed_logins = await AgentRepository(session).purge_guards_before(now - DELIVERY_KEYS_KEPT)
        cancelled = await HandoffRepository(session).purge_cancelled(now - DELIVERY_KEYS_KEPT)
        rechecks = await RecheckRepository(session).purge_done_before(now - DELIVERY_KEYS_KEPT)
        # receipt codes: kept 72 h past their expiry (a late scan is told it expired)
        codes = await OrderQrRepository(session).purge_before(now - DELIVERY_KEYS_KEPT)
        api_errors = await ApiErrorRepository(session).purge_before(now - API_ERRORS_KEPT)
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
        "order_guards": guards,
        "login_guards": failed_logins,
        "api_errors": api_errors,
    }
