"""The text catalogues, one TOML file per language; Chinese first, English second."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Literal

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")
_DIR = Path(__file__).parent


@cache
def catalogue(lang: Lang) -> dict[str, str]:
    with (_DIR / f"{lang}.toml").open("rb") as f:
        return {k: str(v) for k, v in tomllib.load(f).items()}


def money(cents: int, currency: str) -> str:
    """An amount as customers read it: ``¥128.50`` (or ``USD 12.00``)."""
    sign = "¥" if currency in ("CNY", "RMB") else f"{currency} "
    return f"{sign}{cents // 100}.{cents % 100:02d}"


class Texts:
    """One language's catalogue; ``say(key, **values)`` fills the placeholders."""

    def __init__(self, lang: Lang) -> None:
        self.lang: Lang = lang
        self._texts = catalogue(lang)

    def say(self, key: str, **values: object) -> str:
        return self._texts[key].format(**values)


def as_lang(value: str | None) -> Lang:
    return "en" if value == "en" else "zh"
