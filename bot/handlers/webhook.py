"""The Official Account callback: verify and decode (channel), run the turn (engine), reply.

Anything the caller got wrong is a 4xx with a short reason; anything we got wrong is logged
and answered with friendly words in the chat, never a 500 — WeChat would retry, and the
delivery key was rolled back, so the retry is processed afresh.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from bot.channels.wechat_oa import MAX_BODY, ChannelError, OARequest
from bot.handlers.bodies import BodyError, read_body
from bot.keys import CLOCK, DISPATCHER, LATE_REPLIES, METRICS, OFFICIAL_ACCOUNT, SESSIONS
from bot.texts import Texts, as_lang
from bot.understanding import detect_language
from storage.repositories import InboxRepository

log = logging.getLogger(__name__)


async def read_capped(request: web.Request, limit: int = MAX_BODY) -> bytes:
    """The body; a ChannelError if it is too large, too slow or abandoned half way."""
    try:
        return await read_body(request, limit)
    except BodyError as exc:
        raise ChannelError(exc.status, exc.reason, exc.kind) from None


def refused(request: web.Request, channel: str, exc: ChannelError) -> web.Response:
    """A callback refused before any processing: counted by reason, logged, a clear 4xx."""
    metrics = request.app[METRICS]
    metrics.deliveries.labels(channel, "rejected").inc()
    metrics.rejected.labels(channel, exc.kind).inc()
    log.warning("%s %s refused (%s): %s", request.method, request.path, exc.status, exc.reason)
    return web.Response(status=exc.status, text=exc.reason)


async def bind_signature(request: web.Request, signature_key: str, body_digest: str) -> None:
    """Refuses (403) a plaintext body under a signature that already carried another one."""
    async with request.app[SESSIONS]() as session, session.begin():
        fresh = await InboxRepository(session).bind_signature(
            signature_key, body_digest, request.app[CLOCK].now()
        )
    if not fresh:
        raise ChannelError(
            403, "this signature already carried a different message", "reused_signature"
        )


async def verify_wechat_url(request: web.Request) -> web.Response:
    try:
        echostr = request.app[OFFICIAL_ACCOUNT].verify_url(request.query)
    except ChannelError as exc:
        log.warning("GET /wechat refused (%s): %s", exc.status, exc.reason)
        return web.Response(status=exc.status, text=exc.reason)
    return web.Response(text=echostr)


async def receive_wechat(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    started = time.perf_counter()
    account = request.app[OFFICIAL_ACCOUNT]
    try:
        body = await read_capped(request)
        call = account.parse(OARequest(query=request.query, body=body))
        if call.signature_binding is not None:
            await bind_signature(request, *call.signature_binding)
    except ChannelError as exc:
        return refused(request, "wechat", exc)
    dispatcher = request.app[DISPATCHER]
    try:
        outcome = await request.app[LATE_REPLIES].within_deadline(
            call.inbound.record_key,
            call.inbound.user_id,
            lambda wait: dispatcher.handle(call.inbound, wait),
        )
        if outcome is None:
            reply, result = "", "late"
        elif outcome.duplicate and outcome.answered_late:
            # the answer goes out through the API: the record says so, whoever ran the turn
            reply, result = "", "duplicate"
        else:
            reply, result = outcome.reply, "duplicate" if outcome.duplicate else "ok"
        if outcome is not None:
            for step in outcome.steps:
                metrics.funnel_steps.labels(step.value).inc()
    except Exception:
        log.exception("turn failed for %s; the customer is asked to resend", call.inbound.dedup_key)
        lang = as_lang(detect_language(call.inbound.text) if call.inbound.text else None)
        reply, result = Texts(lang).say("busy"), "error"
    metrics.deliveries.labels("wechat", result).inc()
    metrics.messages.labels("wechat", "in", call.inbound.kind.value).inc()
    if result == "duplicate":
        metrics.dedup_hits.labels("wechat").inc()
    if reply:
        metrics.messages.labels("wechat", "out", "reply").inc()
    metrics.turn_seconds.labels("wechat").observe(time.perf_counter() - started)
    return web.Response(body=account.render_text(call, reply), content_type="application/xml")
