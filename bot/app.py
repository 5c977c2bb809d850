"""``create_app(settings)``: the aiohttp application with its resources and routes."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import aiohttp
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.channels.wechat_api import TokenManager, WeChatApi
from bot.channels.wechat_oa import MAX_BODY, OfficialAccount
from bot.channels.wecom import WeComCallback
from bot.channels.wecom_api import MAX_QR_IMAGE, WeComApi, WeComTokenManager
from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.console.auth import AgentDirectory
from bot.contact_ways import ContactWays
from bot.engine.dispatcher import Dispatcher
from bot.engine.late import LateReplies
from bot.flows.base import Limits, OrderLookup
from bot.handlers.bodies import BODY_SECONDS, CUT_OFF
from bot.handlers.card import QR_IMAGES_PER_MINUTE, CardContact, card_routes
from bot.handlers.console import (
    LOGINS_PER_MINUTE,
    close_console_sockets,
    console_api,
    console_routes,
)
from bot.handlers.health import health_routes
from bot.handlers.reports import report_routes
from bot.handlers.webhook import receive_wechat, verify_wechat_url
from bot.handlers.wecom import receive_wecom, verify_wecom_url
from bot.handoff.events import EventBus
from bot.handoff.hours import ServiceHours
from bot.handoff.pg_events import PgEventBus
from bot.handoff.queue import API_BOT, HandoffService
from bot.keys import (
    AGENTS,
    BODY_DEADLINE,
    CLOCK,
    CONSOLE_SOCKETS,
    CONTACT_WAYS,
    DISPATCHER,
    ENGINE,
    EVENTS,
    HANDOFFS,
    HTTP,
    LATE_REPLIES,
    LOGIN_THROTTLE,
    METRICS,
    OFFICIAL_ACCOUNT,
    QR_THROTTLE,
    RECHECKS,
    SESSIONS,
    SETTINGS,
    WECOM,
)
from bot.metrics import Metrics
from bot.order_api import HttpOrders
from bot.privacy.card_links import SignedCardLinks
from bot.privacy.links import LinkSigner
from bot.privacy.scenes import SceneCodec
from bot.rechecks import OrderRechecks
from bot.throttle import AddressThrottle
from storage.crypto import configure as configure_keyring
from storage.db import create_engine, is_sqlite, migrate, session_factory
from storage.records import FunnelStep
from storage.repositories import (
    ContactRepository,
    ConversationRepository,
    FunnelRepository,
    InboxRepository,
    TranscriptRepository,
)
from storage.retention import purge_expired

log = logging.getLogger(__name__)

PURGE_EVERY_SECONDS = 600
IMAGE_TIMEOUT = aiohttp.ClientTimeout(total=5)
LEASE_CHECK_SECONDS = 15

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def no_tracebacks(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unexpected failures are logged with their traceback and answered with plain words; a
    connection whose body was cut off is closed after the answer."""
    try:
        response = await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return web.Response(
            status=503, text="服务暂时不可用，请稍后再试。/ Temporarily unavailable, please retry."
        )
    if request.get(CUT_OFF):
        # Answer, then hang up at once: aiohttp would otherwise keep reading the rest of a
        # trickling body for another ten seconds before closing.
        response.force_close()
        with contextlib.suppress(ConnectionError):  # unless the client already hung up
            await response.prepare(request)
            await response.write_eof()
        request.protocol.force_close()
    return response


class DatabaseContacts:
    """The card page's view of contacts and their QR codes; it counts cards opened."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def contact_for_card(self, contact_id: int) -> CardContact | None:
        async with self._app[SESSIONS]() as session:
            found = await ContactRepository(session).get(contact_id)
        if found is None:
            return None
        return CardContact(found.name, found.wechat_id, found.qr_url, found.wecom_userid)

    async def wecom_qr(self, card_id: int, contact: CardContact) -> bytes | None:
        return await self._app[CONTACT_WAYS].qr_image(card_id, contact.wecom_userid or "")

    async def fetch_image(self, url: str) -> bytes | None:
        try:
            async with self._app[HTTP].get(url, timeout=IMAGE_TIMEOUT) as resp:
                body = await resp.content.read(MAX_QR_IMAGE + 1)
                if resp.status == 200 and len(body) <= MAX_QR_IMAGE:
                    return body
                log.warning("contact QR image: HTTP %d or too large; check qr_url", resp.status)
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.warning(
                "contact QR image could not be fetched (%s); check qr_url", type(exc).__name__
            )
        return None

    async def card_opened(self, journey: str) -> None:
        async with self._app[SESSIONS]() as session, session.begin():
            first = await FunnelRepository(session).record_later(
                journey, FunnelStep.CARD_OPENED, self._app[CLOCK].now()
            )
        if first:
            self._app[METRICS].funnel_steps.labels(FunnelStep.CARD_OPENED.value).inc()


async def bot_owns(sessions: async_sessionmaker[AsyncSession], openid: str) -> bool:
    async with sessions() as session:
        conv = await ConversationRepository(session).get("wechat", openid)
    return conv is None or not conv.owner.is_agent


async def mark_sent_by_api(
    sessions: async_sessionmaker[AsyncSession], openid: str, text: str
) -> None:
    async with sessions() as session, session.begin():
        conv = await ConversationRepository(session).get("wechat", openid)
        if conv is not None:
            await TranscriptRepository(session).resend_as(conv.id, text, "bot", API_BOT)


async def unmark_late(sessions: async_sessionmaker[AsyncSession], key: str) -> None:
    async with sessions() as session, session.begin():
        await InboxRepository(session).unmark_late(key)


async def database(app: web.Application, orders: OrderLookup | None = None) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    configure_keyring([k.reveal() for k in settings.secret_keys])
    engine = create_engine(settings.database_url)
    await migrate(engine)
    app[ENGINE] = engine
    app[SESSIONS] = session_factory(engine)
    app[AGENTS] = AgentDirectory(app[SESSIONS], app[CLOCK])
    async with aiohttp.ClientSession() as http:
        app[HTTP] = http
        tokens = TokenManager(
            http,
            app[SESSIONS],
            settings.wechat_api_base,
            settings.wechat.app_id,
            settings.wechat.app_secret,
            app[CLOCK],
        )
        wechat = WeChatApi(http, tokens, settings.wechat_api_base, metrics=app[METRICS])
        if orders is None and settings.order_api_url:
            orders = HttpOrders(http, settings.order_api_url, app[CLOCK])
        app[LATE_REPLIES].sender = wechat
        app[LATE_REPLIES].bot_may_speak = functools.partial(bot_owns, app[SESSIONS])
        app[LATE_REPLIES].sent_through_api = functools.partial(mark_sent_by_api, app[SESSIONS])
        app[LATE_REPLIES].not_sent = functools.partial(unmark_late, app[SESSIONS])
        app[HANDOFFS] = HandoffService(
            app[SESSIONS],
            app[CLOCK],
            wechat,
            app[EVENTS],
            lease=timedelta(seconds=settings.claim_lease_seconds),
            hours=ServiceHours.parse(settings.service_hours),
        )
        wecom_api = None
        if settings.wecom_enabled:
            wecom_tokens = WeComTokenManager(
                http,
                app[SESSIONS],
                settings.wecom_api_base,
                settings.wecom_corp_id,
                settings.wecom_secret,
                app[CLOCK],
            )
            wecom_api = WeComApi(http, wecom_tokens, settings.wecom_api_base, metrics=app[METRICS])
        app[CONTACT_WAYS] = ContactWays(app[SESSIONS], app[CLOCK], wecom_api, app[METRICS])
        app[DISPATCHER] = Dispatcher(
            app[SESSIONS],
            app[CLOCK],
            SignedCardLinks(app_signer(app), settings.public_url),
            verify_mode=settings.verify_mode,
            orders=orders,
            handoffs=app[HANDOFFS],
            wecom_ways=settings.wecom_enabled,
            limits=Limits(
                order_lock=timedelta(minutes=settings.order_lock_minutes),
                cards_per_day=settings.cards_per_day,
                recheck_every=timedelta(minutes=settings.recheck_every_minutes),
                recheck_for=timedelta(minutes=settings.recheck_for_minutes),
            ),
            order_pattern=settings.order_pattern,
            scenes=SceneCodec([k.reveal() for k in settings.secret_keys], app[CLOCK]),
        )
        app[RECHECKS] = OrderRechecks(
            app[SESSIONS],
            app[CLOCK],
            wechat,
            SignedCardLinks(app_signer(app), settings.public_url),
            orders=orders,
            verify_mode=settings.verify_mode,
            every=timedelta(minutes=settings.recheck_every_minutes),
            hours=app[HANDOFFS].hours,
            handoffs=app[HANDOFFS],
            metrics=app[METRICS],
        )
        yield
        late = app[LATE_REPLIES].tasks
        if late:  # replies still on their way to WeChat get a few seconds to finish
            await asyncio.wait(late, timeout=5)
    await engine.dispose()


async def purge_job(app: web.Application) -> AsyncIterator[None]:
    """Background upkeep while the server runs: consoles of workers that died are forgotten
    and lapsed claims go back to the queue (every few seconds, so a dropped conversation
    does not wait for an agent to look), unknown
    order numbers due a recheck are looked up again (``bot/rechecks.py``), and the
    retention job runs every few minutes (`billbot purge` runs it once)."""

    async def loop() -> None:
        ticks = 0
        while True:
            try:
                await app[HANDOFFS].forget_stale_consoles()
                await app[HANDOFFS].release_expired_leases()
                await app[CONTACT_WAYS].delete_spent_ways()
                await app[RECHECKS].run_due()
                if ticks % (PURGE_EVERY_SECONDS // LEASE_CHECK_SECONDS) == 0:
                    counts = await purge_expired(app[SESSIONS], app[CLOCK].now())
                    if any(counts.values()):
                        log.info("retention: %s", counts)
            except Exception:
                log.exception("background upkeep failed; it will run again")
            ticks += 1
            await asyncio.sleep(LEASE_CHECK_SECONDS)

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def live_events(app: web.Application) -> AsyncIterator[None]:
    """The console's live events: on PostgreSQL, the connection that carries them between
    workers is open while the server runs."""
    async with app[EVENTS].running():
        yield


def app_signer(app: web.Application) -> LinkSigner:
    return LinkSigner([k.reveal() for k in app[SETTINGS].secret_keys], app[CLOCK])


def create_app(
    settings: Settings,
    clock: Clock | None = None,
    *,
    background_jobs: bool = False,
    body_deadline: float = BODY_SECONDS,
    orders: OrderLookup | None = None,
) -> web.Application:
    """The whole server. ``orders`` replaces the local orders table as the order source."""
    app = web.Application(client_max_size=MAX_BODY, middlewares=[no_tracebacks, console_api])
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    app[METRICS] = Metrics()
    app[OFFICIAL_ACCOUNT] = OfficialAccount(settings.wechat, app[CLOCK])
    url = settings.database_url
    app[EVENTS] = EventBus() if is_sqlite(url) else PgEventBus(url)  # PG: all workers
    app[LATE_REPLIES] = LateReplies(settings.reply_deadline_seconds)
    app[BODY_DEADLINE] = body_deadline
    app[LOGIN_THROTTLE] = AddressThrottle(LOGINS_PER_MINUTE, timedelta(minutes=1), app[CLOCK])
    app[QR_THROTTLE] = AddressThrottle(QR_IMAGES_PER_MINUTE, timedelta(minutes=1), app[CLOCK])
    app[CONSOLE_SOCKETS] = set()
    app.on_shutdown.append(close_console_sockets)
    app.cleanup_ctx.append(live_events)  # before the database: its last events still go out
    app.cleanup_ctx.append(functools.partial(database, orders=orders))
    if background_jobs:
        app.cleanup_ctx.append(purge_job)
    if settings.wecom_enabled:
        app[WECOM] = WeComCallback(
            settings.wecom_corp_id, settings.wecom_token, settings.wecom_aes_key, app[CLOCK]
        )
        app.add_routes([web.get("/wecom", verify_wecom_url), web.post("/wecom", receive_wecom)])
    app.add_routes(
        [
            web.get("/wechat", verify_wechat_url),
            web.post("/wechat", receive_wechat),
            *health_routes(),
            *card_routes(app_signer(app), DatabaseContacts(app), app[QR_THROTTLE]),
            *console_routes(),
            *report_routes(),
        ]
    )
    return app
