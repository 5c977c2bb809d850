"""Runs of Han characters read character by character give pypinyin's own reading: the same
syllables as ``lazy_pinyin`` reading the whole run, polyphones in their phrases included."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from pypinyin import lazy_pinyin
from pypinyin.constants import PHRASES_DICT

from bot.understanding.pinyin import (
    _fuzzy_syllable,
    _read_by_character,
    _unusual_readings,
    char_pinyin,
    run_pinyin,
)

HERE = Path(__file__).parent
_HAN_RUN_RE = re.compile(r"[\u4e00-\u9fff]+")


def pypinyin_reading(run: str) -> tuple[str, ...]:
    """What the intents compared before runs were read character by character."""
    syllables = lazy_pinyin(run)
    if len(syllables) != len(run):
        return tuple(char_pinyin(ch) for ch in run)
    return tuple(_fuzzy_syllable(s) for s in syllables)


def corpus_runs() -> list[str]:
    runs: set[str] = set()
    for path in sorted(HERE.rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                runs.update(_HAN_RUN_RE.findall(json.loads(line)["text"]))
    return sorted(runs)


def made_up_runs(count: int) -> list[str]:
    """Runs mixing the corpus's characters, the phrases that read a character unusually (长大,
    了解, 重新…), those characters alone, and dictionary phrases side by side."""
    rng = random.Random(7)
    chars = sorted({ch for run in corpus_runs() for ch in run})
    unusual = _unusual_readings()
    phrases = sorted({p for places in unusual.values() for ps in places.values() for p in ps})
    pieces = chars + phrases + sorted(unusual)
    words = list(PHRASES_DICT)
    runs = []
    for _ in range(count):
        runs.append("".join(rng.choice(pieces) for _ in range(rng.randint(1, 5))))
        runs.append("".join(rng.choice(words) for _ in range(rng.randint(1, 3))))
        runs.append("".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(rng.randint(1, 6))))
    return runs


@pytest.mark.parametrize("source", ["corpus", "made up"])
def test_a_run_reads_as_pypinyin_reads_it(source: str) -> None:
    runs = corpus_runs() if source == "corpus" else made_up_runs(1500)
    run_pinyin.cache_clear()
    differ = [run for run in runs if run_pinyin(run) != pypinyin_reading(run)]
    assert not differ, differ[:20]


def test_most_runs_need_no_cutting_into_phrases() -> None:
    runs = corpus_runs()
    by_character = [run for run in runs if _read_by_character(run) is not None]
    assert len(by_character) > len(runs) / 2


@pytest.mark.parametrize(
    ("run", "syllables"),
    [
        ("重新开始", ("cong", "xin", "kai", "si")),  # 重 in 重新: chong, folded
        ("很重", ("hen", "zong")),  # 重 alone: zhong
        ("我想了解一下", ("wo", "xiang", "liao", "jie", "yi", "xia")),  # 了 in 了解
        ("好了", ("hao", "le")),
    ],
)
def test_polyphones_read_in_their_phrase(run: str, syllables: tuple[str, ...]) -> None:
    run_pinyin.cache_clear()
    assert run_pinyin(run) == syllables
