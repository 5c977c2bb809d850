"""The echo baseline for bench/compare.py, run as its own process like the real server.

``echo``: a stateless wechatpy bot on aiohttp — check the signatures, decrypt, parse, reply
with the customer's text, encrypt. No engine, no database, no billbot code: what the WeChat
protocol costs in the library a merchant would reach for first. Safe mode only, with the
token, EncodingAESKey and app id from BENCH_TOKEN, BENCH_AES_KEY and BENCH_APP_ID.

    .venv/bin/python bench/baseline_server.py echo --port 8081
"""

from __future__ import annotations

import argparse
import os

from aiohttp import web
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.replies import TextReply
from wechatpy.utils import check_signature


def echo_app(token: str, aes_key: str, app_id: str) -> web.Application:
    crypto = WeChatCrypto(token, aes_key, app_id)

    async def handle(request: web.Request) -> web.Response:
        query = request.query
        timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
        try:
            check_signature(token, query.get("signature", ""), timestamp, nonce)
            document = crypto.decrypt_message(
                await request.read(), query.get("msg_signature", ""), timestamp, nonce
            )
        except InvalidSignatureException:
            return web.Response(status=403, text="bad signature")
        message = parse_message(document)
        reply = TextReply(content=getattr(message, "content", ""), message=message)
        body = crypto.encrypt_message(reply.render(), nonce, timestamp)
        return web.Response(text=body, content_type="application/xml")

    app = web.Application()
    app.add_routes([web.post("/wechat", handle)])
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["echo"])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    env = os.environ
    app = echo_app(env["BENCH_TOKEN"], env["BENCH_AES_KEY"], env["BENCH_APP_ID"])
    web.run_app(app, host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
