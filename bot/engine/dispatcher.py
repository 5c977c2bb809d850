"""One delivery in, one reply out: dedup → per-conversation lock → load → step → save.

The delivery key is claimed in the same transaction that saves the step's outcome, so a
redelivery either waits and gets the stored reply, or (if the first attempt failed and
rolled back) is processed afresh. Nothing runs twice.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.config import VerifyMode
from bot.engine.locks import KeyedLocks
from bot.flows.base import CardLinks, Limits, OrderLookup, SceneReader, Step, StepContext
from bot.flows.dialogue import run_step
from bot.handoff.hours import ServiceHours
from bot.handoff.queue import HandoffService
from bot.messages import Inbound, InboundKind
from bot.texts import Texts, as_lang
from bot.understanding import Intent, detect_intent, detect_language
from bot.understanding.order_shapes import OrderShapes
from storage.records import (
    FINISHING_STEPS,
    ConversationRecord,
    FunnelStep,
    Journey,
    Owner,
)
from storage.repositories import Repositories

log = logging.getLogger(__name__)

SESSION_TTL = timedelta(hours=72)
RESUME_AFTER = timedelta(minutes=10)  # a pause this long and the bot reminds where we were
RESUMABLE = (Step.CONSENT, Step.ASK_ORDER, Step.VERIFY, Step.PICK_ORDER)
SHAPES_TTL = timedelta(seconds=60)  # an import is read within a minute by every worker


Notice = tuple[str, int | None]  # ("queue" | "message" | "alert", handoff id)


@dataclass(frozen=True)
class Outcome:
    reply: str
    duplicate: bool  # True when this delivery was a redelivery answered from the record
    steps: tuple[FunnelStep, ...] = ()  # funnel steps this turn reached for the first time
    # the reply goes (or went) out through the message API: the callback answers nothing
    answered_late: bool = False


class ReplyWait(Protocol):
    """Whoever waits for a turn's reply (the webhook, against WeChat's 5 s) and may stop."""

    def reply_is_late(self) -> bool:
        """Asked once, just before the turn commits: True if the waiter already stopped
        waiting (the reply goes out through the message API); otherwise the waiter is now
        bound to wait for this reply and answer with it."""
        ...


class Dispatcher:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        links: CardLinks,
        verify_mode: VerifyMode = VerifyMode.AMOUNT,
        orders: OrderLookup | None = None,
        handoffs: HandoffService | None = None,
        *,
        wecom_ways: bool = False,
        limits: Limits | None = None,
        order_pattern: str = "",
        scenes: SceneReader | None = None,
        fallback_contact: str = "",
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._links = links
        self._verify_mode = verify_mode
        self._orders = orders  # an outside order backend; the local table when None
        self._wecom_ways = wecom_ways  # contacts' WeCom accounts get contact ways on cards
        self._limits = limits or Limits()
        self._locks = KeyedLocks()
        self._handoffs = handoffs  # the agents' side: told when the queue or a chat changes
        self._hours = handoffs.hours if handoffs is not None else ServiceHours()
        self._order_pattern = order_pattern
        self._scenes = scenes  # reads receipts' QR code scenes (billbot qr)
        self._fallback_contact = fallback_contact  # BILLBOT_FALLBACK_CONTACT
        self._shapes: OrderShapes | None = None  # re-read every SHAPES_TTL (imports add some)
        self._shapes_read_at: datetime | None = None

    async def _order_shapes(self, orders: OrderLookup, now: datetime) -> OrderShapes:
        """The shapes of the merchant's order numbers, read again every ``SHAPES_TTL``."""
        if (
            self._shapes is None
            or self._shapes_read_at is None
            or now - self._shapes_read_at >= SHAPES_TTL
        ):
            self._shapes = OrderShapes.known(await orders.shapes(), self._order_pattern)
            self._shapes_read_at = now
        return self._shapes

    async def handle(self, inbound: Inbound, wait: ReplyWait | None = None) -> Outcome:
        """Runs the delivery's turn once. With ``wait``, a reply its waiter gave up on is
        marked "answered late" on the delivery record, in the turn's transaction, so a
        redelivery reaching any process is not answered with it again."""
        key = inbound.record_key
        late = False
        notices: list[Notice] = []
        steps: list[FunnelStep] = []
        async with (
            self._locks.hold((inbound.channel, inbound.user_id)),
            self._sessions() as session,
            session.begin(),
        ):
            repos = Repositories.on(session)
            now = self._clock.now()
            if not await repos.inbox.claim(key, now):
                recorded = await repos.inbox.recorded(key)
                log.info("redelivery %s answered from the record", key)
                return Outcome(
                    recorded.reply or "", duplicate=True, answered_late=recorded.answered_late
                )
            conv = await repos.conversations.load_for_update(
                inbound.channel, inbound.user_id, Step.NEW.value, now, now + SESSION_TTL
            )
            reply = await self._turn(repos, conv, inbound, notices, steps)
            await repos.conversations.save(conv, now)
            # decided last, so the waiter gives up as late as possible; the commit follows
            late = wait is not None and wait.reply_is_late()
            late_at = self._clock.now() if late else None
            await repos.inbox.store_reply(key, reply, answered_late_at=late_at)
        self._tell_agents(notices)  # after the commit, so consoles read what they are told
        return Outcome(reply, duplicate=False, steps=tuple(steps), answered_late=late)

    def _tell_agents(self, notices: list[Notice]) -> None:
        if self._handoffs is None:
            return
        for kind, handoff_id in notices:
            if kind == "queue":
                self._handoffs.notify_queue()
            elif kind == "alert":
                self._handoffs.notify_alert("order_locked")
            else:
                self._handoffs.notify_message(handoff_id)

    async def _turn(
        self,
        repos: Repositories,
        conv: ConversationRecord,
        inbound: Inbound,
        notices: list[Notice],
        reached: list[FunnelStep],
    ) -> str:
        now = self._clock.now()
        if conv.expires_at is not None and conv.expires_at <= now:
            # 72 h of silence: the old conversation is over, its data and transcript go
            await repos.conversations.end([conv.id], now)
            conv.data.expire()
            conv.state, conv.owner, conv.last_inbound_at = Step.NEW.value, Owner.BOT, None
        if conv.owner.is_agent:
            if inbound.kind in (InboundKind.UNSUBSCRIBE, InboundKind.MENU):
                return ""  # housekeeping: not a message for the agent
            withdrawing = detect_intent(inbound.text) is Intent.WITHDRAW_CONSENT
            if not withdrawing:
                held = None
                if self._handoffs is not None:
                    held = await self._handoffs.customer_wrote(repos.session, conv.id)
                if held is not None:
                    # a person owns the conversation: the bot listens and stays silent
                    return await self._to_agent(repos, conv, inbound, held, notices)
                # nobody actually holds it any more: the bot takes the customer back
                conv.state = conv.data.leave_handoff() or Step.ASK_ORDER.value
            # a withdrawal of consent is the customer's right, whoever owns the chat: the
            # bot handles it (leaving the queue, forgetting the conversation)
            conv.owner = Owner.BOT
            notices.append(("queue", None))
        try:
            state = Step(conv.state)
        except ValueError:
            log.warning(
                "conversation %s had unknown state %r; starting afresh", conv.id, conv.state
            )
            state = Step.NEW
        paused = conv.last_inbound_at is not None and now - conv.last_inbound_at >= RESUME_AFTER
        # "ok", "1", "no" are everyone's words: only a real sentence switches the language
        # (an event's key is a code, not words: it says nothing of the customer's language)
        spoken = inbound.kind in (InboundKind.TEXT, InboundKind.VOICE)
        detected = detect_language(inbound.text) if spoken and len(inbound.text) > 3 else None
        lang = as_lang(detected or conv.lang)
        journey = conv.data.journey
        fresh = journey is None
        if journey is None:  # this conversation's journey starts now
            journey = Journey(id=secrets.token_hex(8), mode=self._verify_mode.value)
            conv.data.journey = journey
        orders = self._orders or repos.orders
        ctx = StepContext(
            channel=inbound.channel,
            user_id=inbound.user_id,
            conversation_id=conv.id,
            now=now,
            texts=Texts(lang),
            data=conv.data,
            verify_mode=self._verify_mode,
            orders=orders,
            contacts=repos.contacts,
            consents=repos.consents,
            handoffs=repos.handoffs,
            links=self._links,
            cards=repos.cards,
            guards=repos.guards,
            limits=self._limits,
            wecom_ways=self._wecom_ways,
            resumed=paused and state in RESUMABLE,
            hours=self._hours,
            journey=journey.id,
            shapes=await self._order_shapes(orders, now),
            # only Official Account customers can be messaged later (customer-service API)
            rechecks=repos.rechecks if inbound.channel == "wechat" else None,
            scenes=self._scenes,
            qrs=repos.qrs,
            fallback_contact=self._fallback_contact,
        )
        result = await run_step(ctx, state, inbound)
        notices.extend(("alert", None) for _ in ctx.alerts)
        if (result.state is Step.HANDOFF) != (state is Step.HANDOFF):
            notices.append(("queue", None))
            if result.state is Step.HANDOFF:
                conv.data.before_handoff = state.value  # where "hand back" resumes
        conv.state, conv.owner, conv.lang = result.state.value, result.owner, lang
        reply = "\n\n".join(r for r in result.replies if r)
        if not reply and inbound.kind in (InboundKind.UNSUBSCRIBE, InboundKind.MENU):
            if fresh:
                conv.data.journey = None
            return reply  # housekeeping events neither prolong nor enter the conversation
        conv.last_inbound_at = now
        conv.expires_at = now + SESSION_TTL
        steps = [FunnelStep.STARTED, *ctx.funnel] if fresh else ctx.funnel
        reached.extend(await record_funnel(repos, journey, steps, inbound.channel, now))
        if result.forget:
            await repos.transcript.delete_for_conversation(conv.id)
            return reply
        lines = [("in", "customer", inbound.text)] if inbound.text else []
        if reply:
            lines.append(("out", "bot", reply))
        await repos.transcript.add_turn(conv.id, lines, now)
        return reply

    async def _to_agent(
        self,
        repos: Repositories,
        conv: ConversationRecord,
        inbound: Inbound,
        handoff_id: int,
        notices: list[Notice],
    ) -> str:
        now = self._clock.now()
        conv.last_inbound_at = now  # reopens WeChat's 48 h window and the 5-reply quota
        conv.expires_at = now + SESSION_TTL
        text = inbound.text or f"[{inbound.raw_type or inbound.kind.value}]"
        await repos.transcript.add_turn(conv.id, [("in", "customer", text)], now)
        notices.append(("message", handoff_id))
        return ""


async def record_funnel(
    repos: Repositories,
    journey: Journey,
    steps: list[FunnelStep],
    channel: str,
    now: datetime,
) -> list[FunnelStep]:
    """Records the funnel steps a turn reached for the first time in its journey, in its
    transaction, and returns them. A journey's id is random: the funnel holds no personal
    data. Its furthest step is kept for the abandonment count."""
    seen = set(journey.steps)
    new = [step for step in dict.fromkeys(steps) if step not in seen]
    if not new:
        return []
    journey.steps.extend(new)
    order = list(FunnelStep)
    journey.stage = max([journey.stage, *new], key=order.index)
    if FINISHING_STEPS.intersection(new):
        journey.done = True
    await repos.funnel.record(journey.id, new, channel, journey.mode, now)
    return new
