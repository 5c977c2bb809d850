"""Both catalogues say the same things with the same placeholders."""

from __future__ import annotations

import string

from bot.texts import catalogue


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_catalogues_have_the_same_keys_and_placeholders() -> None:
    zh, en = catalogue("zh"), catalogue("en")
    assert zh.keys() == en.keys()
    for key in zh:
        assert placeholders(zh[key]) == placeholders(en[key]), key


def test_no_customer_text_mentions_codes_or_exceptions() -> None:
    for lang in ("zh", "en"):
        for key, text in catalogue(lang).items():
            lowered = text.lower()
            assert "error" not in lowered and "exception" not in lowered, (lang, key)
