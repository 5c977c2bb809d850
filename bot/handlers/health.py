"""Liveness and metrics."""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from bot.keys import ENGINE, METRICS, SESSIONS
from storage.repositories import HandoffRepository

log = logging.getLogger(__name__)


async def healthz(request: web.Request) -> web.Response:
    """200 when the database answers; 503 (with what failed) when it does not."""
    try:
        async with request.app[ENGINE].connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        log.exception("health check: the database does not answer")
        return web.json_response({"status": "down", "database": "unreachable"}, status=503)
    return web.json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    figures = request.app[METRICS]
    try:  # the queue's length is read from the database, so every process reports the truth
        async with request.app[SESSIONS]() as session:
            waiting = await HandoffRepository(session).count_waiting()
        figures.handoffs_waiting.set(waiting)
    except Exception:
        log.exception("metrics: could not count waiting handoffs")
    body = generate_latest(figures.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def health_routes() -> list[web.RouteDef]:
    return [web.get("/healthz", healthz), web.get("/metrics", metrics)]
