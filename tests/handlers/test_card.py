"""The card page over a real aiohttp server: masked contact, watermarked QR, friendly refusals."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from PIL import Image
from pytest_aiohttp import AiohttpClient

from bot.clock import FakeClock
from bot.handlers.card import QR_IMAGES_PER_MINUTE, CardContact, card_routes
from bot.privacy.links import LinkSigner
from bot.privacy.watermark import render_qr_png
from bot.throttle import AddressThrottle

KEY = "test-card-key-0123456789abcdef"
FULL_WECHAT_ID = "wx_ab12cd89"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
Client = TestClient[web.Request, web.Application]


class DictContacts:
    """Our own in-memory ContactSource."""

    def __init__(self, contacts: dict[int, CardContact]) -> None:
        self.contacts = contacts
        self.opened: list[str] = []

    async def card_opened(self, journey: str) -> None:
        self.opened.append(journey)

    async def wecom_qr(self, card_id: int, contact: CardContact) -> bytes | None:
        return None

    async def fetch_image(self, url: str) -> bytes | None:
        return None

    async def contact_for_card(self, contact_id: int) -> CardContact | None:
        return self.contacts.get(contact_id)


CONTACTS = DictContacts(
    {
        7: CardContact(name="王小明 <售后>", wechat_id=FULL_WECHAT_ID, qr_url=None),
        8: CardContact(name="李华", wechat_id="wx_zz99yy88", qr_url="https://u.wechat.com/EXAMPLE"),
    }
)


def card_payload(contact_id: int = 7) -> dict[str, str | int]:
    return {"c": contact_id, "o": "3456", "u": "oAbC****12", "r": "订单尾号3456"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def signer(clock: FakeClock) -> LinkSigner:
    return LinkSigner([KEY], clock)


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, signer: LinkSigner, clock: FakeClock) -> Client:
    app = web.Application()
    throttle = AddressThrottle(QR_IMAGES_PER_MINUTE, timedelta(minutes=1), clock)
    app.add_routes(card_routes(signer, CONTACTS, throttle))
    return await aiohttp_client(app)


def assert_private_headers(response: ClientResponse) -> None:
    headers = response.headers
    assert headers["Cache-Control"] == "no-store"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "noindex" in headers["X-Robots-Tag"]
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "img-src 'self'" in csp
    assert "style-src 'unsafe-inline'" in csp
    assert "script-src" not in csp


async def test_card_page_shows_the_masked_contact(client: Client, signer: LinkSigner) -> None:
    token = signer.sign(card_payload())
    response = await client.get(f"/card/{token}")
    assert response.status == 200
    assert response.content_type == "text/html"
    html = await response.text()
    assert "王小明 &lt;售后&gt;" in html  # autoescaped
    assert "wx_ab****89" in html
    assert FULL_WECHAT_ID not in html
    assert "ab12cd89" not in html
    assert "订单尾号3456" in html
    assert f'<img src="/card/{token}/qr.png"' in html
    assert "长按识别二维码添加客服" in html
    assert "Long-press the QR code to add the contact" in html
    assert "20:30" in html  # FakeClock starts 12:00 UTC; +30 min is 20:30 in China
    assert "oAbC****12" in html  # the watermark
    assert "pointer-events: none" in html
    assert 'lang="zh-CN"' in html
    assert 'name="viewport"' in html
    assert_private_headers(response)


async def test_qr_png_encodes_a_watermarked_code(client: Client, signer: LinkSigner) -> None:
    for contact_id in (8,):
        response = await client.get(f"/card/{signer.sign(card_payload(contact_id))}/qr.png")
        assert response.status == 200
        assert response.content_type == "image/png"
        body = await response.read()
        assert body.startswith(PNG_MAGIC)
        assert Image.open(io.BytesIO(body)).width >= 200
        assert_private_headers(response)


async def test_a_contact_without_a_qr_code_gets_no_guessed_link(
    client: Client, signer: LinkSigner
) -> None:
    """No qr_url (and no WeCom): a kind page, never a QR of a guessed weixin:// link."""
    response = await client.get(f"/card/{signer.sign(card_payload(7))}/qr.png")
    assert response.status == 404
    assert response.content_type == "text/html"
    assert FULL_WECHAT_ID not in await response.text()


@pytest.mark.parametrize(
    ("contact_id", "encoded"),
    [
        (8, "https://u.wechat.com/EXAMPLE"),  # the contact's own QR URL
    ],
)
async def test_qr_encodes_the_contact_with_the_customer_watermark(
    client: Client, signer: LinkSigner, contact_id: int, encoded: str
) -> None:
    # Rendering is deterministic, so the same data and watermark give the same bytes.
    response = await client.get(f"/card/{signer.sign(card_payload(contact_id))}/qr.png")
    assert await response.read() == render_qr_png(encoded, "oAbC****12")


@pytest.mark.parametrize("suffix", ["", "/qr.png"])
async def test_tampered_link_is_403(client: Client, signer: LinkSigner, suffix: str) -> None:
    body, _ = signer.sign(card_payload()).split(".")
    other_signature = LinkSigner(["another-key-0123456789abcdef"], signer.clock).sign(
        card_payload()
    )
    forged = f"{body}.{other_signature.split('.')[1]}"
    for token in (forged, "garbage", "a.b"):
        response = await client.get(f"/card/{token}{suffix}")
        assert response.status == 403
        html = await response.text()
        assert "链接无效" in html
        assert "This link is not valid" in html
        assert "Traceback" not in html
        assert_private_headers(response)


@pytest.mark.parametrize("suffix", ["", "/qr.png"])
async def test_expired_link_is_410(
    client: Client, signer: LinkSigner, clock: FakeClock, suffix: str
) -> None:
    token = signer.sign(card_payload())
    clock.advance(timedelta(minutes=31))
    response = await client.get(f"/card/{token}{suffix}")
    assert response.status == 410
    html = await response.text()
    assert "链接已过期" in html
    assert "订单号" in html  # tells the customer to send the order number again
    assert "send your order number again" in html
    assert_private_headers(response)


@pytest.mark.parametrize("suffix", ["", "/qr.png"])
async def test_unknown_contact_is_404(client: Client, signer: LinkSigner, suffix: str) -> None:
    response = await client.get(f"/card/{signer.sign(card_payload(999))}{suffix}")
    assert response.status == 404
    html = await response.text()
    assert "找不到" in html
    assert "We cannot find this contact card" in html
    assert_private_headers(response)


async def test_signed_token_without_contact_is_403(client: Client, signer: LinkSigner) -> None:
    response = await client.get(f"/card/{signer.sign({'o': '3456'})}")
    assert response.status == 403


async def test_qr_images_are_rate_limited_per_address(
    client: Client, signer: LinkSigner, clock: FakeClock
) -> None:
    """Each QR image may cost an image fetch or a WeCom call: one address gets a minute's
    allowance, then a 429 page that says to wait, until the minute is over."""
    url = f"/card/{signer.sign(card_payload(8))}/qr.png"
    for _ in range(QR_IMAGES_PER_MINUTE):
        assert (await client.get(url)).status == 200
    refused = await client.get(url)
    assert refused.status == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert_private_headers(refused)
    page = await client.get(f"/card/{signer.sign(card_payload(8))}")
    assert page.status == 200  # the page itself still opens
    clock.advance(timedelta(minutes=1))
    assert (await client.get(url)).status == 200
