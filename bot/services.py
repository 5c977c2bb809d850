"""The services behind the HTTP app, each built with what it needs — the database's sessions,
the clock, the outbound HTTP client, pieces of the settings — and nothing that knows of the
aiohttp application: ``bot/app.py`` builds these first, then registers routes with them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.channels.wechat_api import TokenManager, WeChatApi
from bot.channels.wecom_api import MAX_QR_IMAGE, WeComApi, WeComTokenManager
from bot.clock import Clock
from bot.config import Settings
from bot.console.auth import AgentDirectory
from bot.contact_ways import ContactWays
from bot.engine.dispatcher import Dispatcher
from bot.engine.late import LateReplies
from bot.flows.base import Limits, OrderLookup
from bot.handlers.card import CardContact
from bot.handoff.events import EventBus
from bot.handoff.hours import ServiceHours
from bot.handoff.pg_events import PgEventBus
from bot.handoff.queue import HandoffService
from bot.metrics import Metrics
from bot.order_api import HttpOrders
from bot.privacy.card_links import SignedCardLinks
from bot.privacy.links import LinkSigner
from bot.privacy.scenes import SceneCodec
from bot.rechecks import OrderRechecks
from bot.roster import Roster
from storage.db import create_engine, is_sqlite, session_factory
from storage.records import FunnelStep
from storage.repositories import ContactRepository, FunnelRepository

log = logging.getLogger(__name__)

IMAGE_TIMEOUT = aiohttp.ClientTimeout(total=5)


def orders_from_outside(settings: Settings, orders: OrderLookup | None = None) -> bool:
    """Orders come from somewhere outside the database (given, or ``BILLBOT_ORDER_API_URL``):
    a turn then waits on it in the middle of its transaction."""
    return orders is not None or bool(settings.order_api_url)


@dataclass(frozen=True)
class Database:
    """The engine and its sessions. Nothing connects until first use; the server migrates
    the schema when it starts and disposes of the engine when it stops."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]

    @classmethod
    def at(cls, url: str, *, group_commit: bool = True) -> Database:
        """``group_commit`` off where a turn's transaction waits on an outside order source:
        on SQLite a commit group would hold every turn before it until that answer came."""
        engine = create_engine(url, group_commit=group_commit)
        return cls(engine, session_factory(engine))


class DatabaseContacts:
    """The card page's view of contacts and their QR codes; it counts cards opened."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        contact_ways: ContactWays,
        http: aiohttp.ClientSession,
        metrics: Metrics,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._contact_ways = contact_ways
        self._http = http
        self._metrics = metrics

    async def contact_for_card(self, contact_id: int) -> CardContact | None:
        async with self._sessions() as session:
            found = await ContactRepository(session).get(contact_id)
        if found is None:
            return None
        return CardContact(found.name, found.wechat_id, found.qr_url, found.wecom_userid)

    async def wecom_qr(self, card_id: int, contact: CardContact) -> bytes | None:
        return await self._contact_ways.qr_image(card_id, contact.wecom_userid or "")

    async def fetch_image(self, url: str) -> bytes | None:
        try:
            async with self._http.get(url, timeout=IMAGE_TIMEOUT) as resp:
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
        async with self._sessions() as session, session.begin():
            first = await FunnelRepository(session).record_later(
                journey, FunnelStep.CARD_OPENED, self._clock.now()
            )
        if first:
            self._metrics.funnel_steps.labels(FunnelStep.CARD_OPENED.value).inc()


@dataclass(frozen=True)
class Services:
    """What the HTTP app's routes and the background upkeep call."""

    database: Database
    http: aiohttp.ClientSession  # outbound calls: WeChat, WeCom, the order backend, QR pictures
    metrics: Metrics
    events: EventBus
    card_signer: LinkSigner
    agents: AgentDirectory
    handoffs: HandoffService
    contact_ways: ContactWays
    dispatcher: Dispatcher
    rechecks: OrderRechecks
    late_replies: LateReplies
    card_contacts: DatabaseContacts
    roster: Roster


def official_account_api(
    http: aiohttp.ClientSession,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: Clock,
    metrics: Metrics | None = None,
) -> WeChatApi:
    """The Official Account's API client, its access token shared through the database."""
    tokens = TokenManager(
        http,
        sessions,
        settings.wechat_api_base,
        settings.wechat.app_id,
        settings.wechat.app_secret,
        clock,
    )
    return WeChatApi(http, tokens, settings.wechat_api_base, metrics=metrics)


def build_services(
    settings: Settings,
    clock: Clock,
    database: Database,
    http: aiohttp.ClientSession,
    metrics: Metrics,
    *,
    orders: OrderLookup | None = None,
) -> Services:
    """Every service, wired by constructor. ``orders`` replaces the local orders table as the
    order source (else ``BILLBOT_ORDER_API_URL``'s backend, if set, else the table)."""
    sessions = database.sessions
    secret_keys = [k.reveal() for k in settings.secret_keys]
    url = settings.database_url
    events = EventBus() if is_sqlite(url) else PgEventBus(url)  # PG: between all workers
    wechat = official_account_api(http, sessions, settings, clock, metrics)
    if orders is None and settings.order_api_url:  # see orders_from_outside
        orders = HttpOrders(http, settings.order_api_url, clock)
    handoffs = HandoffService(
        sessions,
        clock,
        wechat,
        events,
        lease=timedelta(seconds=settings.claim_lease_seconds),
        hours=ServiceHours.parse(settings.service_hours),
    )
    wecom_api = None
    if settings.wecom_enabled:
        wecom_tokens = WeComTokenManager(
            http,
            sessions,
            settings.wecom_api_base,
            settings.wecom_corp_id,
            settings.wecom_secret,
            clock,
        )
        wecom_api = WeComApi(http, wecom_tokens, settings.wecom_api_base, metrics=metrics)
    contact_ways = ContactWays(sessions, clock, wecom_api, metrics)
    card_signer = LinkSigner(secret_keys, clock)
    card_links = SignedCardLinks(card_signer, settings.public_url)
    dispatcher = Dispatcher(
        sessions,
        clock,
        card_links,
        verify_mode=settings.verify_mode,
        orders=orders,
        handoffs=handoffs,
        wecom_ways=settings.wecom_enabled,
        limits=Limits(
            order_lock=timedelta(minutes=settings.order_lock_minutes),
            cards_per_day=settings.cards_per_day,
            recheck_every=timedelta(minutes=settings.recheck_every_minutes),
            recheck_for=timedelta(minutes=settings.recheck_for_minutes),
        ),
        order_pattern=settings.order_pattern,
        scenes=SceneCodec(secret_keys, clock),
        fallback_contact=settings.fallback_contact,
    )
    rechecks = OrderRechecks(
        sessions,
        clock,
        wechat,
        card_links,
        orders=orders,
        verify_mode=settings.verify_mode,
        every=timedelta(minutes=settings.recheck_every_minutes),
        hours=handoffs.hours,
        handoffs=handoffs,
        metrics=metrics,
    )
    return Services(
        database=database,
        http=http,
        metrics=metrics,
        events=events,
        card_signer=card_signer,
        agents=AgentDirectory(sessions, clock),
        handoffs=handoffs,
        contact_ways=contact_ways,
        dispatcher=dispatcher,
        rechecks=rechecks,
        late_replies=LateReplies(sessions, wechat, settings.reply_deadline_seconds),
        card_contacts=DatabaseContacts(sessions, clock, contact_ways, http, metrics),
        roster=Roster(sessions, clock),
    )
