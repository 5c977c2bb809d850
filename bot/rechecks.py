"""Orders not synced yet: an unknown but well-formed order number is looked up again every few
minutes for a while, because payments reach the merchant's orders minutes late.

Found, the customer gets one customer-service message asking the verification question, and
the guess the unknown number cost is given back; never found in time, a person takes over.
The schedule lives in the database (``order_rechecks``), so a restart loses nothing and, with
several workers, each due recheck is claimed by one. Like every message the bot sends on its
own, it goes out only while the bot owns the conversation and the customer is where the
recheck left them, inside WeChat's 48-hour window and reply quota; it is recorded before it
is sent (taking its place in the quota) and taken back if WeChat refuses it.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.config import VerifyMode
from bot.engine.dispatcher import record_funnel
from bot.flows.base import (
    CardLinks,
    HandoffReason,
    OrderLookup,
    OrdersUnavailable,
    Step,
    StepContext,
)
from bot.flows.handoff import request_handoff
from bot.flows.order import verify_question
from bot.handoff.hours import ServiceHours
from bot.handoff.queue import (
    API_BOT,
    REPLIES_PER_MESSAGE,
    REPLY_WINDOW,
    HandoffService,
    MessageSender,
)
from bot.metrics import Metrics
from bot.privacy.masking import mask_order_no
from bot.texts import Texts, as_lang
from storage.records import (
    ConversationRecord,
    FunnelStep,
    OrderRecord,
    Owner,
    RecheckOutcome,
    RecheckRecord,
)
from storage.repositories import OrderRepository, RecheckRepository, Repositories

log = logging.getLogger(__name__)

BATCH = 50  # rechecks claimed per round; more wait for the next round (seconds later)
REACHABLE_CHANNEL = "wechat"  # the Official Account: its customer-service API reaches them


@dataclass
class RecheckRound:
    """What one round did, for logs and tests."""

    found: int = 0  # the customer was asked to verify the order
    gave_up: int = 0  # handed to a person
    closed: int = 0  # the conversation had moved on (or WeChat would take no message)
    waiting: int = 0  # not found yet, or not sendable yet: looked at again next time


def waiting_for(conv: ConversationRecord, recheck: RecheckRecord, now: datetime) -> bool:
    """The conversation is where the recheck left it: the bot's, asking for an order, with the
    unknown number still the one in hand — not another order, a card, a person or a restart."""
    return (
        conv.owner == Owner.BOT
        and conv.state == Step.ASK_ORDER.value
        and conv.data.order_no == recheck.order_no
        and (conv.expires_at is None or conv.expires_at > now)
    )


class OrderRechecks:
    """The recheck job: ``run_due`` looks every due recheck up once (the background loop calls
    it every few seconds; tests call it directly)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        sender: MessageSender | None,
        links: CardLinks,
        *,
        orders: OrderLookup | None = None,
        verify_mode: VerifyMode = VerifyMode.AMOUNT,
        every: timedelta = timedelta(minutes=2),
        hours: ServiceHours | None = None,
        handoffs: HandoffService | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._sender = sender
        self._links = links
        self._orders = orders  # the app's order backend; the local orders table when None
        self._verify_mode = verify_mode
        self._every = every
        self._hours = hours or ServiceHours()
        self._handoffs = handoffs  # told when the queue changes, for the agents' consoles
        self._metrics = metrics

    async def run_due(self) -> RecheckRound:
        """Claims the due rechecks (committed at once, so other workers pass them by) and
        looks each one up; one that fails is logged and comes due again after its claim."""
        tally = RecheckRound()
        now = self._clock.now()
        async with self._sessions() as s, s.begin():
            due = await RecheckRepository(s).claim_due(
                now, hold_until=now + self._every, limit=BATCH
            )
        for recheck in due:
            try:
                await self._recheck(recheck, tally)
            except Exception:
                log.exception("order recheck %d failed; it is tried again later", recheck.id)
        if tally.found or tally.gave_up or tally.closed:
            log.info("order rechecks: %s", tally)
        return tally

    async def _recheck(self, recheck: RecheckRecord, tally: RecheckRound) -> None:
        try:
            order = await self._find(recheck.order_no)
        except OrdersUnavailable:  # the backend cannot say right now: ask again next time
            order = None
            if self._clock.now() < recheck.until:
                tally.waiting += 1
                return
        if order is not None:
            await self._found(recheck, order, tally)
        elif self._clock.now() >= recheck.until:
            await self._give_up(recheck, tally)
        else:
            tally.waiting += 1

    async def _find(self, order_no: str) -> OrderRecord | None:
        if self._orders is not None:
            return await self._orders.find(order_no)
        async with self._sessions() as s:
            return await OrderRepository(s).find(order_no)

    async def _found(self, recheck: RecheckRecord, order: OrderRecord, tally: RecheckRound) -> None:
        """The order arrived: the customer is asked to verify it, and the guess is refunded."""
        now = self._clock.now()
        async with self._sessions() as s, s.begin():
            repos = Repositories.on(s)
            conv = await self._still_waiting(repos, recheck, now, tally)
            if conv is None:
                return
            if not await self._may_send(repos, conv, now):
                if now >= recheck.until:  # WeChat would not take it, and time is up
                    await repos.rechecks.finish(recheck.id, RecheckOutcome.UNREACHABLE, now)
                    tally.closed += 1
                else:
                    tally.waiting += 1
                return
            before = (conv.state, copy.deepcopy(conv.data))
            ctx = self._context(repos, conv, now)
            ctx.data.order_no, ctx.data.not_found, ctx.data.verified = order.order_no, 0, False
            # the unknown number cost a guess; it was a real order after all
            ctx.data.verify_failures = max(0, ctx.data.verify_failures - 1)
            ctx.mark(FunnelStep.ORDER_FOUND)
            text = ctx.say("order_recheck_found", question=verify_question(ctx))
            conv.state = Step.VERIFY.value
            reached = await self._record_funnel(repos, conv, ctx, now)
            line = await repos.transcript.add_line(conv.id, "out", API_BOT, text, now)
            await repos.rechecks.finish(recheck.id, RecheckOutcome.FOUND, now)
            await repos.conversations.save(conv, now)
        if await self._send(conv.user_id, text):
            tally.found += 1
            self._count(reached)
            return
        # not delivered: undone, unless the customer wrote meanwhile (then the turn went on)
        async with self._sessions() as s, s.begin():
            repos = Repositories.on(s)
            await repos.transcript.take_back(line)
            again = await repos.conversations.lock(conv.id)
            if again is not None and again.version == conv.version:
                again.state, again.data = before
                await repos.conversations.save(again, now)
                await repos.rechecks.reopen(recheck.id, now + self._every)
                if now >= recheck.until:
                    await repos.rechecks.finish(recheck.id, RecheckOutcome.UNREACHABLE, now)
        tally.waiting += 1

    @staticmethod
    async def _still_waiting(
        repos: Repositories, recheck: RecheckRecord, now: datetime, tally: RecheckRound
    ) -> ConversationRecord | None:
        """The conversation, locked, if it still waits for this order; else the recheck is
        closed (the customer moved on, or the conversation is gone)."""
        conv = await repos.conversations.lock(recheck.conversation_id)
        if conv is None or not waiting_for(conv, recheck, now):
            await repos.rechecks.finish(recheck.id, RecheckOutcome.MOVED_ON, now)
            tally.closed += 1
            return None
        return conv

    async def _give_up(self, recheck: RecheckRecord, tally: RecheckRound) -> None:
        """Time is up and the order never came: a person takes over, and the customer is told."""
        now = self._clock.now()
        async with self._sessions() as s, s.begin():
            repos = Repositories.on(s)
            conv = await self._still_waiting(repos, recheck, now, tally)
            if conv is None:
                return
            ctx = self._context(repos, conv, now)
            minutes = round((recheck.until - recheck.created_at).total_seconds() / 60)
            lead = ctx.say(
                "order_recheck_gave_up", order=mask_order_no(recheck.order_no), minutes=minutes
            )
            result = await request_handoff(ctx, HandoffReason.ORDER_NOT_SYNCED, lead=lead)
            conv.data.before_handoff = conv.state  # where "hand back" resumes
            conv.state, conv.owner = result.state.value, result.owner
            text = "\n\n".join(r for r in result.replies if r)
            reached = await self._record_funnel(repos, conv, ctx, now)
            line = None
            if await self._may_send(repos, conv, now):
                line = await repos.transcript.add_line(conv.id, "out", API_BOT, text, now)
            await repos.rechecks.finish(recheck.id, RecheckOutcome.GAVE_UP, now)
            await repos.conversations.save(conv, now)
        tally.gave_up += 1
        self._count(reached)
        if self._handoffs is not None:
            self._handoffs.notify_queue()
        if line is not None and not await self._send(conv.user_id, text):
            async with self._sessions() as s, s.begin():
                await Repositories.on(s).transcript.take_back(line)

    def _context(self, repos: Repositories, conv: ConversationRecord, now: datetime) -> StepContext:
        """What a step sees, for a turn the bot takes on its own (no message came in)."""
        journey = conv.data.journey
        return StepContext(
            channel=conv.channel,
            user_id=conv.user_id,
            conversation_id=conv.id,
            now=now,
            texts=Texts(as_lang(conv.lang)),
            data=conv.data,
            verify_mode=self._verify_mode,
            orders=self._orders or repos.orders,
            contacts=repos.contacts,
            consents=repos.consents,
            handoffs=repos.handoffs,
            links=self._links,
            cards=repos.cards,
            guards=repos.guards,
            hours=self._hours,
            journey=journey.id if journey is not None else "",
        )

    async def _record_funnel(
        self, repos: Repositories, conv: ConversationRecord, ctx: StepContext, now: datetime
    ) -> list[FunnelStep]:
        journey = conv.data.journey
        if journey is None:  # a conversation always has one after a turn
            return []
        return await record_funnel(repos, journey, ctx.funnel, conv.channel, now)

    async def _may_send(self, repos: Repositories, conv: ConversationRecord, now: datetime) -> bool:
        """WeChat would deliver a customer-service message now: its 48-hour window since the
        customer's last message is open and the 5 messages it allows are not used up."""
        if self._sender is None or conv.channel != REACHABLE_CHANNEL:
            return False
        if conv.last_inbound_at is None or conv.last_inbound_at + REPLY_WINDOW <= now:
            return False
        sent = await repos.transcript.api_sends_since_customer(conv.id, API_BOT)
        return sent < REPLIES_PER_MESSAGE

    async def _send(self, openid: str, text: str) -> bool:
        assert self._sender is not None  # checked by _may_send before anything was reserved
        try:
            await self._sender.send_text(openid, text)
        except Exception as exc:
            log.warning("order recheck message not delivered: %s", exc)
            return False
        return True

    def _count(self, steps: list[FunnelStep]) -> None:
        if self._metrics is not None:
            for step in steps:
                self._metrics.funnel_steps.labels(step.value).inc()
