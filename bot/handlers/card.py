"""The contact card page behind a signed, expiring link: a masked contact and a watermarked QR.

The page never carries the contact's WeChat ID in clear; only the QR code encodes it, because
the customer's WeChat needs it to add the contact. Contacts come through ``ContactSource`` so
this module knows nothing of the database.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Protocol

import jinja2
from aiohttp import web

from bot.handlers.clients import client_address
from bot.privacy.card_links import (
    CARD_FIELD,
    CONTACT_FIELD,
    JOURNEY_FIELD,
    ORDER_TAIL_FIELD,
    REMARK_FIELD,
    USER_FIELD,
)
from bot.privacy.links import EXPIRY_FIELD, LinkExpired, LinkPayload, LinkSigner, LinkTampered
from bot.privacy.masking import mask_wechat_id
from bot.privacy.watermark import render_qr_png, watermark_png
from bot.throttle import AddressThrottle

log = logging.getLogger(__name__)

DEFAULT_TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "console" / "templates"
CHINA_TIME = timezone(timedelta(hours=8), "CST")  # what customers read the expiry in

SECURITY_HEADERS: dict[str, str] = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}

# Payload fields of a card link (kept to one letter: the token travels in a chat message).


@dataclass(frozen=True)
class CardContact:
    name: str
    wechat_id: str
    qr_url: str | None
    wecom_userid: str | None = None


# A qr_url ending like this is a picture of a QR code (fetched and watermarked); any other
# link is what a QR code holds (drawn here).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp")
# A customer opens a card or two; a page reload asks again. More than this from one address
# is somebody making us fetch and draw images (and call WeCom) for nothing.
QR_IMAGES_PER_MINUTE = 30


class ContactSource(Protocol):
    """Where the card page finds a contact, and tells of a card opened; storage implements it."""

    async def contact_for_card(self, contact_id: int) -> CardContact | None: ...
    async def card_opened(self, journey: str) -> None: ...
    async def wecom_qr(self, card_id: int, contact: CardContact) -> bytes | None:
        """The card's own WeCom contact-way QR image, or None (WeCom off, or failing)."""
        ...

    async def fetch_image(self, url: str) -> bytes | None:
        """A QR code picture from the contact's ``qr_url``, or None if it cannot be had."""
        ...


def card_routes(
    signer: LinkSigner,
    contacts: ContactSource,
    throttle: AddressThrottle,
    templates_dir: Path | None = None,
) -> list[web.RouteDef]:
    """``GET /card/{token}`` (the page) and ``GET /card/{token}/qr.png`` (its QR code, at most
    ``throttle`` allows per client address: each one may cost a WeChat or WeCom call)."""
    pages = _CardPages(signer, contacts, throttle, templates_dir or DEFAULT_TEMPLATES_DIR)
    return [
        web.get("/card/{token}", pages.page),
        web.get("/card/{token}/qr.png", pages.qr_png),
    ]


@dataclass(frozen=True)
class _ErrorView:
    status: int
    title_zh: str
    title_en: str
    text_zh: str
    text_en: str


_TAMPERED = _ErrorView(
    403,
    "链接无效",
    "This link is not valid",
    "这个链接不完整或已被改动。请回到微信对话，重新发送订单号，我们会发给你新的链接。",
    "This link is incomplete or has been changed. Go back to the WeChat chat and send your "
    "order number again; we will send you a new link.",
)
_EXPIRED = _ErrorView(
    410,
    "链接已过期",
    "This link has expired",
    "为保护你的信息，名片链接只在短时间内有效。请回到微信对话，重新发送订单号，获取新的链接。",
    "To protect your information, card links work for a short time only. Go back to the WeChat "
    "chat and send your order number again to get a fresh link.",
)
_NOT_FOUND = _ErrorView(
    404,
    "暂时找不到这张名片",
    "We cannot find this contact card",
    "这位客服的名片暂时无法显示。请回到微信对话告诉我们，我们会为你转接人工客服。",
    "The card for this contact cannot be shown right now. Go back to the WeChat chat and tell us; "
    "we will connect you with a person.",
)
_NO_QR = _ErrorView(
    404,
    "这位客服暂时无法扫码添加",
    "This contact cannot be added by QR code right now",
    "请回到微信对话告诉我们，我们会为你转接人工客服。",
    "Go back to the WeChat chat and tell us; we will connect you with a person.",
)
_TOO_MANY = _ErrorView(
    429,
    "请求太频繁",
    "Too many requests",
    "请稍等一分钟再刷新页面。",
    "Please wait a minute, then reload the page.",
)
_QR_UNAVAILABLE = _ErrorView(
    503,
    "二维码暂时无法生成",
    "The QR code cannot be shown right now",
    "请回到微信对话告诉我们，我们会为你转接人工客服。",
    "Go back to the WeChat chat and tell us; we will connect you with a person.",
)


@dataclass(frozen=True)
class _CardView:
    name: str
    masked_wechat_id: str
    order_tail: str
    remark: str
    qr_src: str
    expires_at: str  # wall-clock time in China, e.g. 2026-05-03 20:30
    minutes_left: int


class _Refused(Exception):
    def __init__(self, view: _ErrorView) -> None:
        super().__init__(view.title_en)
        self.view = view


class _CardPages:
    def __init__(
        self,
        signer: LinkSigner,
        contacts: ContactSource,
        throttle: AddressThrottle,
        templates_dir: Path,
    ) -> None:
        self._signer = signer
        self._contacts = contacts
        self._throttle = throttle
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(templates_dir),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self._template = env.get_template("card.html")  # fails at startup, not per request

    async def page(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        try:
            payload, contact = await self._resolve(token)
        except _Refused as refused:
            return self._error(refused.view)
        expires = datetime.fromtimestamp(int(payload[EXPIRY_FIELD]), UTC)
        seconds_left = (expires - self._signer.clock.now()).total_seconds()
        card = _CardView(
            name=contact.name,
            masked_wechat_id=mask_wechat_id(contact.wechat_id),
            order_tail=_text_field(payload, ORDER_TAIL_FIELD),
            remark=_text_field(payload, REMARK_FIELD),
            qr_src=f"/card/{token}/qr.png",
            expires_at=expires.astimezone(CHINA_TIME).strftime("%Y-%m-%d %H:%M"),
            minutes_left=max(1, math.ceil(seconds_left / 60)),
        )
        watermark = _text_field(payload, USER_FIELD)
        journey = _text_field(payload, JOURNEY_FIELD)
        if journey:
            try:
                await self._contacts.card_opened(journey)
            except Exception:  # counting must never cost the customer their card
                log.exception("could not count the opening of a card")
        return self._html(200, card=card, error=None, watermark=watermark)

    async def qr_png(self, request: web.Request) -> web.Response:
        wait = self._throttle.retry_after(client_address(request))
        if wait is not None:
            response = self._error(_TOO_MANY)
            response.headers["Retry-After"] = str(wait)
            return response
        try:
            payload, contact = await self._resolve(request.match_info["token"])
        except _Refused as refused:
            return self._error(refused.view)
        watermark = _text_field(payload, USER_FIELD)
        card_id = payload.get(CARD_FIELD)
        picture = None
        if isinstance(card_id, int) and contact.wecom_userid:
            picture = await self._contacts.wecom_qr(card_id, contact)
        if picture is None and contact.qr_url and _is_picture(contact.qr_url):
            picture = await self._contacts.fetch_image(contact.qr_url)
            if picture is None:
                return self._error(_QR_UNAVAILABLE)
        try:
            # Rendering is CPU work of tens of milliseconds: keep it off the event loop.
            if picture is not None:
                png = await asyncio.to_thread(watermark_png, picture, watermark)
            elif contact.qr_url:
                png = await asyncio.to_thread(render_qr_png, contact.qr_url, watermark)
            elif contact.wecom_userid:
                return self._error(_QR_UNAVAILABLE)  # WeCom is failing; the admins are told
            else:  # never a guessed link: WeChat's scanner may not honour it
                return self._error(_NO_QR)
        except ValueError:
            log.exception(
                "card QR for contact %s cannot be drawn; check the contact's qr_url",
                payload[CONTACT_FIELD],
            )
            return self._error(_QR_UNAVAILABLE)
        return web.Response(body=png, content_type="image/png", headers=SECURITY_HEADERS)

    async def _resolve(self, token: str) -> tuple[LinkPayload, CardContact]:
        try:
            payload = self._signer.verify(token)
        except LinkExpired:
            raise _Refused(_EXPIRED) from None
        except LinkTampered as exc:
            log.info("card link refused: %s", exc)
            raise _Refused(_TAMPERED) from None
        contact_id = payload.get(CONTACT_FIELD)
        if not isinstance(contact_id, int):  # signed by us, but not a card link
            raise _Refused(_TAMPERED)
        contact = await self._contacts.contact_for_card(contact_id)
        if contact is None:
            raise _Refused(_NOT_FOUND)
        return payload, contact

    def _error(self, view: _ErrorView) -> web.Response:
        return self._html(view.status, card=None, error=view, watermark="")

    def _html(
        self, status: int, *, card: _CardView | None, error: _ErrorView | None, watermark: str
    ) -> web.Response:
        html = self._template.render(card=card, error=error, watermark=watermark)
        return web.Response(
            text=html,
            status=status,
            content_type="text/html",
            charset="utf-8",
            headers=SECURITY_HEADERS,
        )


def _is_picture(url: str) -> bool:
    return url.split("?", 1)[0].lower().endswith(IMAGE_SUFFIXES)


def _text_field(payload: LinkPayload, name: str) -> str:
    value = payload.get(name, "")
    return value if isinstance(value, str) else str(value)
