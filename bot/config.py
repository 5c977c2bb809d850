"""Settings, built from a mapping (the environment plus an optional ``.env``), never at import."""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

from dotenv import dotenv_values

from bot.access_log import AccessLog
from bot.handoff.hours import ServiceHours


class Secret:
    """A string whose repr hides the value, so it never lands in a log or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    def __str__(self) -> str:
        return self.__repr__()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def reveal(self) -> str:
        return self._value


E = TypeVar("E", bound=StrEnum)
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class VerifyMode(StrEnum):
    AMOUNT = "amount"
    CARD_LAST4_DATE = "card_last4_date"
    TRACKING_NO = "tracking_no"


class EncryptMode(StrEnum):
    """Which Official Account callback bodies are accepted (WeChat's 消息加解密方式)."""

    SAFE = "safe"  # encrypted only; msg_signature over the ciphertext is what counts
    COMPAT = "compat"  # WeChat's transition mode: encrypted and plaintext bodies
    PLAIN = "plain"  # plaintext only, for accounts without an EncodingAESKey


class SettingsError(ValueError):
    """A setting has a value the bot cannot use; the message names the setting and the fix."""


# Demo credentials: they let `billbot demo` and `billbot chat` talk out of the box on a
# developer's machine. They are public, so they are refused outside demo/dev use by nothing
# but common sense: production sets its own (see .env.example).
DEMO_SECRET_KEY = "demo-only-secret-key-change-me-in-production-0001"
DEMO_APP_ID = "wxd0e0000000000001"
DEMO_APP_SECRET = "demo-app-secret"
DEMO_TOKEN = "billbotdemotoken"
DEMO_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def fresh_secrets() -> dict[str, str]:
    """New random values for every secret setting, in the formats WeChat and WeCom accept."""

    def token() -> str:  # WeChat's Token: 3–32 letters and digits
        alphabet = string.ascii_letters + string.digits
        return "".join(secrets.choice(alphabet) for _ in range(32))

    def aes_key() -> str:  # an EncodingAESKey: 32 random bytes, base64 without the "="
        return base64.b64encode(secrets.token_bytes(32)).decode()[:43]

    return {
        "BILLBOT_SECRET_KEYS": secrets.token_urlsafe(32),
        "WECHAT_TOKEN": token(),
        "WECHAT_AES_KEY": aes_key(),
        "WECOM_TOKEN": token(),
        "WECOM_AES_KEY": aes_key(),
    }


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///var/billbot.db"
# WeChat waits 5 s for a callback's answer; a turn still running after this many seconds is
# answered with "success" and its reply sent through the message API (bot/engine/late.py)
REPLY_DEADLINE_SECONDS = 4.0


@dataclass(frozen=True)
class WeChatCredentials:
    app_id: str
    app_secret: Secret
    token: Secret
    aes_key: Secret  # the 43-character EncodingAESKey; empty means plaintext only
    # None: safe when an AES key is set, else plain (what ``Settings.from_env`` decides)
    encrypt_mode: EncryptMode | None = None

    @property
    def mode(self) -> EncryptMode:
        if self.encrypt_mode is not None:
            return self.encrypt_mode
        return EncryptMode.SAFE if self.aes_key else EncryptMode.PLAIN


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = "http://127.0.0.1:8080"
    secret_keys: tuple[Secret, ...] = (Secret(DEMO_SECRET_KEY),)
    verify_mode: VerifyMode = VerifyMode.AMOUNT
    order_api_url: str = ""
    wechat: WeChatCredentials = field(
        default_factory=lambda: WeChatCredentials(
            DEMO_APP_ID, Secret(DEMO_APP_SECRET), Secret(DEMO_TOKEN), Secret(DEMO_AES_KEY)
        )
    )
    wechat_api_base: str = "https://api.weixin.qq.com"
    wecom_corp_id: str = ""
    wecom_agent_id: str = ""
    wecom_secret: Secret = field(default_factory=lambda: Secret(""))
    wecom_token: Secret = field(default_factory=lambda: Secret(""))
    wecom_aes_key: Secret = field(default_factory=lambda: Secret(""))
    wecom_api_base: str = "https://qyapi.weixin.qq.com"
    service_hours: str = ""  # "HH:MM-HH:MM" China time; empty: always open
    claim_lease_seconds: int = 120
    access_log: AccessLog = AccessLog.ERRORS
    order_lock_minutes: int = 30
    cards_per_day: int = 10
    recheck_every_minutes: int = 2  # an unknown but well-formed order is looked up again…
    recheck_for_minutes: int = 30  # …for this long, then a person takes over (0: never)
    order_pattern: str = ""  # BILLBOT_ORDER_PATTERN: this merchant's order numbers, as a regex
    reply_deadline_seconds: float = REPLY_DEADLINE_SECONDS
    # reverse proxies whose X-Forwarded-For names the client (login lockouts, rate limits)
    trusted_proxies: tuple[IPNetwork, ...] = ()
    # BILLBOT_FALLBACK_CONTACT: a contact id (C001) for orders whose own contact is missing or
    # off duty, and before "anyone on duty" for orders naming none; empty: nobody stands in
    fallback_contact: str = ""

    @property
    def wecom_enabled(self) -> bool:
        """WeCom is on when its corp id, 客户联系 secret, callback token and AES key are set."""
        return bool(
            self.wecom_corp_id and self.wecom_secret and self.wecom_token and self.wecom_aes_key
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from a mapping; unknown names are ignored, bad values explained."""

        def get(name: str, default: str) -> str:
            value = environ.get(name)
            return default if value is None or value.strip() == "" else value.strip()

        port_text = get("BILLBOT_PORT", "8080")
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise SettingsError(f"BILLBOT_PORT={port_text!r} is not a TCP port; use e.g. 8080")

        def choice(name: str, kind: type[E], default: E) -> E:
            text = get(name, default.value).lower()
            try:
                return kind(text)
            except ValueError:
                choices = " | ".join(m.value for m in kind)
                raise SettingsError(f"{name}={text!r} is not one of: {choices}") from None

        mode = choice("BILLBOT_VERIFY_MODE", VerifyMode, VerifyMode.AMOUNT)
        keys = tuple(
            Secret(k.strip())
            for k in get("BILLBOT_SECRET_KEYS", DEMO_SECRET_KEY).split(",")
            if k.strip()
        )
        if any(len(k.reveal()) < 16 for k in keys):
            raise SettingsError("BILLBOT_SECRET_KEYS: every key must be at least 16 characters")
        aes_key = get("WECHAT_AES_KEY", DEMO_AES_KEY)
        if aes_key and len(aes_key) != 43:
            raise SettingsError("WECHAT_AES_KEY must be the 43-character EncodingAESKey")
        encrypt_mode = choice(
            "WECHAT_ENCRYPT_MODE", EncryptMode, EncryptMode.SAFE if aes_key else EncryptMode.PLAIN
        )
        if encrypt_mode is not EncryptMode.PLAIN and not aes_key:
            raise SettingsError(
                f"WECHAT_ENCRYPT_MODE={encrypt_mode.value} needs WECHAT_AES_KEY (the"
                " EncodingAESKey); set it, or choose plain for an account without one"
            )
        order_api = get("BILLBOT_ORDER_API_URL", "")
        if order_api and not order_api.startswith(("http://", "https://")):
            raise SettingsError(
                f"BILLBOT_ORDER_API_URL={order_api!r} is not an http(s) URL; give e.g."
                " https://shop.example.com/api/orders, or leave it empty for the orders table"
            )
        hours = get("BILLBOT_SERVICE_HOURS", "")
        try:
            ServiceHours.parse(hours)
        except ValueError as exc:
            raise SettingsError(f"BILLBOT_SERVICE_HOURS: {exc}; leave empty for always") from None
        lease_text = get("BILLBOT_CLAIM_LEASE_SECONDS", "120")
        if not lease_text.isdigit() or int(lease_text) < 10:
            raise SettingsError(
                f"BILLBOT_CLAIM_LEASE_SECONDS={lease_text!r}: give a whole number of seconds, >= 10"
            )
        wecom = {
            name: get(name, "")
            for name in ("WECOM_CORP_ID", "WECOM_SECRET", "WECOM_TOKEN", "WECOM_AES_KEY")
        }
        missing = [name for name, value in wecom.items() if not value]
        if 0 < len(missing) < len(wecom):
            raise SettingsError(
                f"WeCom is half configured: {', '.join(missing)} missing. Set all of"
                " WECOM_CORP_ID, WECOM_SECRET (the 客户联系 secret), WECOM_TOKEN and"
                " WECOM_AES_KEY to turn WeCom on, or none of them to leave it off"
            )
        if wecom["WECOM_AES_KEY"] and len(wecom["WECOM_AES_KEY"]) != 43:
            raise SettingsError("WECOM_AES_KEY must be the 43-character EncodingAESKey")
        access_log = choice("BILLBOT_ACCESS_LOG", AccessLog, AccessLog.ERRORS)
        numbers: dict[str, int] = {}
        for name, default, least in (
            ("BILLBOT_ORDER_LOCK_MINUTES", "30", 1),
            ("BILLBOT_CARDS_PER_DAY", "10", 1),
            ("BILLBOT_RECHECK_EVERY_MINUTES", "2", 1),
            ("BILLBOT_RECHECK_FOR_MINUTES", "30", 0),
        ):
            text = get(name, default)
            if not text.isdigit() or int(text) < least:
                raise SettingsError(f"{name}={text!r}: give a whole number, at least {least}")
            numbers[name] = int(text)
        order_pattern = get("BILLBOT_ORDER_PATTERN", "")
        try:
            re.compile(order_pattern)
        except re.error as exc:
            raise SettingsError(
                f"BILLBOT_ORDER_PATTERN is not a regular expression ({exc}); e.g. DD\\d{{14}}"
            ) from None
        deadline_text = get("BILLBOT_REPLY_DEADLINE_SECONDS", str(REPLY_DEADLINE_SECONDS))
        try:
            deadline = float(deadline_text)
        except ValueError:
            deadline = 0.0
        if not 0 < deadline < 5:
            raise SettingsError(
                f"BILLBOT_REPLY_DEADLINE_SECONDS={deadline_text!r}: give seconds above 0 and"
                " below 5 (WeChat waits 5 s for an answer), e.g. 4"
            )
        proxies: list[IPNetwork] = []
        for text in get("BILLBOT_TRUSTED_PROXIES", "").split(","):
            if not text.strip():
                continue
            try:
                proxies.append(ipaddress.ip_network(text.strip(), strict=False))
            except ValueError:
                raise SettingsError(
                    f"BILLBOT_TRUSTED_PROXIES: {text.strip()!r} is not an address or network;"
                    " give e.g. 127.0.0.1,10.0.0.0/8"
                ) from None
        fallback_contact = get("BILLBOT_FALLBACK_CONTACT", "")
        if len(fallback_contact) > 128:
            raise SettingsError(
                "BILLBOT_FALLBACK_CONTACT is longer than a contact id can be (128 characters);"
                " give the contact column of one contact, e.g. C001, or leave it empty"
            )
        host = get("BILLBOT_HOST", "127.0.0.1")
        port = int(port_text)
        return cls(
            database_url=get("BILLBOT_DATABASE_URL", DEFAULT_DATABASE_URL),
            host=host,
            port=port,
            public_url=get("BILLBOT_PUBLIC_URL", f"http://{host}:{port}").rstrip("/"),
            secret_keys=keys,
            verify_mode=mode,
            order_api_url=get("BILLBOT_ORDER_API_URL", ""),
            wechat=WeChatCredentials(
                app_id=get("WECHAT_APP_ID", DEMO_APP_ID),
                app_secret=Secret(get("WECHAT_APP_SECRET", DEMO_APP_SECRET)),
                token=Secret(get("WECHAT_TOKEN", DEMO_TOKEN)),
                aes_key=Secret(aes_key),
                encrypt_mode=encrypt_mode,
            ),
            wechat_api_base=get("WECHAT_API_BASE", "https://api.weixin.qq.com").rstrip("/"),
            wecom_corp_id=get("WECOM_CORP_ID", ""),
            wecom_agent_id=get("WECOM_AGENT_ID", ""),
            wecom_secret=Secret(get("WECOM_SECRET", "")),
            wecom_token=Secret(get("WECOM_TOKEN", "")),
            wecom_aes_key=Secret(get("WECOM_AES_KEY", "")),
            wecom_api_base=get("WECOM_API_BASE", "https://qyapi.weixin.qq.com").rstrip("/"),
            service_hours=hours,
            claim_lease_seconds=int(lease_text),
            access_log=access_log,
            order_lock_minutes=numbers["BILLBOT_ORDER_LOCK_MINUTES"],
            cards_per_day=numbers["BILLBOT_CARDS_PER_DAY"],
            recheck_every_minutes=numbers["BILLBOT_RECHECK_EVERY_MINUTES"],
            recheck_for_minutes=numbers["BILLBOT_RECHECK_FOR_MINUTES"],
            trusted_proxies=tuple(proxies),
            order_pattern=order_pattern,
            reply_deadline_seconds=deadline,
            fallback_contact=fallback_contact,
        )

    def public_demo_secrets(self) -> list[str]:
        """Settings still empty or at their public demo value that a public server must change."""
        weak = []
        keys = [k.reveal() for k in self.secret_keys]
        if not keys or DEMO_SECRET_KEY in keys:
            weak.append("BILLBOT_SECRET_KEYS")
        if self.wechat.token.reveal() in ("", DEMO_TOKEN):
            weak.append("WECHAT_TOKEN")
        if self.wechat.mode is not EncryptMode.PLAIN and self.wechat.aes_key.reveal() in (
            "",
            DEMO_AES_KEY,
        ):
            weak.append("WECHAT_AES_KEY")
        return weak

    @classmethod
    def load(cls, env_file: Path | None = Path(".env")) -> Settings:
        """The process environment wins over ``.env``, which wins over the defaults."""
        merged: dict[str, str] = {}
        if env_file is not None and env_file.is_file():
            merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        merged.update(os.environ)
        return cls.from_env(merged)
