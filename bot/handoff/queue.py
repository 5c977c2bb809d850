"""The handoff queue service: what the console and the JSON API do, in one place.

Claims are compare-and-set on the handoff row, so exactly one agent wins a race. A claim is
a lease: if the agent neither replies nor renews it in time, the conversation returns to the
head of the queue with a priority boost and a note of who dropped it. Every message to the
customer is sent only while the conversation's owner and version still match.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.durations import say_duration
from bot.handoff.events import LEASE_LAPSED, TO_AGENT, Event, EventBus
from bot.handoff.hours import CHINA, ServiceHours
from bot.handoff.send_failures import SendFailure, failure_of, send_failure
from bot.handoff.waiting import meaningful_move, wait_minutes
from bot.privacy.masking import STARS, mask_links, mask_text, mask_user_id
from bot.refusals import Refusal, admins_only
from bot.texts import Texts, as_lang
from storage.records import (
    HELD_STATUSES,
    OPEN_STATUSES,
    ConversationRecord,
    HandoffRecord,
    HandoffStatus,
    MessageRecord,
    Owner,
)
from storage.repositories import Repositories
from storage.repositories.handoffs import HandoffRepository

log = logging.getLogger(__name__)


class MessageSender(Protocol):
    """Sends a text to a customer through WeChat's customer-service message API."""

    async def send_text(self, openid: str, text: str) -> None: ...


@dataclass(frozen=True)
class AgentView:
    id: int
    name: str
    role: str  # "agent" | "admin"
    must_change_password: bool = False
    lang: str = "zh"  # the console's language: zh | en | both

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class ConsoleConnection:
    """One open live console: its row in the database, and whose it is."""

    id: str
    agent_id: int


@dataclass(frozen=True)
class TranscriptLine:
    at: datetime
    sender: str  # "customer" | "bot" | "agent:<name>" | "note:<name>"
    text: str


@dataclass(frozen=True)
class QueueItem:
    id: int
    ref: str
    status: str  # waiting | claimed | waiting_customer | resolved | returned | cancelled | expired
    reason: str  # asked | verify_failed | order_not_found | not_understood | no_contact | …
    priority: int
    created_at: datetime
    waiting_seconds: int
    order: str | None  # masked: "****3456"
    amount_confirmed: bool
    failures: int
    customer: str  # masked OpenID
    channel: str
    claimed_by: str | None  # agent name
    dropped_by: str | None  # agent name whose lease lapsed
    last_messages: list[TranscriptLine]  # the last few, masked (none in search rows of others)
    lease_until: datetime | None = None  # when the claim lapses unless the agent replies
    resolved_at: datetime | None = None


@dataclass(frozen=True)
class ConversationView:
    item: QueueItem
    transcript: list[TranscriptLine]
    masked: bool
    window_open_until: datetime | None  # WeChat's 48 h reply window
    replies_left: int  # of the 5 allowed per customer message


@dataclass(frozen=True)
class TodayFigures:
    waiting: int
    handled_today: int
    avg_wait_seconds: float | None
    avg_first_response_seconds: float | None
    avg_resolution_seconds: float | None


@dataclass(frozen=True)
class CannedView:
    id: int
    title: str
    text: str


# ---------------------------------------------------------------------------------------------
# The service

REPLY_WINDOW = timedelta(hours=48)  # WeChat: replies within 48 h of the customer's last message
REPLIES_PER_MESSAGE = 5  # WeChat: at most 5 customer-service messages per customer message
UNMASK_AUDIT_WINDOW = timedelta(minutes=10)
API_BOT = "bot-api"  # the bot's own customer-service messages: they use the quota too
LAST_MESSAGES = 3
CONSOLE_HEARTBEAT = timedelta(seconds=30)
CONSOLE_STALE_AFTER_BEATS = 3  # a console not heard of for this many beats is gone
HELD = HELD_STATUSES  # an agent has it (answering, or parked for the customer)
SEARCH_RESOLVED = timedelta(days=7)  # resolved handoffs stay findable this long


def _not_found() -> Refusal:
    return Refusal(404, "找不到这个会话。", "No such conversation.")


def _not_yours() -> Refusal:
    return Refusal(403, "这个会话不在您名下。", "This conversation is not assigned to you.")


def _closed() -> Refusal:
    return Refusal(
        409, "这个会话已经结束或已取消。", "This conversation has ended or was cancelled."
    )


# what confirming means, said in the question the held_by_other refusal asks
_HELD_ACTIONS = {
    "transfer": ("转给其他客服", "transfer it"),
    "resolve": ("结束这个会话", "resolve it"),
    "hand_back": ("交还给机器人", "hand it back to the bot"),
}


class HandoffService:
    """Claim, reply, transfer, hand back, resolve — and the leases that keep the queue moving."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        sender: MessageSender | None,
        events: EventBus,
        *,
        lease: timedelta = timedelta(minutes=2),
        hours: ServiceHours | None = None,
        worker: str | None = None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._sender = sender
        self._events = events
        self._lease = lease
        self.hours = hours or ServiceHours()
        # how often an open console says it is still open; the database counts it
        self.console_heartbeat = CONSOLE_HEARTBEAT
        self._worker = worker or f"{socket.gethostname()}:{os.getpid()}"

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[Repositories]:
        """Reads only: nothing is written, nothing is held past the block."""
        async with self._sessions() as s:
            yield Repositories.on(s)

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[Repositories]:
        """One transaction: committed if the block ends normally, rolled back if it raises."""
        async with self._sessions() as s, s.begin():
            yield Repositories.on(s)

    # -- reading ---------------------------------------------------------------------------

    async def queue(self, agent: AgentView) -> list[QueueItem]:
        await self.release_expired_leases()
        async with self._reading() as repos:
            return await self._items(repos, await repos.handoffs.waiting())

    async def mine(self, agent: AgentView) -> list[QueueItem]:
        await self.release_expired_leases()
        async with self._reading() as repos:
            held = await repos.handoffs.held(None if agent.is_admin else agent.id)
            return await self._items(repos, held)

    async def search(
        self, agent: AgentView, text: str, now: datetime | None = None
    ) -> list[QueueItem]:
        """Open handoffs and those resolved in the last ``SEARCH_RESOLVED`` (7 days), found by
        service reference (with or without '#'), masked order tail, or the name of the agent
        who holds or held it; the newest first, at most 50. Empty or one-character text
        finds nothing. An agent sees the last lines only of what is waiting or was theirs."""
        since = (now or self._clock.now()) - SEARCH_RESOLVED
        async with self._reading() as repos:
            items = await self._items(repos, await repos.handoffs.search(text, since))
        if agent.is_admin:
            return items
        return [
            item
            if item.status == HandoffStatus.WAITING or item.claimed_by == agent.name
            else replace(item, last_messages=[])
            for item in items
        ]

    async def view(
        self, agent: AgentView, handoff_id: int, unmask_reason: str | None = None
    ) -> ConversationView:
        await self.release_expired_leases()
        unmask = unmask_reason is not None
        if unmask and not agent.is_admin:
            raise admins_only()
        if unmask and not (unmask_reason or "").strip():
            raise Refusal(
                422, "显示原文需要填写原因。", "Say why you need to see the unmasked text."
            )
        async with self._writing() as repos:
            handoff = await self._get(repos, handoff_id)
            self._may_read(agent, handoff)
            if unmask:
                await self._audit_unmask(repos, agent, handoff, (unmask_reason or "").strip())
            return await self._view(repos, handoff, masked=not unmask)

    async def _audit_unmask(
        self, repos: Repositories, agent: AgentView, handoff: HandoffRecord, reason: str
    ) -> None:
        """One audit row per unmasking: the console's live refreshes of the same unmasked
        view, for the same reason, within a few minutes are the same act."""
        now, target = self._clock.now(), f"handoff:{handoff.ref}"
        recent = await repos.audit.recent_reasons(
            agent.id, "unmask", target, now - UNMASK_AUDIT_WINDOW
        )
        if reason not in recent:
            await repos.audit.record(
                "unmask",
                actor=f"agent:{agent.id}",
                target=target,
                reason=reason,
                now=now,
                agent_id=agent.id,
            )

    async def today(self) -> TodayFigures:
        now = self._clock.now()
        start = now.astimezone(CHINA).replace(hour=0, minute=0, second=0, microsecond=0)
        async with self._reading() as repos:
            waiting = await repos.handoffs.count_waiting()
            rows = await repos.handoffs.created_since(start)

        def avg(pairs: list[tuple[datetime | None, datetime]]) -> float | None:
            spans = [(end - begin).total_seconds() for end, begin in pairs if end is not None]
            return sum(spans) / len(spans) if spans else None

        return TodayFigures(
            waiting=waiting,
            handled_today=sum(1 for h in rows if h.resolved_at is not None),
            avg_wait_seconds=avg([(h.claimed_at, h.created_at) for h in rows]),
            avg_first_response_seconds=avg([(h.first_response_at, h.created_at) for h in rows]),
            avg_resolution_seconds=avg([(h.resolved_at, h.created_at) for h in rows]),
        )

    async def list_agents(self) -> list[AgentView]:
        """The logins a conversation can be transferred to: every one not disabled."""
        async with self._reading() as repos:
            return [
                AgentView(a.id, a.name, a.role, a.must_change_password)
                for a in await repos.agents.list_all()
                if a.disabled_at is None
            ]

    # -- claiming --------------------------------------------------------------------------

    async def claim(self, agent: AgentView, handoff_id: int) -> QueueItem:
        await self.release_expired_leases()
        now = self._clock.now()
        async with self._writing() as repos:
            # compare-and-set under the row locks: only a waiting handoff can be claimed,
            # so when several agents click at once exactly one wins
            handoff, conv = await self._lock(repos, handoff_id)
            if not await repos.handoffs.claim(handoff_id, agent.id, now, now + self._lease):
                raise await self._not_claimable(repos, handoff)
            await repos.conversations.pass_to(conv.id, Owner.agent(agent.id))
            item = await self._item(repos, handoff_id)
        self._events.publish({"type": "queue"})
        await self._notify_positions()
        return item

    async def _not_claimable(self, repos: Repositories, handoff: HandoffRecord) -> Refusal:
        """Why a handoff that was not waiting could not be claimed, in the agent's words."""
        if handoff.status in HELD:
            holder = await self._agent_name(repos, handoff.claimed_by)
            return Refusal(
                409,
                f"这个会话已被{holder or '其他客服'}认领。",
                f"{holder or 'Another agent'} already took this conversation.",
            )
        return _closed()

    async def claim_next(self, agent: AgentView) -> QueueItem | None:
        for item in await self.queue(agent):
            try:
                return await self.claim(agent, item.id)
            except Refusal as exc:
                if exc.status != 409:
                    raise
        return None

    async def release_expired_leases(self) -> int:
        """Claims whose agent stopped answering go back to the head of the queue."""
        now = self._clock.now()
        released = 0
        async with self._reading() as repos:
            candidates = await repos.handoffs.expired_leases(now)
        for handoff_id in candidates:
            async with self._writing() as repos:
                handoff, conv = await self._lock(repos, handoff_id)
                dropped_by = await self._agent_name(repos, handoff.claimed_by)
                if not await repos.handoffs.release(handoff_id, now, dropped_by):
                    continue  # renewed or closed meanwhile
                await repos.conversations.pass_to(conv.id, Owner.QUEUE)
                released += 1
            if handoff.claimed_by is not None:  # committed: now the agent may hear of it
                self._events.publish(
                    lease_lapsed_event(handoff.claimed_by, handoff.id, handoff.ref, self._lease)
                )
        if released:
            log.info("%d claim(s) lapsed and returned to the queue", released)
            self._events.publish({"type": "queue"})
        return released

    # -- working a conversation ------------------------------------------------------------

    async def reply(self, agent: AgentView, handoff_id: int, text: str) -> ConversationView:
        text = text.strip()
        if not text:
            raise Refusal(422, "回复内容不能为空。", "The reply is empty.")
        if len(text) > 2000:
            raise Refusal(422, "回复太长（最多 2000 字）。", "The reply is too long (2000 max).")
        if self._sender is None:
            raise Refusal(
                503,
                "未配置微信接口，无法发送。",
                "The WeChat API is not configured, so nothing can be sent.",
            )
        now = self._clock.now()
        # 1. check and reserve, atomically: the owner and version are compared under the row
        #    lock and the message is recorded (taking its place in the quota) before it is
        #    sent, so a hand-back or a transfer racing with this send sees it. Nothing is
        #    held locked across the call to WeChat.
        async with self._writing() as repos:
            handoff, conv = await self._lock(repos, handoff_id)
            self._must_hold(agent, handoff)
            if conv.owner != Owner.agent(agent.id):
                raise _not_yours()
            # Trying to reply is working the conversation: a running lease starts again, and
            # this commits whatever WeChat then says (no lapse while the send is under way,
            # nor because WeChat refused it).
            await repos.handoffs.extend_lease(handoff_id, now + self._lease)
            closes, left = await self._window(repos, conv, now)
            refusal = None
            if closes is None or closes <= now:  # what WeChat would answer: not worth asking
                refusal = send_failure(45015).refusal()
            elif left <= 0:
                refusal = send_failure(45047).refusal()
            if refusal is not None:
                await repos.handoffs.park(handoff_id)
            else:
                message_id = await repos.transcript.add_line(
                    conv.id, "out", f"agent:{agent.id}", text, now
                )
                await repos.conversations.bump_version(conv.id)
                openid = conv.user_id
        if refusal is not None:
            self._events.publish({"type": "handoff", "handoff_id": handoff_id})
            raise refusal
        # 2. send
        failure: SendFailure | None = None
        try:
            await self._sender.send_text(openid, text)
        except Exception as exc:
            failure = failure_of(exc)
            log.warning(
                "reply on handoff %s not sent (%s): %s",
                handoff_id,
                failure.key,
                exc,
                exc_info=failure.key == "send_failed",  # a fault of ours: show where
            )
        # 3. settle: keep the message and restart nothing, or take it back and maybe park
        async with self._writing() as repos:
            handoff, _ = await self._lock(repos, handoff_id)
            still_mine = handoff.status in HELD and handoff.claimed_by == agent.id
            if failure is not None:
                await repos.transcript.take_back(message_id)
            if still_mine and failure is None:
                # answered: nothing owed until the customer writes
                await repos.handoffs.answered(handoff_id, now)
            elif still_mine and failure is not None and failure.parks:
                await repos.handoffs.park(handoff_id)
            view = await self._view(repos, await self._get(repos, handoff_id), masked=True)
        self._events.publish({"type": "message", "handoff_id": handoff_id})
        if failure is not None:
            raise failure.refusal()
        return view

    async def note(self, agent: AgentView, handoff_id: int, text: str) -> ConversationView:
        if not text.strip():
            raise Refusal(422, "备注不能为空。", "The note is empty.")
        async with self._writing() as repos:
            handoff = await self._get(repos, handoff_id)
            self._may_read(agent, handoff)
            await repos.transcript.add_line(
                handoff.conversation_id,
                "note",
                f"agent:{agent.id}",
                text.strip(),
                self._clock.now(),
            )
            return await self._view(repos, handoff, masked=True)

    async def transfer(
        self, agent: AgentView, handoff_id: int, to_agent_id: int, *, confirm_held: bool = False
    ) -> QueueItem:
        """The conversation goes to another agent. An admin taking it from the agent who holds
        it must say so (``confirm_held``), and that is audited."""
        now = self._clock.now()
        async with self._writing() as repos:
            handoff, conv = await self._lock(repos, handoff_id)
            if not agent.is_admin:
                self._must_hold(agent, handoff)
            elif handoff.status not in OPEN_STATUSES:
                raise _closed()
            target = await repos.agents.get(to_agent_id)
            if target is None:
                raise Refusal(404, "找不到这位客服。", "No such agent.")
            if target.disabled_at is not None:
                raise Refusal(
                    409,
                    f"「{target.name}」的账号已停用，不能接收转接。请选择其他客服。",
                    f"{target.name}'s login is disabled and cannot take transfers."
                    " Choose another agent.",
                    key="agent_disabled",
                )
            await self._taking_from_holder(
                repos, agent, handoff, "transfer", confirm_held, to=(target.id, target.name)
            )
            if not await repos.handoffs.transfer(handoff_id, target.id, now, now + self._lease):
                raise _closed()
            await repos.conversations.pass_to(conv.id, Owner.agent(target.id))
            item = await self._item(repos, handoff_id)
        self._events.publish(
            {"type": "handoff", "handoff_id": handoff_id, "status": HandoffStatus.CLAIMED}
        )
        return item

    async def hand_back(
        self, agent: AgentView, handoff_id: int, *, confirm_held: bool = False
    ) -> QueueItem:
        """The bot takes over again at the step where it left off. An admin handing back what
        another agent holds must say so (``confirm_held``), and that is audited."""
        return await self._close(agent, handoff_id, HandoffStatus.RETURNED, confirm_held)

    async def resolve(
        self, agent: AgentView, handoff_id: int, *, confirm_held: bool = False
    ) -> QueueItem:
        """Done; a customer writing afterwards starts again with the bot, not this agent.
        An admin resolving what another agent holds must say so (``confirm_held``), and that
        is audited."""
        return await self._close(agent, handoff_id, HandoffStatus.RESOLVED, confirm_held)

    async def _close(
        self,
        agent: AgentView,
        handoff_id: int,
        status: HandoffStatus,
        confirm_held: bool,
    ) -> QueueItem:
        now = self._clock.now()
        async with self._writing() as repos:
            handoff, conv = await self._lock(repos, handoff_id)
            if not agent.is_admin:
                self._must_hold(agent, handoff)
            action = "hand_back" if status == HandoffStatus.RETURNED else "resolve"
            await self._taking_from_holder(repos, agent, handoff, action, confirm_held)
            if not await repos.handoffs.close(handoff_id, status, now):
                raise _closed()  # an admin closing what had already ended
            if status == HandoffStatus.RETURNED:
                state = conv.data.hand_back() or "ask_order"
            else:
                conv.data.close()
                state = "ask_order"
            await repos.conversations.return_to_bot(conv.id, state, conv.data)
            item = await self._item(repos, handoff_id)
        self._events.publish({"type": "handoff", "handoff_id": handoff_id, "status": status})
        return item

    async def _taking_from_holder(
        self,
        repos: Repositories,
        agent: AgentView,
        handoff: HandoffRecord,
        action: str,
        confirmed: bool,
        *,
        to: tuple[int, str] | None = None,
    ) -> None:
        """Acting on a conversation another agent holds: refused (409, ``held_by_other``,
        naming the holder) unless confirmed; once confirmed, an audit entry names both."""
        if handoff.status not in HELD or handoff.claimed_by in (None, agent.id):
            return  # unheld, or the actor's own: nothing to confirm
        holder_id = handoff.claimed_by
        holder = await self._agent_name(repos, holder_id) or f"#{holder_id}"
        if not confirmed:
            doing_zh, doing_en = _HELD_ACTIONS[action]
            raise Refusal(
                409,
                f"会话 #{handoff.ref} 正由{holder}处理。确定要{doing_zh}吗？",
                f"{holder} is working on #{handoff.ref}. Are you sure you want to {doing_en}?",
                key="held_by_other",
            )
        reason = f"held by agent:{holder_id} ({holder})"
        if to is not None:
            reason += f"; to agent:{to[0]} ({to[1]})"
        await repos.audit.record(
            f"{action}_held",
            actor=f"agent:{agent.id}",
            target=f"handoff:{handoff.ref}",
            reason=reason,
            now=self._clock.now(),
            agent_id=agent.id,
        )

    # -- agents coming and going -------------------------------------------------------------

    # Open consoles are counted in the database, not in this process: with several workers an
    # agent may have a console on each, and a worker killed outright never says goodbye (its
    # rows stop being refreshed and go stale after a few heartbeats).

    async def console_opened(self, agent_id: int) -> ConsoleConnection:
        console = ConsoleConnection(secrets.token_hex(16), agent_id)
        await self.console_alive(console)
        return console

    async def console_alive(self, console: ConsoleConnection) -> None:
        """The heartbeat of an open console."""
        async with self._writing() as repos:
            await repos.consoles.beat(console.id, console.agent_id, self._worker, self._clock.now())

    async def console_closed(self, console: ConsoleConnection) -> None:
        """When the agent's last live console, on any worker, closes: what they hold without
        a running lease gets one, so conversations don't sit with someone who went away."""
        async with self._writing() as repos:
            await repos.consoles.hold_agent(console.agent_id)
            await repos.consoles.close(console.id)
            await self._leases_if_gone(repos, console.agent_id)

    async def forget_stale_consoles(self) -> int:
        """Consoles whose heartbeat stopped (their worker died) are forgotten, and their agents
        treated as having closed them. Returns how many agents that left without a console."""
        gone = 0
        async with self._writing() as repos:
            for agent_id in await repos.consoles.forget_stale(self._stale_before()):
                await repos.consoles.hold_agent(agent_id)
                gone += await self._leases_if_gone(repos, agent_id)
        if gone:
            log.info("%d agent(s) lost their last console with a worker that stopped", gone)
        return gone

    async def _leases_if_gone(self, repos: Repositories, agent_id: int) -> int:
        """Leases on what the agent holds, if no live console of theirs remains: 1 if none."""
        if await repos.consoles.live(agent_id, self._stale_before()):
            return 0
        await repos.handoffs.start_leases(agent_id, self._clock.now() + self._lease)
        return 1

    def _stale_before(self) -> datetime:
        return self._clock.now() - CONSOLE_STALE_AFTER_BEATS * self.console_heartbeat

    # -- the customer's side ---------------------------------------------------------------

    async def customer_wrote(self, session: AsyncSession, conversation_id: int) -> int | None:
        """Called by the engine, in its transaction, when an agent-owned customer writes.

        The agent owes a reply again (the lease restarts) and a parked conversation wakes up.
        Returns the handoff id, for the console's live update.
        """
        lease_until = self._clock.now() + self._lease
        return await HandoffRepository(session).wake(conversation_id, lease_until)

    def notify_message(self, handoff_id: int | None) -> None:
        self._events.publish({"type": "message", "handoff_id": handoff_id})

    def notify_queue(self) -> None:
        self._events.publish({"type": "queue"})

    def notify_alert(self, kind: str) -> None:
        """Something admins should know at once (an order locked after repeated guessing)."""
        self._events.publish({"type": "alert", "alert": kind})

    async def _notify_positions(self) -> None:
        """Tell waiting customers their new place, only when it moved meaningfully."""
        if self._sender is None:
            return
        updates: list[tuple[str, int, str]] = []
        async with self._writing() as repos:
            for position, h in enumerate(await repos.handoffs.waiting(), start=1):
                told = h.notified_position
                if told is None or not meaningful_move(told, position):
                    continue
                conv = await self._conversation(repos, h.conversation_id)
                if conv.owner != Owner.QUEUE:
                    continue
                await repos.handoffs.mark_notified(h.id, position)
                lang = as_lang(conv.lang)
                text = Texts(lang).say(
                    "queue_update", position=position, minutes=wait_minutes(position)
                )
                updates.append((conv.user_id, conv.id, text))
        for openid, conversation_id, text in updates:
            try:
                await self._sender.send_text(openid, text)
            except Exception as exc:  # a courtesy message: log, never fail the claim
                log.warning("queue position update to a customer failed: %s", exc)
                continue
            async with self._writing() as repos:
                await repos.transcript.add_line(
                    conversation_id, "out", API_BOT, text, self._clock.now()
                )

    # -- internals -------------------------------------------------------------------------

    async def _lock(
        self, repos: Repositories, handoff_id: int
    ) -> tuple[HandoffRecord, ConversationRecord]:
        """Both rows, locked in the engine's order — conversation, then handoff — so an
        agent's action and a customer's message never wait on each other in a cycle."""
        conversation_id = await repos.handoffs.conversation_of(handoff_id)
        if conversation_id is None:
            raise _not_found()
        conv = await repos.conversations.lock(conversation_id)
        handoff = await repos.handoffs.lock(handoff_id)
        assert conv is not None  # handoffs reference conversations
        assert handoff is not None  # handoffs are never deleted while open
        return handoff, conv

    async def _get(self, repos: Repositories, handoff_id: int) -> HandoffRecord:
        handoff = await repos.handoffs.get(handoff_id)
        if handoff is None:
            raise _not_found()
        return handoff

    async def _conversation(self, repos: Repositories, conversation_id: int) -> ConversationRecord:
        conv = await repos.conversations.by_id(conversation_id)
        assert conv is not None  # handoffs reference conversations
        return conv

    async def _agent_name(self, repos: Repositories, agent_id: int | None) -> str | None:
        if agent_id is None:
            return None
        agent = await repos.agents.get(agent_id)
        return None if agent is None else agent.name

    def _may_read(self, agent: AgentView, handoff: HandoffRecord) -> None:
        """Admins read everything; an agent only the conversations they hold (the queue
        itself shows a masked summary of the waiting ones)."""
        if agent.is_admin:
            return
        if handoff.claimed_by != agent.id or handoff.status not in HELD:
            raise _not_yours()

    def _must_hold(self, agent: AgentView, handoff: HandoffRecord) -> None:
        if handoff.status not in HELD:
            if handoff.status == HandoffStatus.WAITING:
                raise Refusal(409, "请先认领这个会话。", "Claim this conversation first.")
            raise _closed()
        if handoff.claimed_by != agent.id:
            raise _not_yours()

    async def _window(
        self, repos: Repositories, conv: ConversationRecord, now: datetime
    ) -> tuple[datetime | None, int]:
        """When WeChat's reply window closes, and how many replies are left in it."""
        if conv.last_inbound_at is None:
            return None, 0
        sent = await repos.transcript.api_sends_since_customer(conv.id, API_BOT)
        return conv.last_inbound_at + REPLY_WINDOW, max(0, REPLIES_PER_MESSAGE - sent)

    @staticmethod
    def _line(m: MessageRecord, masked: bool, names: dict[int, str]) -> TranscriptLine:
        """One transcript line as the console shows it: who, in words, and masked text."""
        sender, text = m.sender, m.text
        if sender.startswith("agent:"):
            kind = "note" if m.direction == "note" else "agent"
            sender = f"{kind}:{names.get(int(sender[6:]), sender[6:])}"
        elif sender == API_BOT:
            sender = "bot"
        if masked and m.sender == "customer":
            text = mask_text(text)
        elif masked and m.sender in ("bot", API_BOT):
            text = mask_links(text)
        return TranscriptLine(m.created_at, sender, text)

    async def _lines(
        self, repos: Repositories, conversation_id: int, masked: bool
    ) -> list[TranscriptLine]:
        names = await repos.agents.names()
        lines = await repos.transcript.lines(conversation_id)
        return [self._line(m, masked, names) for m in lines]

    async def _item(self, repos: Repositories, handoff_id: int) -> QueueItem:
        """The handoff's row as it stands now (after a change in this transaction)."""
        [item] = await self._items(repos, [await self._get(repos, handoff_id)])
        return item

    async def _items(self, repos: Repositories, handoffs: list[HandoffRecord]) -> list[QueueItem]:
        """Queue rows in two more queries, however long the queue (the console asks often)."""
        if not handoffs:
            return []
        names = await repos.agents.names()
        last = await repos.transcript.last_lines(
            [h.conversation_id for h in handoffs], LAST_MESSAGES
        )
        now = self._clock.now()
        return [
            QueueItem(
                id=h.id,
                ref=h.ref,
                status=h.status,
                reason=h.reason,
                priority=h.priority,
                created_at=h.created_at,
                waiting_seconds=int((now - h.created_at).total_seconds()),
                order=f"{STARS}{h.order_tail}" if h.order_tail else None,
                amount_confirmed=h.amount_confirmed,
                failures=h.failures,
                customer=mask_user_id(h.user_id),
                channel=h.channel,
                claimed_by=names.get(h.claimed_by) if h.claimed_by is not None else None,
                dropped_by=h.dropped_by,
                last_messages=[self._line(m, True, names) for m in last[h.conversation_id]],
                # a lease runs out only while claimed; a parked one waits for the customer
                lease_until=h.lease_until if h.status == HandoffStatus.CLAIMED else None,
                resolved_at=h.resolved_at,
            )
            for h in handoffs
        ]

    async def _view(self, repos: Repositories, h: HandoffRecord, masked: bool) -> ConversationView:
        conv = await self._conversation(repos, h.conversation_id)
        closes, left = await self._window(repos, conv, self._clock.now())
        [item] = await self._items(repos, [h])
        return ConversationView(
            item=item,
            transcript=await self._lines(repos, conv.id, masked=masked),
            masked=masked,
            window_open_until=closes,
            replies_left=left,
        )

    # -- canned replies ----------------------------------------------------------------------

    async def list_canned(self) -> list[CannedView]:
        async with self._reading() as repos:
            return [CannedView(c.id, c.title, c.text) for c in await repos.canned.list_all()]

    async def add_canned(self, agent: AgentView, title: str, text: str) -> CannedView:
        if not agent.is_admin:
            raise admins_only()
        if not title.strip() or not text.strip():
            raise Refusal(422, "标题和内容都要填写。", "Give both a title and a text.")
        async with self._writing() as repos:
            row = await repos.canned.add(title.strip()[:64], text.strip(), self._clock.now())
            return CannedView(row.id, row.title, row.text)

    async def delete_canned(self, agent: AgentView, canned_id: int) -> None:
        if not agent.is_admin:
            raise admins_only()
        async with self._writing() as repos:
            if not await repos.canned.delete(canned_id):
                raise Refusal(404, "找不到这条快捷回复。", "No such canned reply.")


def say_lease(lease: timedelta, lang: str) -> str:
    """The lease's length as said in a sentence: "10 分钟" / "10 minutes", else "1 分 30 秒"."""
    seconds = int(lease.total_seconds())
    minutes, rest = divmod(seconds, 60)
    if rest or not minutes:
        return say_duration(seconds, lang)
    if lang == "zh":
        return f"{minutes} 分钟"
    return f"{minutes} minute" if minutes == 1 else f"{minutes} minutes"


def lease_lapsed_event(agent_id: int, handoff_id: int, ref: str, lease: timedelta) -> Event:
    """What the agent whose claim lapsed is told, and why, in words (for their console only)."""
    return {
        "type": LEASE_LAPSED,
        TO_AGENT: agent_id,
        "handoff_id": handoff_id,
        "ref": ref,
        "lease_seconds": int(lease.total_seconds()),
        "zh": f"{say_lease(lease, 'zh')}没有回复，会话 #{ref} 已回到队列，其他客服可以接手。",
        "en": f"No reply for {say_lease(lease, 'en')}: #{ref} went back to the queue for"
        " anyone to take.",
    }
