"""Replies slower than WeChat's 5-second wait: answer "success" now, send the reply later.

WeChat gives a callback 5 s, then retries. A turn that runs past ``deadline`` is left to
finish; the webhook answers with WeChat's empty "success", and the finished reply goes out
through the customer-service message API instead. The turn marks its delivery record
"answered late" in its own transaction, so WeChat's retries of that message get "success"
too, from whichever server process they reach, and the customer reads the answer once.
If the API refuses the reply, the mark is cleared again: a retry still to come is answered
with the stored reply in its callback, rather than with "success" and nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import REPLY_DEADLINE_SECONDS
from bot.engine.dispatcher import Outcome, ReplyWait
from bot.handoff.queue import API_BOT, MessageSender
from storage.repositories import ConversationRepository, InboxRepository, TranscriptRepository

log = logging.getLogger(__name__)


class Delivery(ReplyWait):
    """One delivery in flight in this process: settled once, by whichever comes first, as
    answered in the callback (the turn is about to commit) or late (the deadline passed)."""

    def __init__(self) -> None:
        self._late: bool | None = None

    def reply_is_late(self) -> bool:
        if self._late is None:
            self._late = False
        return self._late

    def give_up(self) -> bool:
        """True if the callback may answer "success" now: the reply is not settled yet."""
        if self._late is None:
            self._late = True
        return self._late


class LateReplies:
    """Runs each turn against the deadline; replies that missed it go out afterwards through
    the message API (Official Account customers only: the only ones it can reach)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        sender: MessageSender,
        deadline: float = REPLY_DEADLINE_SECONDS,
    ) -> None:
        self._sessions = sessions
        self._sender = sender
        self.deadline = deadline
        self.tasks: set[asyncio.Task[None]] = set()

    async def within_deadline(
        self, key: str, openid: str, turn: Callable[[ReplyWait], Awaitable[Outcome]]
    ) -> Outcome | None:
        """The outcome, or None when the turn ran late and its reply will be sent later.

        ``turn`` gets this delivery's ``ReplyWait``: it tells the turn, just before it
        commits, whether the callback stopped waiting (then the record is marked)."""
        delivery = Delivery()
        task = asyncio.ensure_future(turn(delivery))
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.deadline)
        except TimeoutError:
            if not delivery.give_up():
                return await task  # settled as answered here: only its commit is left
            log.warning(
                "turn for %s ran past %.1f s; its reply goes through the message API (which"
                " counts against WeChat's reply quota): check how fast the order API"
                " (BILLBOT_ORDER_API_URL) and the database answer; BILLBOT_REPLY_DEADLINE_SECONDS"
                " sets the wait (below 5)",
                key,
                self.deadline,
            )
            later = asyncio.ensure_future(self._send_when_done(key, openid, task))
            self.tasks.add(later)
            later.add_done_callback(self.tasks.discard)
            return None

    async def _send_when_done(self, key: str, openid: str, task: asyncio.Future[Outcome]) -> None:
        try:
            outcome = await task
        except Exception:
            # rolled back, "answered late" mark included: a retry is processed afresh
            log.exception("late turn for %s failed; WeChat's retry will process it again", key)
            return
        if outcome.duplicate or not outcome.reply:
            return
        async with self._sessions() as session:
            conv = await ConversationRepository(session).get("wechat", openid)
        if conv is not None and conv.owner.is_agent:
            # the mark stays: a retry must not carry the bot's reply to an agent's customer
            log.info("late reply for %s dropped: an agent owns the conversation now", key)
            return
        try:
            await self._sender.send_text(openid, outcome.reply)
        except Exception as exc:
            log.warning(
                "late reply for %s could not be sent through the message API (%s); a retry"
                " of that message from WeChat gets it in its callback",
                key,
                exc,
            )
            await self._unmark(key)
            return
        if conv is not None:  # recorded as sent through the API: it used WeChat's reply quota
            async with self._sessions() as session, session.begin():
                await TranscriptRepository(session).resend_as(
                    conv.id, outcome.reply, "bot", API_BOT
                )

    async def _unmark(self, key: str) -> None:
        """The reply did not go out: its delivery record is no longer "answered late"."""
        try:
            async with self._sessions() as session, session.begin():
                await InboxRepository(session).unmark_late(key)
        except Exception:
            log.exception(
                "late reply for %s: the answered-late mark could not be cleared, so a retry"
                " from WeChat gets an empty answer; the customer has to write again",
                key,
            )
