"""The console's words in the agent's language: Chinese, English, or both (Chinese first).

One TOML catalogue per language in ``catalogue/`` (the same keys in each; a test checks it).
Templates call a ``Labels`` for every word they show, so the page's JavaScript holds none.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Literal, Protocol, get_args

from markupsafe import Markup, escape

from bot.durations import say_duration
from bot.handoff.hours import CHINA
from bot.texts import Lang

ConsoleLang = Literal["zh", "en", "both"]
CONSOLE_LANGS: tuple[ConsoleLang, ...] = get_args(ConsoleLang)
DEFAULT_LANG: ConsoleLang = "zh"
_DIR = Path(__file__).parent / "catalogue"


@cache
def console_catalogue(lang: Lang) -> dict[str, str]:
    with (_DIR / f"{lang}.toml").open("rb") as f:
        return {k: str(v) for k, v in tomllib.load(f).items()}


def as_console_lang(value: str | None) -> ConsoleLang:
    """A stored or posted language, or the default for anything else."""
    for lang in CONSOLE_LANGS:
        if value == lang:
            return lang
    return DEFAULT_LANG


@dataclass(frozen=True)
class Key:
    """Another catalogue entry as a value: a status inside "会话{status}，不能回复。"."""

    key: str
    values: dict[str, object] = field(default_factory=dict)

    def in_lang(self, lang: Lang) -> str:
        return _say(lang, self.key, self.values)


@dataclass(frozen=True)
class Span:
    """A span of time as a value: "14 分 37 秒" or "14 min 37 s"."""

    seconds: float

    def in_lang(self, lang: Lang) -> str:
        return say_duration(self.seconds, lang)


class Login(Protocol):
    """What the words for a login's status need (``bot.console.auth.LoginState``)."""

    @property
    def status(self) -> str: ...
    @property
    def locked_until(self) -> datetime | None: ...
    @property
    def locked_seconds(self) -> float | None: ...


def _login_values(login: Login) -> dict[str, object]:
    """A lockout's end in China time, and how long it has left."""
    if login.locked_until is None:
        return {}
    at = login.locked_until.astimezone(CHINA).strftime("%H:%M")
    return {"at": at, "span": Span(login.locked_seconds or 0)}


def _say(lang: Lang, key: str, values: dict[str, object]) -> str:
    filled = {k: v.in_lang(lang) if isinstance(v, Key | Span) else v for k, v in values.items()}
    return console_catalogue(lang)[key].format(**filled)


def say_both(key: str, **values: object) -> tuple[str, str] | None:
    """``(zh, en)`` for a catalogue key (for the command line, which prints both), or None
    when the catalogue has no such key."""
    if key not in console_catalogue("zh"):
        return None
    zh, en = (_say(lang, key, values) for lang in ("zh", "en"))
    return zh, en


class Labels:
    """What the console says, in ``lang``. ``t(key)`` is markup for the page; ``t.plain(key)``
    is text for attributes (a confirmation, a placeholder, a notification)."""

    def __init__(self, lang: str | None) -> None:
        self.lang: ConsoleLang = as_console_lang(lang)
        self.langs: Sequence[Lang] = ("zh", "en") if self.lang == "both" else (self.lang,)

    @property
    def html_lang(self) -> str:
        return "en" if self.lang == "en" else "zh-CN"

    def __call__(self, key: str, **values: object) -> Markup:
        return self.words(*(_say(lang, key, values) for lang in ("zh", "en")))

    def plain(self, key: str, **values: object) -> str:
        return self.plain_words(*(_say(lang, key, values) for lang in ("zh", "en")))

    def words(self, zh: str, en: str) -> Markup:
        """Words given in both languages (a refusal's) as this agent reads them."""
        if self.lang == "zh" or zh == en:  # "English" is English in both catalogues
            return escape(zh)
        if self.lang == "en":
            return escape(en)
        return Markup('{} <span class="en" lang="en">{}</span>').format(zh, en)

    def plain_words(self, zh: str, en: str) -> str:
        if zh == en:
            return zh
        return {"zh": zh, "en": en}.get(self.lang, f"{zh} / {en}")

    def span(self, seconds: float) -> Markup:
        """A span of time with its units ("14 分 37 秒")."""
        return self.words(say_duration(seconds, "zh"), say_duration(seconds, "en"))

    def units(self, lang: Lang) -> str:
        """The unit words (day, hour, minute, second) the page's countdowns count in."""
        return console_catalogue(lang)["duration_units"]

    def login_status(self, login: Login) -> Markup:
        """A login's status: active, must change password, locked out until …, disabled."""
        return self(f"login_{login.status}", **_login_values(login))

    def plain_login_status(self, login: Login) -> str:
        return self.plain(f"login_{login.status}", **_login_values(login))

    def status(self, status: str) -> Markup:
        return self._known("status_", status)

    def reason(self, reason: str, failures: int) -> Markup:
        return self._known("reason_", reason, n=failures)

    def plain_reason(self, reason: str, failures: int) -> str:
        key = f"reason_{reason}"
        return self.plain(key, n=failures) if key in console_catalogue("zh") else reason

    def sender(self, sender: str) -> Markup:
        """Who wrote a transcript line: customer, bot, ``agent:<name>`` or ``note:<name>``."""
        kind, _, name = sender.partition(":")
        if kind in ("agent", "note") and name:
            return self(f"sender_{kind}", name=name)
        return self._known("sender_", sender)

    def _known(self, prefix: str, value: str, **values: object) -> Markup:
        """A value's words if the catalogue has them; else the value itself (a newer kind)."""
        key = f"{prefix}{value}"
        return self(key, **values) if key in console_catalogue("zh") else escape(value)
