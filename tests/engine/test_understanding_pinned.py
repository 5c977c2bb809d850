"""Every corpus line, and lines made from them, is understood exactly as it was recorded.

``understanding_pinned.jsonl`` holds, for each message, what every public reader of
bot.understanding returns (understand with and without the merchant's shapes, the language,
the intent, amount, order number and its candidates, a numbered choice). It was written by the
code as it stood before the package was restructured for speed, so any change of behaviour,
even where the rate tests still pass, fails here with the message that changed.

After a deliberate change of behaviour, rewrite the fixture and review its diff:

    .venv/bin/python -m tests.engine.test_understanding_pinned
"""

from __future__ import annotations

import json
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.understanding import (
    OrderShapes,
    Understood,
    detect_intent,
    detect_language,
    order_candidates,
    parse_amount,
    parse_choice,
    parse_order_no,
    understand,
)

HERE = Path(__file__).parent
CORPUS = HERE / "corpus"
FIXTURE = HERE / "understanding_pinned.jsonl"
SOURCES = [
    CORPUS / "positive.jsonl",
    CORPUS / "negative.jsonl",
    CORPUS / "holdout" / "positive.jsonl",
    CORPUS / "holdout" / "negative.jsonl",
    HERE / "corpus_utterances.jsonl",
]
SHAPES = OrderShapes.learn(
    line.strip()
    for path in (CORPUS / "orders.txt", CORPUS / "holdout" / "orders.txt")
    for line in path.read_text(encoding="utf-8").splitlines()
    if line.strip()
)


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _understood(u: Understood) -> list[Any]:
    return [u.order_no, _money(u.amount), u.intent and u.intent.value, list(u.order_options)]


def observe(text: str) -> dict[str, Any]:
    """What each public reader makes of ``text``."""
    intent = detect_intent(text)
    return {
        "text": text,
        "shaped": _understood(understand(text, SHAPES)),
        "plain": _understood(understand(text)),
        "lang": detect_language(text),
        "intent": intent and intent.value,
        "amount": _money(parse_amount(text)),
        "order": parse_order_no(text),
        "candidates": order_candidates(text, SHAPES),
        "choice": parse_choice(text),
    }


_FULL_WIDTH = {c: c + 0xFEE0 for c in range(0x21, 0x7F)}


def messages() -> list[str]:
    """The corpus lines, then lines made from them: two joined (a sentence with two parts,
    two numbers), full-width, upper-case, prefixed with a negation or an order label."""
    lines = [
        json.loads(line)["text"]
        for path in SOURCES
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    rng = random.Random(20250503)
    joined = [
        rng.choice(lines)
        + rng.choice(["，", " ", "。", "\n", "", " but ", "但是"])
        + rng.choice(lines)
        for _ in range(600)
    ]
    sample = rng.sample(lines, 400)
    variants = [
        *(t.translate(_FULL_WIDTH) for t in sample[:100]),
        *(t.upper() for t in sample[100:200]),
        *("不要" + t for t in sample[200:300]),
        *("订单号 " + t for t in sample[300:]),
    ]
    return list(dict.fromkeys([*lines, *joined, *variants]))


def _load() -> list[dict[str, Any]]:
    lines = FIXTURE.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


PINNED = _load() if FIXTURE.is_file() else []


def test_the_fixture_covers_every_corpus_line() -> None:
    assert [p["text"] for p in PINNED] == messages()


@pytest.mark.parametrize("chunk", range(10))
def test_every_message_is_understood_as_pinned(chunk: int) -> None:
    changed = [
        f"{expected['text']!r}: {key} was {expected[key]!r}, now {got[key]!r}"
        for expected in PINNED[chunk::10]
        for got in [observe(expected["text"])]
        for key in expected
        if got[key] != expected[key]
    ]
    assert not changed, "\n".join(changed[:40])


def main() -> None:
    with FIXTURE.open("w", encoding="utf-8") as out:
        for text in messages():
            out.write(json.dumps(observe(text), ensure_ascii=False, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
