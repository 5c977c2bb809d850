"""Both catalogues say the same things with the same placeholders."""

from __future__ import annotations

import string

import pytest

from bot.texts import LANGS, Lang, catalogue


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


@pytest.mark.parametrize("lang", LANGS)
def test_examples_in_the_catalogue_are_no_real_orders_values(lang: Lang) -> None:
    """ "e.g. 128.50" for the demo order that costs 128.50 would hand out the answer: every
    example is a value no demo order has."""
    from bot.demo import DEMO_ORDERS

    texts = " ".join(catalogue(lang).values())
    for order in DEMO_ORDERS:
        amount = f"{order.amount_cents // 100}.{order.amount_cents % 100:02d}"
        assert amount not in texts and order.order_no not in texts
        for secret in (order.card_last4, order.tracking_no):
            assert secret is None or secret not in texts
