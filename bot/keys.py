"""Every aiohttp AppKey in one place."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.channels.wechat_oa import OfficialAccount
from bot.channels.wecom import WeComCallback
from bot.clock import Clock
from bot.config import Settings
from bot.console.auth import AgentDirectory
from bot.contact_ways import ContactWays
from bot.engine.dispatcher import Dispatcher
from bot.engine.late import LateReplies
from bot.handoff.events import EventBus
from bot.handoff.queue import HandoffService
from bot.metrics import Metrics
from bot.rechecks import OrderRechecks
from bot.roster import Roster
from bot.throttle import AddressThrottle

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSIONS = web.AppKey("sessions", async_sessionmaker[AsyncSession])
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
OFFICIAL_ACCOUNT = web.AppKey("official_account", OfficialAccount)
METRICS = web.AppKey("metrics", Metrics)
EVENTS = web.AppKey("events", EventBus)
HANDOFFS = web.AppKey("handoffs", HandoffService)
AGENTS = web.AppKey("agents", AgentDirectory)
CONSOLE_SOCKETS = web.AppKey("console_sockets", set[web.WebSocketResponse])
LATE_REPLIES = web.AppKey("late_replies", LateReplies)
CONTACT_WAYS = web.AppKey("contact_ways", ContactWays)  # WeCom contact ways on cards
WECOM = web.AppKey("wecom", WeComCallback)  # the /wecom callback, when WeCom is on
BODY_DEADLINE = web.AppKey("body_deadline", float)  # seconds a request body may take
LOGIN_THROTTLE = web.AppKey("login_throttle", AddressThrottle)  # /api/login per address
QR_THROTTLE = web.AppKey("qr_throttle", AddressThrottle)  # card QR images per address
ROSTER = web.AppKey("roster", Roster)  # contacts on and off duty
RECHECKS = web.AppKey("rechecks", OrderRechecks)  # unknown orders looked up again a while
