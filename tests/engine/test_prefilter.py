"""A pattern's hint is found wherever the pattern matches, so a message without the hint can
skip the pattern: checked on small patterns and on every hinted pattern of bot.understanding
over the corpus, clause by clause where the pattern reads clauses."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from bot.understanding import Intent, amounts, detect_intent, intents, normalize_text, scope
from bot.understanding.prefilter import _CASE_TRAPS_RE, Hint, hint

HERE = Path(__file__).parent


def messages() -> list[str]:
    texts = [
        "查订单",
        "我的订单",
        "帮我查一下最近的账单",
        "check my orders",
        "show me my recent orders",
    ]
    for path in sorted(HERE.rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                texts.append(json.loads(line)["text"])
    return [normalize_text(text) for text in texts]


@pytest.mark.parametrize(
    ("pattern", "present", "absent"),
    [
        (r"(?<!本)人工(?!智能)", ["本人工", "人工智能"], ["人", "工人"]),
        (r"\bhuman\b|(?<![a-z])agent(?![a-z])", ["humane", "AGENTS"], ["hu man", "agen"]),
        (r"^(?:我的|最近的?)(?:订单|账单)$", ["看我的订单吧", "最近"], ["订单", "的"]),
        (r"[一二三]十?[元块]", ["三十元", "二块"], ["三十", "十"]),
        (r"12315|投诉", ["打12315", "我要投诉"], ["1231", "诉"]),
    ],
)
def test_the_hint_is_in_every_text_the_pattern_may_match(
    pattern: str, present: list[str], absent: list[str]
) -> None:
    found = hint(re.compile(pattern, re.IGNORECASE))
    assert all(found.found_in(text) for text in present)
    assert not any(found.found_in(text) for text in absent)


def test_case_is_ignored_as_the_pattern_ignores_it() -> None:
    # re.IGNORECASE takes the dotless ı and the dotted İ for i, the long ſ for s: so does the hint
    pattern = re.compile(r"(?<![a-z])(?:this|list|kilo)(?![a-z])", re.IGNORECASE)
    for text in ("thıs", "THİS", "liſt", "THIS", "LiSt", "\u212aILO", "是THIS吗"):
        assert pattern.search(text)
        assert hint(pattern).found_in(text)


def test_the_case_traps_are_every_character_lower_would_read_otherwise() -> None:
    # beyond ASCII, what re.IGNORECASE takes for an ASCII letter, or lowers to ASCII letters
    letter = re.compile("[a-z]", re.IGNORECASE)
    traps = {
        chr(code)
        for code in range(0x80, sys.maxunicode + 1)
        if letter.fullmatch(chr(code)) or any(c.isascii() for c in chr(code).lower())
    }
    assert traps == set(_CASE_TRAPS_RE.pattern.strip("[]"))


@pytest.mark.parametrize("pattern", [r"a*", r"(?:x|)", r"\s+", r"[^,]+", r".{3}"])
def test_a_pattern_with_no_telling_needle_hints_everything(pattern: str) -> None:
    assert hint(re.compile(pattern)).found_in("anything at all, 任何")


def test_patterns_with_different_flags_cannot_share_a_hint() -> None:
    with pytest.raises(ValueError):
        hint(re.compile("a"), re.compile("b", re.IGNORECASE))


HINTED = [
    ("person", [scope._PERSON_RE, scope._COMPLAINT_RE, scope._BOT_RE], scope._PERSON_HINT),
    ("withdraw", [scope._WITHDRAW_RE], scope._WITHDRAW_HINT),
    *(
        (intent.value, [pattern], pattern_hint)
        for (intent, pattern), pattern_hint in zip(
            intents._STRONG_PATTERNS, intents._STRONG_HINTS, strict=True
        )
    ),
    ("prefixed", [amounts._PREFIXED_AMOUNT_RE], amounts._PREFIXED_HINT),
    ("unit", [amounts._UNIT_AMOUNT_RE], amounts._UNIT_HINT),
    ("keyword", [amounts._KEYWORD_AMOUNT_RE], amounts._KEYWORD_HINT),
    ("spent", [amounts._SPENT_RE], amounts._SPENT_HINT),
    ("minor", [amounts._MINOR_ONLY_RE], amounts._MINOR_ONLY_HINT),
]


@pytest.mark.parametrize(
    ("patterns", "pattern_hint"), [(p, h) for _, p, h in HINTED], ids=[n for n, _, _ in HINTED]
)
def test_every_hint_in_use_is_found_where_its_patterns_match(
    patterns: list[re.Pattern[str]], pattern_hint: Hint
) -> None:
    texts = messages()
    parts = [c for text in texts for c in scope._clauses(text)] + [t.lower() for t in texts]
    matched = [t for t in texts + parts if any(p.search(t) for p in patterns)]
    assert matched, "the corpus should exercise the pattern"
    assert all(pattern_hint.found_in(t) for t in matched)


SPLIT = ["hu man", "man ager", "ag ent please", "super visor", "op erator", "客 服", "人 工"]


def test_a_bare_request_for_a_person_is_hinted_as_written_even_with_spaces() -> None:
    """The bare-person pattern is matched without spaces; its hint is looked for in the text
    as the customer wrote it, spaces and all."""
    texts = [*messages(), *SPLIT]
    bare = [
        t
        for t in texts
        for c in scope._clauses(t)
        if scope._BARE_PERSON_RE.match(c.replace(" ", ""))
    ]
    assert set(SPLIT) <= set(bare)
    assert all(scope.person_verdict(t) is not scope.Verdict.ABSENT for t in bare)
    assert all(scope.in_scope(t) for t in bare)


@pytest.mark.parametrize("text", SPLIT)
def test_a_spaced_out_request_for_a_person_is_a_handoff(text: str) -> None:
    assert detect_intent(text) is Intent.HANDOFF
