"""Replies slower than WeChat's 5-second wait: answer "success" now, send the reply later.

WeChat gives a callback 5 s, then retries. A turn that runs past ``deadline`` is left to
finish; the webhook answers with WeChat's empty "success", and the finished reply goes out
through the customer-service message API instead. Redeliveries of that message then get
"success" too, so the customer reads the answer once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bot.engine.dispatcher import Outcome
from bot.handoff.queue import MessageSender

log = logging.getLogger(__name__)

DEADLINE_SECONDS = 4.0  # WeChat waits 5 s; leave room for the network and rendering


class LateReplies:
    def __init__(self, deadline: float = DEADLINE_SECONDS) -> None:
        self.deadline = deadline
        self.sender: MessageSender | None = None  # set once the HTTP client is open
        # True while the bot may still speak to this customer (no agent took over meanwhile)
        self.bot_may_speak: Callable[[str], Awaitable[bool]] | None = None
        # records that the reply went out through the API (it uses WeChat's reply quota)
        self.sent_through_api: Callable[[str, str], Awaitable[None]] | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self._sent_late: set[str] = set()  # delivery keys answered through the API

    def answered_late(self, key: str) -> bool:
        return key in self._sent_late

    async def within_deadline(
        self, key: str, openid: str, turn: Awaitable[Outcome]
    ) -> Outcome | None:
        """The outcome, or None when the turn ran late and its reply will be sent later."""
        task = asyncio.ensure_future(turn)
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.deadline)
        except TimeoutError:
            log.warning("turn for %s ran past %.1f s; replying through the API", key, self.deadline)
            self._sent_late.add(key)
            later = asyncio.ensure_future(self._send_when_done(key, openid, task))
            self.tasks.add(later)
            later.add_done_callback(self.tasks.discard)
            return None

    async def _send_when_done(self, key: str, openid: str, task: asyncio.Future[Outcome]) -> None:
        try:
            outcome = await task
        except Exception:
            log.exception("late turn for %s failed; WeChat's retry will process it again", key)
            self._sent_late.discard(key)
            return
        if outcome.duplicate or not outcome.reply:
            return
        if self.sender is None:
            log.error("late reply for %s dropped: no WeChat API client", key)
            return
        if self.bot_may_speak is not None and not await self.bot_may_speak(openid):
            log.info("late reply for %s dropped: an agent owns the conversation now", key)
            return
        try:
            await self.sender.send_text(openid, outcome.reply)
        except Exception as exc:
            log.warning("late reply for %s could not be sent: %s", key, exc)
            return
        if self.sent_through_api is not None:
            await self.sent_through_api(openid, outcome.reply)
