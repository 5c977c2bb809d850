"""The agent console in a real browser: Debian's chromium, driven by Playwright.

The app and a fake WeChat API each listen on a real local port. An agent logs in with the
one-time password, chooses a new one, allows desktop notifications from the button, and
watches the queue; a customer says "转人工" over the Official Account protocol; the handoff
appears on the page without a reload (tab title, desktop notification); the agent claims it,
watches the claim's lease count down, sees WeChat refuse a reply in words, and replies again.
Screenshots of the console (desktop) and of the card page (phone) go to /tmp/shots/.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bot.app import create_app
from bot.channels.wechat_oa import OAClientCodec
from bot.clock import FakeClock
from bot.config import Settings
from bot.console.labels import console_catalogue
from bot.handoff.queue import lease_lapsed_event
from bot.handoff.send_failures import send_failure
from bot.keys import EVENTS, SESSIONS
from bot.texts import Lang
from storage.repositories import ContactRepository
from tests.fakes.wechat_api import FAKE_STATE, fake_wechat_app
from tests.handlers.conftest import said

try:
    from playwright.async_api import Page, async_playwright, expect
except ImportError:  # pragma: no cover - depends on the machine
    PLAYWRIGHT = False
else:
    PLAYWRIGHT = True

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
TIMEOUT_MS = 15_000
SHOTS = Path("/tmp/shots")
OPENID = "oBrowserCustomer000000000001"
AGENT = "小王"
NEW_PASSWORD = "a-new-long-password-42"
REPLY = "您好，我是客服小王，马上为您处理。"

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's chromium at /usr/bin/chromium: apt-get install chromium",
    ),
    pytest.mark.skipif(
        not PLAYWRIGHT,
        reason="needs Playwright's Python package: pip install playwright"
        " (no `playwright install`: the test drives /usr/bin/chromium)",
    ),
]


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """The app on a free port of 127.0.0.1; yields its base URL."""
    runner = web.AppRunner(app, access_log=None)  # the fake's request lines carry the secret
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


class Customer:
    """A customer on WeChat, posting signed, encrypted callbacks to the app's real port."""

    def __init__(
        self, http: aiohttp.ClientSession, base: str, settings: Settings, clock: FakeClock
    ) -> None:
        self.http = http
        self.url = f"{base}/wechat"
        self.codec = OAClientCodec(settings.wechat, clock, "safe")
        self.msg_id = 5000

    async def say(self, text: str) -> str:
        self.msg_id += 1
        query, body = self.codec.build_text(OPENID, text, self.msg_id)
        async with self.http.post(self.url, params=query, data=body) as resp:
            payload = await resp.read()
            assert resp.status == 200, payload
        return self.codec.read_reply(payload)


# Desktop notifications the page shows, recorded (headless chromium displays none).
RECORD_NOTIFICATIONS = """
window.shownNotifications = [];
const RealNotification = window.Notification;
class RecordedNotification extends RealNotification {
  constructor(title, options) {
    super(title, options);
    window.shownNotifications.push({ title, body: (options || {}).body || "" });
  }
}
window.Notification = RecordedNotification;
"""


async def log_in(page: Page, base: str, one_time_password: str) -> None:
    await page.goto(f"{base}/console")
    await page.get_by_test_id("login-name").fill(AGENT)
    await page.get_by_test_id("login-password").fill(one_time_password)
    await page.get_by_test_id("login-submit").click()
    # First sign-in: the page asks for a new password (it kept the one-time one).
    await expect(page.get_by_test_id("password-old")).to_have_count(0)
    await page.get_by_test_id("password-new").fill(NEW_PASSWORD)
    await page.get_by_test_id("password-confirm").fill(NEW_PASSWORD)
    await page.get_by_test_id("password-submit").click()
    await expect(page.get_by_test_id("claim-next")).to_be_visible()
    await expect(page.get_by_test_id("live")).to_have_attribute("data-state", "live")


async def test_agent_sees_handoff_live_claims_it_and_replies_through_wechat(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.console.auth import AgentDirectory

    started = time.monotonic()
    clock = FakeClock(datetime.now(UTC))  # the browser's clock is real: stay close to it
    base_settings = Settings.from_env({})
    fake = fake_wechat_app(
        clock, base_settings.wechat.app_id, base_settings.wechat.app_secret.reveal()
    )
    wechat = fake[FAKE_STATE]
    async with serving(fake) as wechat_api:
        settings = Settings.from_env(
            {
                "BILLBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/billbot.db",
                "WECHAT_API_BASE": wechat_api,
            }
        )
        app = create_app(settings, clock)
        async with (
            serving(app) as base,
            aiohttp.ClientSession() as http,
            async_playwright() as pw,
        ):
            agent, one_time_password = await AgentDirectory(app[SESSIONS], clock).create(
                AGENT, "agent"
            )
            browser = await pw.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            try:
                context = await browser.new_context(viewport={"width": 1280, "height": 800})
                await context.add_init_script(RECORD_NOTIFICATIONS)
                page = await context.new_page()
                page.set_default_timeout(TIMEOUT_MS)
                expect.set_options(timeout=TIMEOUT_MS)
                problems: list[str] = []
                page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
                page.on("console", lambda m: unexpected(m.type, m.text) and problems.append(m.text))

                await log_in(page, base, one_time_password)
                await expect(page.get_by_test_id("queue-item")).to_have_count(0)
                await expect(page).to_have_title(label("title"))

                # Desktop notifications are offered by a button, never asked for on load.
                notify = page.get_by_test_id("notify")
                await expect(notify).to_have_attribute("data-permission", "default")
                await expect(page.get_by_test_id("notify-enable")).to_be_visible()
                await context.grant_permissions(["notifications"], origin=base)
                await page.get_by_test_id("notify-enable").click()
                await expect(notify).to_have_attribute("data-permission", "granted")
                await expect(page.get_by_test_id("notify-enable")).to_be_hidden()
                await expect(page.get_by_test_id("notify-granted")).to_be_visible()

                # The sound is off until turned on, and the browser remembers it.
                sound = page.get_by_test_id("sound")
                await expect(sound).to_have_attribute("aria-pressed", "false")
                await sound.click()
                await page.reload()
                await expect(page.get_by_test_id("live")).to_have_attribute("data-state", "live")
                await expect(page.get_by_test_id("sound")).to_have_attribute("aria-pressed", "true")

                customer = Customer(http, base, settings, clock)
                await customer.say("你好")
                await customer.say("同意")
                answer = await customer.say("转人工")
                wechat.customer_wrote(OPENID, clock.now())

                # It arrives over the WebSocket: no reload, no polling from the test.
                item = page.get_by_test_id("queue-item")
                await expect(item).to_have_count(1)
                ref = await item.get_attribute("data-ref")
                assert ref and ref in answer, (ref, answer)
                await expect(item).to_contain_text(label("reason_asked"))
                await expect(item.get_by_test_id("wait")).to_contain_text("秒")
                await expect(page).to_have_title(f"(1) {label('title')}")
                shown = await page.wait_for_function("window.shownNotifications.length > 0")
                notes = await page.evaluate("window.shownNotifications")
                assert (
                    shown and notes[0]["title"] == label("notify_title") and ref in notes[0]["body"]
                )
                await page.screenshot(path=str(SHOTS / "console-desktop-queue.png"))

                await item.get_by_test_id("claim-button").click()
                transcript = page.get_by_test_id("transcript")
                await expect(transcript).to_contain_text("转人工")
                await expect(page.get_by_test_id("window-status")).to_contain_text(
                    words("window_open", n=5)
                )
                await expect(page.get_by_test_id("queue-item")).to_have_count(0)
                await expect(page).to_have_title(label("title"))

                # The claim's lease counts down on the page, in words with units.
                lease = page.get_by_test_id("lease-left")
                first = await lease.inner_text()
                assert re.fullmatch(r"(1 分 \d+ 秒|2 分)", first), first
                await expect(lease).not_to_have_text(first)
                assert seconds_of(await lease.inner_text()) < seconds_of(first)
                await page.screenshot(path=str(SHOTS / "console-desktop-claimed.png"))

                # Search: the reference as a customer would quote it finds the conversation.
                await page.get_by_test_id("search-q").fill(f"#{ref}")
                found = page.get_by_test_id("search-item")
                await expect(found).to_have_count(1)
                await expect(found).to_have_attribute("data-ref", ref)
                await expect(found.get_by_test_id("search-status")).to_contain_text(
                    label("status_claimed")
                )
                await page.get_by_test_id("search-q").fill("")

                # WeChat refuses: the agent reads why, and the draft is still there.
                wechat.fail_next(48001)
                await page.get_by_test_id("reply-text").fill(REPLY)
                await page.get_by_test_id("reply-send").click()
                refusal = send_failure(48001, "api unauthorized").zh
                await expect(page.get_by_test_id("reply-error")).to_contain_text(refusal)
                await expect(page.get_by_test_id("reply-text")).to_have_value(REPLY)
                assert wechat.sent == []
                # a live refresh of the conversation keeps both the words and the draft
                section = await page.query_selector("#conversation")
                await page.evaluate("htmx.trigger(document.body, 'console-changed')")
                await page.wait_for_function("section => !section.isConnected", arg=section)
                await expect(page.get_by_test_id("reply-error")).to_contain_text(refusal)
                await expect(page.get_by_test_id("reply-text")).to_have_value(REPLY)

                await page.get_by_test_id("reply-text").press("Control+Enter")
                await expect(transcript.locator('[data-sender="agent"]')).to_contain_text(REPLY)
                await expect(page.get_by_test_id("window-status")).to_contain_text(
                    words("window_open", n=4)
                )
                await expect(page.get_by_test_id("reply-text")).to_have_value("")
                await expect(page.get_by_test_id("reply-error")).to_have_count(0)
                assert (OPENID, REPLY) in wechat.sent

                await page.screenshot(path=str(SHOTS / "console-desktop.png"))

                # A claim that lapsed is explained in words the moment the server says so.
                lapsed = lease_lapsed_event(agent.id, 1, ref, timedelta(minutes=2))
                app[EVENTS].publish(lapsed)
                await expect(page.get_by_test_id("toast")).to_contain_text(str(lapsed["zh"]))

                # Chinese and English side by side: every label changes, nothing is lost.
                await page.get_by_test_id("lang").select_option("both")
                await expect(page.get_by_test_id("claim-next")).to_contain_text(
                    label("claim_next", "en")
                )
                await expect(page.get_by_test_id("live")).to_have_attribute("data-state", "live")
                await page.get_by_test_id("open-button").click()
                await expect(page.get_by_test_id("window-status")).to_contain_text(
                    words("window_open", "en")
                )
                await page.screenshot(path=str(SHOTS / "console-desktop-both.png"))
                assert problems == []
            finally:
                await browser.close()

    elapsed = time.monotonic() - started
    with capsys.disabled():
        print(f"\nconsole browser test: {elapsed:.1f} s")


def unexpected(kind: str, text: str) -> bool:
    """A console error other than a refusal's status (4xx/5xx are answers the page shows)."""
    refusal = re.search(r"status of [45]\d\d|Response Status Error Code [45]\d\d", text)
    return kind == "error" and refusal is None


def label(key: str, lang: Lang = "zh") -> str:
    """A console label, from its catalogue (rewording it is one catalogue edit)."""
    return console_catalogue(lang)[key]


def words(key: str, lang: Lang = "zh", **values: object) -> re.Pattern[str]:
    """A console message as the browser shows its text (see ``said``)."""
    return said(key, lang, html=False, **values)


def seconds_of(words: str) -> int:
    """ "1 分 58 秒" in seconds."""
    units = {"天": 86400, "小时": 3600, "分": 60, "秒": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+) (天|小时|分|秒)", words))


async def test_admin_opens_the_funnel_page_from_the_console(tmp_path: Path) -> None:
    from bot.console.auth import AgentDirectory

    clock = FakeClock(datetime.now(UTC))
    settings = Settings.from_env(
        {
            "BILLBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/billbot.db",
            "BILLBOT_PUBLIC_URL": "http://bot.test",
        }
    )
    app = create_app(settings, clock)
    async with serving(app) as base, aiohttp.ClientSession() as http, async_playwright() as pw:
        from bot.demo import seed_demo

        await seed_demo(app[SESSIONS], clock.now())
        customer = Customer(http, base, settings, clock)
        for text in ("DD20250503123456", "同意", "128.5"):
            card = await customer.say(text)
        _, one_time_password = await AgentDirectory(app[SESSIONS], clock).create(AGENT, "admin")
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            expect.set_options(timeout=TIMEOUT_MS)
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            await log_in(page, base, one_time_password)

            # the Contacts section: a contact goes off duty, the list says so, and it is stored
            await page.get_by_test_id("contacts-admin").locator("summary").click()
            row = page.locator('[data-testid="contact-row"][data-contact="bob"]')
            await expect(row.get_by_test_id("contact-duty")).to_have_text(label("on_duty"))
            await row.get_by_test_id("contact-toggle").click()
            await expect(row).to_have_attribute("data-on-duty", "false")
            await expect(row.get_by_test_id("contact-duty")).to_have_text(label("off_duty"))
            await expect(page.get_by_test_id("toast")).to_contain_text(words("duty_off_done"))
            async with app[SESSIONS]() as session:
                stored = await ContactRepository(session).find("bob")
            assert stored is not None and not stored.on_duty
            await page.get_by_test_id("team-admin").locator("summary").click()
            await expect(page.get_by_test_id("team-row")).to_have_count(1)
            await page.screenshot(path=str(SHOTS / "console-admin.png"), full_page=True)

            await page.get_by_test_id("funnel-link").click()
            chart = page.get_by_test_id("funnel-chart")
            await expect(chart).to_be_visible()
            await expect(chart.locator("rect")).to_have_count(11)
            table = page.get_by_test_id("funnel-table")
            await expect(table.locator('tr[data-step="card_issued"] td').nth(1)).to_have_text("1")
            await expect(page.get_by_test_id("funnel-queue")).to_be_visible()
            await page.screenshot(path=str(tmp_path / "funnel.png"), full_page=True)
            # a range with nothing in it: the same page, zero everywhere
            await page.get_by_test_id("funnel-since").fill("2001-01-01")
            await page.get_by_test_id("funnel-until").fill("2001-01-31")
            await page.get_by_test_id("funnel-apply").click()
            await expect(table.locator('tr[data-step="started"] td').nth(1)).to_have_text("0")

            # the customer's card page, as a phone shows it
            link = re.search(r"/card/[A-Za-z0-9_.~-]+", card)
            assert link, card
            phone = await browser.new_page(viewport={"width": 390, "height": 844})
            await phone.goto(f"{base}{link.group(0)}")
            await expect(phone.locator("img")).to_be_visible()
            await phone.screenshot(path=str(SHOTS / "card-phone.png"), full_page=True)
            assert problems == []
        finally:
            await browser.close()
