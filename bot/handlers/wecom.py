"""The WeCom callback: URL verification, and "contact added" (or removed) events.

Refusals are 4xx with a short reason and change nothing; an accepted event is answered
"success" whatever it turned out to be (unknown, expired or used states are logged and
ignored), so WeCom does not retry what we chose not to act on.
"""

from __future__ import annotations

import logging

from aiohttp import web

from bot.channels.wechat_oa import ChannelError, OARequest
from bot.handlers.webhook import read_capped, refused
from bot.keys import CONTACT_WAYS, METRICS, WECOM

log = logging.getLogger(__name__)


async def verify_wecom_url(request: web.Request) -> web.Response:
    try:
        echo = request.app[WECOM].verify_url(request.query)
    except ChannelError as exc:
        log.warning("GET /wecom refused (%s): %s", exc.status, exc.reason)
        return web.Response(status=exc.status, text=exc.reason)
    return web.Response(text=echo)


async def receive_wecom(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    try:
        body = await read_capped(request)
        event = request.app[WECOM].parse(OARequest(query=request.query, body=body))
    except ChannelError as exc:
        return refused(request, "wecom", exc)
    try:
        outcome = await request.app[CONTACT_WAYS].on_event(event)
    except Exception:
        # rolled back: WeCom retries, and the retry is processed afresh
        log.exception("WeCom event %s failed", event.change_type or event.event)
        return web.Response(status=503, text="temporarily unavailable, retry")
    metrics.deliveries.labels("wecom", outcome).inc()
    metrics.messages.labels("wecom", "in", "event").inc()
    if outcome == "duplicate":
        metrics.dedup_hits.labels("wecom").inc()
    log.info("WeCom %s event: %s", event.change_type or event.event, outcome)
    return web.Response(text="success")
