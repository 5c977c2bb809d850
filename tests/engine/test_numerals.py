"""Numbers written out in Chinese are looked up instead of parsed by cn2an: every form in the
table is one cn2an reads as the same number, so nothing changes but the time it takes."""

from __future__ import annotations

import cn2an
import pytest

from bot.understanding.numerals import _parse_cn_integer, _written_numbers


def test_cn2an_reads_every_written_number_as_the_table_does() -> None:
    differ = {
        form: (number, cn2an.cn2an(form, "smart"))
        for form, number in _written_numbers().items()
        if cn2an.cn2an(form, "smart") != number
    }
    assert not differ, list(differ.items())[:20]


@pytest.mark.parametrize(
    ("form", "number"),
    [
        ("一百二十八", 128),
        ("两百", 200),
        ("两千零一十九", 2019),
        ("一千零一十", 1010),
        ("十五", 15),
        ("一十五", 15),
        ("壹佰贰拾捌", 128),
        ("玖仟玖佰玖拾玖", 9999),
        ("两", 2),
        ("一千二", 1200),
        ("一百五", 150),
        ("两万三千五百", 23500),
        ("一万二千八", 12800),
    ],
)
def test_the_table_holds_what_customers_write(form: str, number: int) -> None:
    assert _written_numbers()[form] == number


@pytest.mark.parametrize(
    ("text", "number"),
    [("3千2百", 3200), ("二零二五", 2025), ("一万零五十", 10050), ("幺五八", 158), ("零", 0)],
)
def test_other_forms_are_still_read_by_cn2an(text: str, number: int) -> None:
    assert text not in _written_numbers()
    assert _parse_cn_integer(text) == number
