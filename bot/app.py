"""``create_app(settings)``: the database, then the services, then the HTTP app.

The database (engine and sessions) comes first, the services next (``bot/services.py``:
each gets what it needs in its constructor), and last the aiohttp application, which
registers its routes with those services and opens and closes their resources as it starts
and stops. No service holds the application to find something later.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import aiohttp
from aiohttp import web

from bot import understanding
from bot.channels.wechat_oa import MAX_BODY, OfficialAccount
from bot.channels.wecom import WeComCallback
from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.flows.base import OrderLookup
from bot.handlers.bodies import BODY_SECONDS, CUT_OFF
from bot.handlers.card import QR_IMAGES_PER_MINUTE, card_routes
from bot.handlers.console import (
    LOGINS_PER_MINUTE,
    close_console_sockets,
    console_api,
    console_routes,
)
from bot.handlers.console_pages import console_page_routes
from bot.handlers.health import health_routes
from bot.handlers.reports import report_routes
from bot.handlers.webhook import receive_wechat, verify_wechat_url
from bot.handlers.wecom import receive_wecom, verify_wecom_url
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
    LATE_REPLIES,
    LOGIN_THROTTLE,
    METRICS,
    OFFICIAL_ACCOUNT,
    QR_THROTTLE,
    RECHECKS,
    ROSTER,
    SESSIONS,
    SETTINGS,
    WECOM,
)
from bot.metrics import Metrics
from bot.refusals import unavailable
from bot.services import Database, Services, build_services, orders_from_outside
from bot.throttle import AddressThrottle
from storage.crypto import configure as configure_keyring
from storage.db import migrate
from storage.retention import purge_expired

log = logging.getLogger(__name__)

PURGE_EVERY_SECONDS = 600
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
        refusal = unavailable()
        return web.Response(status=refusal.status, text=f"{refusal.zh} / {refusal.en}")
    if request.get(CUT_OFF):
        # Answer, then hang up at once: aiohttp would otherwise keep reading the rest of a
        # trickling body for another ten seconds before closing.
        response.force_close()
        with contextlib.suppress(ConnectionError):  # unless the client already hung up
            await response.prepare(request)
            await response.write_eof()
        request.protocol.force_close()
    return response


async def running(
    settings: Settings, services: Services, _app: web.Application
) -> AsyncIterator[None]:
    """While the server runs: the schema migrated first; at the end, late replies get a few
    seconds to reach WeChat, then the outbound HTTP client and the engine close."""
    configure_keyring([k.reveal() for k in settings.secret_keys])
    understanding.warm()  # before the first customer, not in their turn
    try:
        await migrate(services.database.engine)
        yield
        late = services.late_replies.tasks
        if late:  # replies still on their way to WeChat get a few seconds to finish
            await asyncio.wait(late, timeout=5)
    finally:
        await services.http.close()
        await services.database.engine.dispose()


async def upkeep(clock: Clock, services: Services, _app: web.Application) -> AsyncIterator[None]:
    """Background upkeep while the server runs: consoles of workers that died are forgotten
    and lapsed claims go back to the queue (every few seconds, so a dropped conversation
    does not wait for an agent to look), unknown order numbers due a recheck are looked up
    again (``bot/rechecks.py``), and the retention job runs every few minutes (`billbot
    purge` runs it once)."""

    async def loop() -> None:
        ticks = 0
        while True:
            try:
                await services.handoffs.forget_stale_consoles()
                await services.handoffs.release_expired_leases()
                await services.contact_ways.delete_spent_ways()
                await services.rechecks.run_due()
                if ticks % (PURGE_EVERY_SECONDS // LEASE_CHECK_SECONDS) == 0:
                    counts = await purge_expired(services.database.sessions, clock.now())
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


async def live_events(services: Services, _app: web.Application) -> AsyncIterator[None]:
    """The console's live events: on PostgreSQL, the connection that carries them between
    workers is open while the server runs."""
    async with services.events.running():
        yield


def create_app(
    settings: Settings,
    clock: Clock | None = None,
    *,
    background_jobs: bool = False,
    body_deadline: float = BODY_SECONDS,
    orders: OrderLookup | None = None,
) -> web.Application:
    """The whole server. ``orders`` replaces the local orders table as the order source.

    Call it with the event loop running (aiohttp's client session needs one): tests do, and
    ``billbot serve`` builds the app inside ``web.run_app``."""
    clock = clock or SystemClock()
    database = Database.at(
        settings.database_url, group_commit=not orders_from_outside(settings, orders)
    )
    http = aiohttp.ClientSession()
    services = build_services(settings, clock, database, http, Metrics(), orders=orders)
    return http_app(
        settings, clock, services, background_jobs=background_jobs, body_deadline=body_deadline
    )


def http_app(
    settings: Settings,
    clock: Clock,
    services: Services,
    *,
    background_jobs: bool = False,
    body_deadline: float = BODY_SECONDS,
) -> web.Application:
    """The aiohttp application: routes to ``services``, their resources opened and closed
    with the server (it owns them from here on)."""
    app = web.Application(client_max_size=MAX_BODY, middlewares=[no_tracebacks, console_api])
    app[SETTINGS] = settings
    app[CLOCK] = clock
    app[METRICS] = services.metrics
    app[ENGINE] = services.database.engine
    app[SESSIONS] = services.database.sessions
    app[EVENTS] = services.events
    app[AGENTS] = services.agents
    app[HANDOFFS] = services.handoffs
    app[CONTACT_WAYS] = services.contact_ways
    app[DISPATCHER] = services.dispatcher
    app[RECHECKS] = services.rechecks
    app[ROSTER] = services.roster
    app[LATE_REPLIES] = services.late_replies
    app[OFFICIAL_ACCOUNT] = OfficialAccount(settings.wechat, clock)
    app[BODY_DEADLINE] = body_deadline
    app[LOGIN_THROTTLE] = AddressThrottle(LOGINS_PER_MINUTE, timedelta(minutes=1), clock)
    app[QR_THROTTLE] = AddressThrottle(QR_IMAGES_PER_MINUTE, timedelta(minutes=1), clock)
    app[CONSOLE_SOCKETS] = set()
    app.on_shutdown.append(close_console_sockets)
    # live events before the rest: the last events of a stopping server still go out
    app.cleanup_ctx.append(functools.partial(live_events, services))
    app.cleanup_ctx.append(functools.partial(running, settings, services))
    if background_jobs:
        app.cleanup_ctx.append(functools.partial(upkeep, clock, services))
    if settings.wecom_enabled:
        app[WECOM] = WeComCallback(
            settings.wecom_corp_id, settings.wecom_token, settings.wecom_aes_key, clock
        )
        app.add_routes([web.get("/wecom", verify_wecom_url), web.post("/wecom", receive_wecom)])
    app.add_routes(
        [
            web.get("/wechat", verify_wechat_url),
            web.post("/wechat", receive_wechat),
            *health_routes(),
            *card_routes(services.card_signer, services.card_contacts, app[QR_THROTTLE]),
            *console_routes(),
            *console_page_routes(),
            *report_routes(),
        ]
    )
    return app
