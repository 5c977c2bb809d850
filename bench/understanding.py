"""What language understanding costs per customer message, as one turn runs it.

    .venv/bin/python bench/understanding.py [--samples N] [--profile]

A text turn owned by the bot runs ``detect_language`` (only for a message longer than three
characters: bot/engine/dispatcher.py) and ``understand(text, shapes)`` (bot/flows/dialogue.py:
order number, amount and intent at once; the later steps reuse what it found). Shapes are the
merchant's, learned from the corpus's orders.txt as the dispatcher learns them from the orders
table. A turn the agent owns runs only ``detect_intent``: printed on its own line.

Lines: tests/engine/corpus/positive.jsonl + negative.jsonl (915), "short" those of at most 12
characters (509); the 40 shared utterances; and the demo dialogue. Each figure is the mean
over the lines of each line's best of N runs (perf_counter_ns, timer overhead taken off; a
line's runs are spread over the whole measurement, so a busy spell of the machine spoils only
some of them), in µs per message, with "×" its ratio to a baseline in the same process (NFKC +
casefold of the line).

"warm" runs each line right after itself, so caches keyed on a message serve it; "cold" empties
those caches before every run, as if every message were new. The one-time tables stay built and
VOCABULARY_CACHES (pinyin of one character or one dictionary word) stay warm: a running bot has
met the common ones after its first few hundred messages.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import pstats
import sys
import time
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bot.understanding  # noqa: E402
from bot.demo import DEMO_DIALOGUE  # noqa: E402
from bot.understanding import detect_intent, detect_language, understand  # noqa: E402
from bot.understanding.order_shapes import OrderShapes  # noqa: E402

CORPUS = ROOT / "tests" / "engine" / "corpus"
UTTERANCES = ROOT / "tests" / "engine" / "corpus_utterances.jsonl"
DIALOGUE = DEMO_DIALOGUE
SHORT_CHARS = 12
VOCABULARY_CACHES = frozenset({"char_pinyin", "_word_pinyin", "_reading_alone", "_folded"})

SHAPES = OrderShapes.learn(
    line.strip() for line in (CORPUS / "orders.txt").read_text().splitlines() if line.strip()
)


def read_texts(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines if line.strip()]


def bot_turn(text: str) -> None:
    """What a bot-owned text turn asks of bot.understanding."""
    if len(text) > 3:
        detect_language(text)
    understand(text, SHAPES)


def agent_turn(text: str) -> None:
    """What a turn the agent owns asks: is it a withdrawal of consent?"""
    detect_intent(text)


def baseline(text: str) -> None:
    unicodedata.normalize("NFKC", text).casefold()


def message_caches() -> list[Callable[[], None]]:
    """``cache_clear`` of every functools cache in bot.understanding keyed on a message or a
    part of one: not the one-time tables (maxsize 1), not VOCABULARY_CACHES."""
    clears: list[Callable[[], None]] = []
    for name, module in sorted(sys.modules.items()):
        if not name.startswith(bot.understanding.__name__) or module is None:
            continue
        for value in vars(module).values():
            params = getattr(value, "cache_parameters", None)
            if not callable(params) or params()["maxsize"] == 1:
                continue
            if value.__name__ not in VOCABULARY_CACHES and value.cache_clear not in clears:
                clears.append(value.cache_clear)
    return clears


def best_ns(
    run: Callable[[str], None], texts: Sequence[str], samples: int, cold: bool, inner: int = 1
) -> float:
    """Mean over ``texts`` of each text's best time of ``samples`` runs (each ``inner`` calls;
    cold: caches emptied before each run, warm: right after a run of the same text), timer
    overhead taken off. Each run is short, and a text's runs are spread over the whole
    measurement (one pass over all texts per sample), so its best is a run nothing else
    interrupted, even on a busy machine."""
    clears = message_caches() if cold else []
    clock = time.perf_counter_ns
    overhead = min(-clock() + clock() for _ in range(1000))
    for text in texts:
        run(text)  # warm: one-time tables, imports, the interpreter's own caches
    best = [float("inf")] * len(texts)
    gc.disable()
    try:
        for _ in range(samples):
            for index, text in enumerate(texts):
                for clear in clears:
                    clear()
                if not cold:
                    run(text)  # warm: the message was just read
                started = clock()
                for _ in range(inner):
                    run(text)
                best[index] = min(best[index], clock() - started - overhead)
    finally:
        gc.enable()
    return sum(max(b, 0) for b in best) / len(texts) / inner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=25, help="best of this many (default 25)")
    parser.add_argument("--profile", action="store_true", help="cProfile cold passes instead")
    args = parser.parse_args()

    corpus = read_texts(CORPUS / "positive.jsonl") + read_texts(CORPUS / "negative.jsonl")
    groups = {
        "short": [t for t in corpus if len(t) <= SHORT_CHARS],
        "all": corpus,
        "utterances": read_texts(UTTERANCES),
        "dialogue": DIALOGUE,
    }
    if args.profile:
        profiler = cProfile.Profile()
        clears = message_caches()
        profiler.enable()
        for _ in range(args.samples):
            for clear in clears:
                clear()
            for text in corpus:
                bot_turn(text)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        return

    print(f"µs per message, each line's best of {args.samples}; × = ratio to NFKC+casefold")
    print(f"{'lines':12} {'n':>4} {'base':>6}  {'cold':>7} {'×':>5}  {'warm':>7} {'×':>5}")
    for name, texts in groups.items():
        base = best_ns(baseline, texts, args.samples, cold=False, inner=50)
        cold = best_ns(bot_turn, texts, args.samples, cold=True)
        warm = best_ns(bot_turn, texts, args.samples, cold=False)
        print(
            f"{name:12} {len(texts):4} {base / 1000:6.2f}  {cold / 1000:7.1f} {cold / base:5.0f}"
            f"  {warm / 1000:7.1f} {warm / base:5.0f}"
        )
    short = groups["short"]
    cold = best_ns(agent_turn, short, args.samples, cold=True)
    warm = best_ns(agent_turn, short, args.samples, cold=False)
    print(
        f"detect_intent alone (an agent's turn), short lines: cold {cold / 1000:.1f}, "
        f"warm {warm / 1000:.1f}"
    )


if __name__ == "__main__":
    main()
