"""The console's catalogues say the same things, with the units the durations use."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from bot.console import STATIC_DIR, TEMPLATES_DIR
from bot.console.labels import Key, Labels, Span, console_catalogue
from bot.durations import say_duration
from bot.texts import LANGS, Lang


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_console_catalogues_have_the_same_keys_and_placeholders() -> None:
    zh, en = console_catalogue("zh"), console_catalogue("en")
    assert zh.keys() == en.keys()
    for key in zh:
        assert placeholders(zh[key]) == placeholders(en[key]), key


@pytest.mark.parametrize("lang", LANGS)
def test_the_pages_countdowns_count_in_the_units_of_bot_durations(lang: Lang) -> None:
    units = console_catalogue(lang)["duration_units"].split(" ")
    said = [say_duration(seconds, lang).split(" ", 1)[1] for seconds in (86400, 3600, 60, 1)]
    assert units == said


def test_every_label_the_templates_use_is_in_the_catalogue() -> None:
    used: set[str] = set()
    for template in Path(TEMPLATES_DIR).glob("console*.html"):
        used |= set(re.findall(r"""\bt(?:\.plain)?\(["']([a-z_]+)["']""", template.read_text()))
    used = {key for key in used if not key.endswith("_")}  # a prefix: "lang_" ~ code
    assert used and used <= console_catalogue("zh").keys(), used - console_catalogue("zh").keys()


def test_the_pages_script_holds_no_words_of_its_own() -> None:
    for script in Path(STATIC_DIR).glob("console-*.js"):
        assert not re.search(r"[\u4e00-\u9fff]", script.read_text()), script.name


def test_an_agent_reads_chinese_english_or_both() -> None:
    assert Labels("zh")("queue") == "等待队列"
    assert Labels("en")("queue") == "Queue"
    assert Labels("both")("queue") == '等待队列 <span class="en" lang="en">Queue</span>'
    assert Labels("fr").lang == "zh"  # anything unknown reads as the default
    both = Labels("both").plain("window_open", span=Span(3725), n=4)
    assert (
        both == "微信回复窗口剩余 1 小时 2 分 / 剩余可回复 4 条"
        " / Reply window 1 h 2 min left · 4 replies left"
    )
    status = Labels("en").plain("blocked_status", status=Key("status_resolved"))
    assert status == "This conversation's status is Resolved; it cannot be answered."
    assert "&lt;b&gt;" in Labels("zh")("sender_agent", name="<b>")


def test_words_the_same_in_both_languages_are_said_once() -> None:
    assert Labels("both").plain("lang_en") == "English"
    assert Labels("both")("none") == "–"
