"""Events for the live console: the queue changed, a message came or went.

``EventBus`` fans out within one process (SQLite, one server); ``bot/handoff/pg_events.py``
carries the same events between server processes through PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

Event = dict[str, Any]  # {"type": "queue" | "message" | "handoff" | …}; JSON-serialisable

# An event carrying this key is for one agent only (their id): ``listen(agent_id)`` gets it
# only if it is theirs. Events without it are for every console.
TO_AGENT = "to_agent"
LEASE_LAPSED = "lease_lapsed"  # the agent's claim lapsed: the event says why, in words

# Any event makes a console reload what it shows; this one says only "the queue changed", so
# it is what a console gets when it may have missed events.
RESYNC: Event = {"type": "queue"}


class EventBus:
    """Fan-out to every connected console. Slow listeners drop events, never block the bot."""

    def __init__(self, max_pending: int = 100) -> None:
        self._listeners: dict[asyncio.Queue[Event], int | None] = {}
        self._max = max_pending

    def publish(self, event: Event) -> None:
        """Send ``event`` to every listening console; returns at once."""
        self.deliver(event)

    def deliver(self, event: Event) -> None:
        """Hand ``event`` to the listeners in this process it is meant for."""
        addressee = event.get(TO_AGENT)
        for queue, agent_id in list(self._listeners.items()):
            if addressee is not None and agent_id is not None and addressee != agent_id:
                continue
            if queue.qsize() < self._max:
                queue.put_nowait(event)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """While the server runs: nothing to open for the in-process bus."""
        yield

    @asynccontextmanager
    async def listen(self, agent_id: int | None = None) -> AsyncIterator[asyncio.Queue[Event]]:
        """Events as they come. With ``agent_id`` (an agent's console), events addressed to
        another agent are left out; without it, every event arrives."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._listeners[queue] = agent_id
        try:
            yield queue
        finally:
            self._listeners.pop(queue, None)
