"""Receipt QR codes (``billbot qr``, ``billbot orders import --qr``): one WeChat parametric QR
code per order, saved as a PNG to print on a receipt or show on a bill page.

The code carries a signed, opaque scene (``bot.privacy.scenes``) naming a row of
``order_qrs``, never the order number. WeChat makes the code (``qrcode/create``, temporary,
at most 30 days) and says what it holds; the PNG is drawn here from that.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import aiohttp
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.channels.wechat_api import MAX_QR_SECONDS, WeChatApi, WeChatApiError
from bot.clock import Clock
from bot.config import Settings
from bot.privacy.masking import mask_order_no
from bot.privacy.scenes import SceneCodec
from bot.privacy.watermark import render_qr_png
from bot.services import official_account_api
from bot.understanding import normalize_text
from storage.db import create_engine, migrate, session_factory
from storage.repositories import OrderRepository
from storage.repositories.qrs import OrderQrRepository

DEFAULT_DAYS = 30


@dataclass(frozen=True)
class ReceiptQr:
    order_no: str
    path: Path | None  # the PNG, or None with ``problem`` saying why
    problem: str = ""


def _clean(order_no: str) -> str:
    return "".join(ch for ch in normalize_text(order_no).upper() if ch.isalnum())


async def make_receipt_qrs(
    settings: Settings,
    order_numbers: list[str],
    out_dir: Path,
    clock: Clock,
    *,
    days: int = DEFAULT_DAYS,
) -> list[ReceiptQr]:
    """One PNG per order found in the orders table; the others are reported, not made."""
    seconds = min(days * 86400, MAX_QR_SECONDS)
    codec = SceneCodec([k.reveal() for k in settings.secret_keys], clock)
    engine = create_engine(settings.database_url)
    made: list[ReceiptQr] = []
    try:
        await migrate(engine)
        sessions = session_factory(engine)
        async with aiohttp.ClientSession() as http:
            api = official_account_api(http, sessions, settings, clock)
            for raw in order_numbers:
                made.append(await _one(_clean(raw), sessions, api, codec, out_dir, clock, seconds))
    finally:
        await engine.dispose()
    return made


async def _one(
    order_no: str,
    sessions: async_sessionmaker[AsyncSession],
    api: WeChatApi,
    codec: SceneCodec,
    out_dir: Path,
    clock: Clock,
    seconds: int,
) -> ReceiptQr:
    now = clock.now()
    expires = now + timedelta(seconds=seconds)
    async with sessions() as session, session.begin():
        if await OrderRepository(session).find(order_no) is None:
            return ReceiptQr(order_no, None, "not in the orders table (import it first)")
        qr_id = await OrderQrRepository(session).create(order_no, expires, now)
    try:
        code = await api.create_scene_qr(codec.make(qr_id, expires), seconds)
    except WeChatApiError as exc:
        return ReceiptQr(
            order_no,
            None,
            f"WeChat refused the QR code (errcode {exc.errcode}): check WECHAT_APP_ID and"
            " WECHAT_APP_SECRET, and that the account may make QR codes (a verified service"
            " account; 48001 means it may not)",
        )
    except (aiohttp.ClientError, TimeoutError):
        return ReceiptQr(order_no, None, "WeChat cannot be reached (check WECHAT_API_BASE)")
    path = out_dir / f"qr-{order_no}.png"
    await asyncio.to_thread(_save_png, code.url, path)
    return ReceiptQr(order_no, path)


def _save_png(content: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render_qr_png(content, ""))


def format_receipt_qrs(made: list[ReceiptQr]) -> str:
    lines = []
    for qr in made:
        if qr.path is not None:
            lines.append(f"{mask_order_no(qr.order_no)}  →  {qr.path}")
        else:
            lines.append(f"{mask_order_no(qr.order_no)}  ✗  {qr.problem}")
    good = sum(1 for qr in made if qr.path is not None)
    lines.append(f"{good} of {len(made)} QR codes saved / 已生成 {good} 个二维码")
    return "\n".join(lines)
