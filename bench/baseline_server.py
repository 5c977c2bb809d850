"""Baselines for bench/webhook.py, run as their own processes like the real server.

- ``bare``: aiohttp answering ``success`` to every POST — the floor of an HTTP round trip.
- ``protocol``: the same Official Account verify/decrypt/encrypt as billbot, with a fixed
  reply and no engine or database — what the WeChat protocol alone costs.
"""

from __future__ import annotations

import argparse

from aiohttp import web

from bot.channels.wechat_oa import OARequest, OfficialAccount
from bot.clock import SystemClock
from bot.config import Settings


def bare_app() -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="success")

    app = web.Application()
    app.add_routes([web.post("/wechat", handle)])
    return app


def protocol_app() -> web.Application:
    account = OfficialAccount(Settings.from_env({}).wechat, SystemClock())

    async def handle(request: web.Request) -> web.Response:
        call = account.parse(OARequest(query=request.query, body=await request.read()))
        body = account.render_text(call, "请发送您的订单号（例如 DD20250503123456）。")
        return web.Response(body=body, content_type="application/xml")

    app = web.Application()
    app.add_routes([web.post("/wechat", handle)])
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["bare", "protocol"])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = bare_app() if args.kind == "bare" else protocol_app()
    web.run_app(app, host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
