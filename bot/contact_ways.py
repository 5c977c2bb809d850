"""WeCom contact ways behind cards, and what happens when a customer adds the contact.

A card whose contact has a WeCom account gets its own 联系我 QR code the first time its page
is opened (so cards nobody opens cost WeCom nothing), carrying the card's one-time ``state``.
When WeCom reports the add with that state, the card is marked, the new contact is remarked
with the order, the welcome message goes out, and the contact way is deleted. Errors from
WeCom are logged with their code, kept for admins, counted in /metrics, and never cost the
customer an answer: the card falls back to the contact's own QR code.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import weakref
from collections.abc import Awaitable
from datetime import timedelta, timezone
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.channels.wechat_api import WeChatApiError
from bot.channels.wecom import WeComEvent
from bot.channels.wecom_api import WeComApi
from bot.clock import Clock
from bot.metrics import Metrics
from bot.texts import Texts, as_lang, money
from storage.records import CardRecord, FunnelStep
from storage.repositories import ApiErrorRepository, Repositories

log = logging.getLogger(__name__)
T = TypeVar("T")

CHINA = timezone(timedelta(hours=8))
ADDED = frozenset({"add_external_contact", "add_half_external_contact"})
REMOVED = frozenset({"del_external_contact", "del_follow_user"})
REMARK_LIMIT = 20  # characters, WeCom's limit for a remark
DESCRIPTION_LIMIT = 150


def contact_key(user_id: str, external_user_id: str) -> str:
    """Finds a relationship again later without storing WeCom's ids for the customer."""
    return hashlib.sha256(f"{user_id}\x00{external_user_id}".encode()).hexdigest()


class ContactWays:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        api: WeComApi | None,
        metrics: Metrics,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._api = api  # None when WeCom is off
        self._metrics = metrics
        # one lock per card while someone holds or awaits it (then it goes by itself)
        self._making: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    @property
    def enabled(self) -> bool:
        return self._api is not None

    async def _ok(self, what: str, call: Awaitable[None]) -> bool:
        """Runs one WeCom call that answers nothing; False if it failed (see ``_call``)."""
        return await self._call(what, self._done(call)) is not None

    @staticmethod
    async def _done(call: Awaitable[None]) -> bool:
        await call
        return True

    async def _call(self, what: str, call: Awaitable[T]) -> T | None:
        """Runs one WeCom call; an error is logged, kept for admins, counted, and None."""
        try:
            return await call
        except WeChatApiError as exc:
            log.warning("WeCom %s failed: errcode %d (%s)", what, exc.errcode, exc.errmsg)
            async with self._sessions() as session, session.begin():
                await ApiErrorRepository(session).record(
                    "wecom", what, exc.errcode, exc.errmsg, self._clock.now()
                )
            return None

    async def qr_image(self, card_id: int, wecom_userid: str) -> bytes | None:
        """The WeCom QR image for this card (made on first use), or None to fall back."""
        if self._api is None or not wecom_userid or not card_id:
            return None
        lock = self._making.setdefault(card_id, asyncio.Lock())
        async with lock:  # one contact way per card, however many times the page loads
            card = await self._card(card_id)
            if card is None or card.added_at is not None:
                return None
            if card.expires_at <= self._clock.now():
                return None
            qr_code = card.qr_code or await self._make_way(card, wecom_userid)
        if qr_code is None:
            return None
        return await self._call("fetch QR image", self._api.fetch_image(qr_code))

    async def _card(self, card_id: int) -> CardRecord | None:
        async with self._sessions() as session:
            return await Repositories.on(session).cards.get(card_id)

    async def _make_way(self, card: CardRecord, userid: str) -> str | None:
        assert self._api is not None
        made = await self._call("add_contact_way", self._api.add_contact_way(userid, card.state))
        if made is None:
            return None
        config_id, qr_code = made
        async with self._sessions() as session, session.begin():
            attached = await Repositories.on(session).cards.attach_way(card.id, config_id, qr_code)
        if not attached:  # another process made one first: keep theirs, drop ours
            await self._ok("del_contact_way", self._api.del_contact_way(config_id))
            fresh = await self._card(card.id)
            return fresh.qr_code if fresh else None
        return qr_code

    async def on_event(self, event: WeComEvent) -> str:
        """Handles one WeCom callback; returns what it did, for the log and /metrics."""
        if event.event != "change_external_contact":
            return "ignored"
        if event.change_type in REMOVED:
            return await self._on_removed(event)
        if event.change_type not in ADDED:
            return "ignored"
        now = self._clock.now()
        async with self._sessions() as session, session.begin():
            repos = Repositories.on(session)
            if not await repos.inbox.claim(f"wecom:{event.dedup_key}", now):
                return "duplicate"
            card = await repos.cards.by_state_for_update(event.state) if event.state else None
            if card is None:
                log.info("WeCom add event with a state we did not issue: ignored")
                return "unknown_state"
            if card.added_at is not None:
                log.info("WeCom add event for card %d, already added: ignored", card.id)
                return "used_state"
            if card.expires_at <= now:
                log.info("WeCom add event for card %d after it expired: ignored", card.id)
                return "expired_state"
            contact = await repos.contacts.get(card.contact_id)
            await repos.cards.mark_added(
                card.id, now, contact_key(event.user_id, event.external_user_id)
            )
            if await repos.funnel.record_later(card.journey, FunnelStep.CONTACT_ADDED, now):
                self._metrics.funnel_steps.labels(FunnelStep.CONTACT_ADDED.value).inc()
            name = contact.name if contact else event.user_id
            line = Texts("zh").say("contact_added_line", name=name, tail=card.order_tail)
            await repos.transcript.add_turn(card.conversation_id, [("in", "system", line)], now)
        await self._after_added(event, card, name)
        return "added"

    async def _after_added(self, event: WeComEvent, card: CardRecord, name: str) -> None:
        """WeCom calls after the add is committed: remark, welcome, and the way goes."""
        assert self._api is not None
        zh = Texts("zh")
        amount = money(card.amount_cents, card.currency)
        store = f"，{card.store}" if card.store else ""
        date = card.created_at.astimezone(CHINA).strftime("%Y-%m-%d")
        remark = zh.say("wecom_remark", tail=card.order_tail, amount=amount)[:REMARK_LIMIT]
        description = zh.say(
            "wecom_description", tail=card.order_tail, amount=amount, store=store, date=date
        )[:DESCRIPTION_LIMIT]
        await self._ok(
            "remark",
            self._api.remark(event.user_id, event.external_user_id, remark, description),
        )
        if event.welcome_code:
            welcome = Texts(as_lang(card.lang)).say(
                "wecom_welcome", name=name, tail=card.order_tail, amount=amount
            )
            await self._call(
                "send_welcome_msg", self._api.send_welcome(event.welcome_code, welcome)
            )
        if card.config_id:
            await self._delete_way(card.id, card.config_id)

    async def _on_removed(self, event: WeComEvent) -> str:
        now = self._clock.now()
        async with self._sessions() as session, session.begin():
            repos = Repositories.on(session)
            if not await repos.inbox.claim(f"wecom:{event.dedup_key}", now):
                return "duplicate"
            journeys = await repos.cards.mark_lost(
                contact_key(event.user_id, event.external_user_id), now
            )
            for journey in journeys:
                await repos.funnel.record_later(journey, FunnelStep.CONTACT_LOST, now)
        return "removed" if journeys else "removed_unknown"

    async def _delete_way(self, card_id: int, config_id: str) -> bool:
        assert self._api is not None
        if not await self._ok("del_contact_way", self._api.del_contact_way(config_id)):
            return False
        async with self._sessions() as session, session.begin():
            await Repositories.on(session).cards.way_deleted(card_id, self._clock.now())
        return True

    async def delete_spent_ways(self) -> int:
        """Deletes the contact ways of cards used or expired; the account never nears WeCom's
        limit. Returns how many went."""
        if self._api is None:
            return 0
        async with self._sessions() as session:
            spent = await Repositories.on(session).cards.ways_to_delete(self._clock.now())
        deleted = 0
        for card_id, config_id in spent:
            deleted += await self._delete_way(card_id, config_id)
        return deleted
