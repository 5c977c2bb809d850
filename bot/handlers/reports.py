"""The admins' Funnel page: the conversion funnel drawn on the server as SVG, a date range,
today's queue figures, and the errors WeChat and WeCom answered lately.

A page of its own, rendered whole on the server (no script): the same figures as
``billbot report funnel``, from ``bot.funnel``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta

import jinja2
from aiohttp import web

from bot.console import TEMPLATES_DIR
from bot.funnel import CHINA, SIDE_STEPS, STEP_LABELS, FunnelReport, funnel_report
from bot.handlers.console import COOKIE, PAGE_HEADERS
from bot.keys import AGENTS, CLOCK, HANDOFFS, SESSIONS
from storage.records import ApiErrorRecord
from storage.repositories import ApiErrorRepository

log = logging.getLogger(__name__)

DEFAULT_DAYS = 30
BAR_WIDTH = 560  # pixels for a step that every journey reached
ROW_HEIGHT = 30
_PAGES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


@dataclass(frozen=True)
class Bar:
    y: int
    width: int
    label: str
    count: int
    conversion: str
    drop_off: str
    side: bool  # a branch off the main path (declined, handed off, abandoned)


def report_routes() -> list[web.RouteDef]:
    return [web.get("/console/funnel", funnel_page)]


def bars_of(report: FunnelReport) -> list[Bar]:
    started = max(1, report.steps[0].count)
    return [
        Bar(
            y=i * ROW_HEIGHT,
            width=max(1 if step.count else 0, round(BAR_WIDTH * step.count / started)),
            label=" ".join(STEP_LABELS[step.name]),
            count=step.count,
            conversion=f"{step.conversion:.0%}" if step.previous else "",
            drop_off=str(step.drop_off) if step.previous and step.name not in SIDE_STEPS else "",
            side=step.name in SIDE_STEPS,
        )
        for i, step in enumerate(report.steps)
    ]


def _day(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _html(status: int, **values: object) -> web.Response:
    html = _PAGES.get_template("funnel.html").render(**values)
    return web.Response(
        text=html, status=status, content_type="text/html", charset="utf-8", headers=PAGE_HEADERS
    )


async def funnel_page(request: web.Request) -> web.StreamResponse:
    token = request.cookies.get(COOKIE, "")
    found = await request.app[AGENTS].session(token, touch=True) if token else None
    if found is None or found[0].must_change_password:
        raise web.HTTPFound("/console")  # sign in (or change the one-time password) there
    agent = found[0]
    if not agent.is_admin:
        return _html(403, forbidden=True, agent=agent.name)
    today = request.app[CLOCK].now().astimezone(CHINA).date()
    since = _day(request.query.get("since"))
    until = _day(request.query.get("until"))
    bad_range = any(
        request.query.get(k) and _day(request.query.get(k)) is None for k in ("since", "until")
    )
    until = until or today
    since = since or until - timedelta(days=DEFAULT_DAYS - 1)
    if since > until:
        since, until, bad_range = until, since, True
    report = await funnel_report(request.app[SESSIONS], since, until)
    figures = await request.app[HANDOFFS].today()
    errors: list[ApiErrorRecord]
    async with request.app[SESSIONS]() as session:
        errors = await ApiErrorRepository(session).recent(
            request.app[CLOCK].now() - timedelta(days=1)
        )
    bars = bars_of(report)
    return _html(
        200,
        forbidden=False,
        agent=agent.name,
        report=report,
        bars=bars,
        chart_height=len(bars) * ROW_HEIGHT,
        bar_max=BAR_WIDTH,
        since=since.isoformat(),
        until=until.isoformat(),
        bad_range=bad_range,
        figures=figures,
        errors=[
            (e.at.astimezone(CHINA).strftime("%m-%d %H:%M"), e.service, e.call, e.errcode, e.errmsg)
            for e in errors
        ],
    )
