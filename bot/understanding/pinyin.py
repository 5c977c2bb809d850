"""Han characters read aloud, as voice recognition hears them: one folded pinyin syllable per
character (pypinyin's reading; zh/z, ch/c, sh/s, eng/en, ing/in folded together).

pypinyin reads polyphones in context (重新 = chong, 着急 = zhao): it cuts a run of characters
into dictionary phrases and reads each phrase. Most characters read the same in every phrase,
so a run is read character by character — each character's reading kept once known — unless
a phrase that reads one of its characters otherwise is in the run; only then is it cut as
pypinyin cuts it. The syllables are pypinyin's either way.
"""

from __future__ import annotations

from functools import lru_cache

from pypinyin import Style, lazy_pinyin
from pypinyin.constants import PHRASES_DICT, PINYIN_DICT
from pypinyin.seg.mmseg import seg as _phrase_segmenter
from pypinyin.style import convert as _convert_style


def _fuzzy_syllable(syllable: str) -> str:
    """Fold the sounds speech recognition confuses most: zh/z, ch/c, sh/s, eng/en, ing/in."""
    if syllable[:2] in ("zh", "ch", "sh"):
        syllable = syllable[0] + syllable[2:]
    if syllable.endswith(("eng", "ing")):
        syllable = syllable[:-1]
    return syllable


@lru_cache(maxsize=4096)
def char_pinyin(ch: str) -> str:
    """The character read on its own (``ch`` itself if it has no reading)."""
    syllables: list[str] = lazy_pinyin(ch)
    return _fuzzy_syllable(syllables[0]) if syllables else ch


@lru_cache(maxsize=8192)
def _word_pinyin(word: str) -> tuple[str, ...]:
    """pypinyin's reading of one word its segmenter cut (a dictionary phrase or a character)."""
    syllables: list[str] = lazy_pinyin([word])  # a list: read as one word, not cut again
    return tuple(_fuzzy_syllable(s) for s in syllables)


@lru_cache(maxsize=4096)  # some 1,500 distinct dictionary readings
def _folded(tone_marked: str) -> str:
    """A dictionary reading (``zhōng``) as pypinyin writes it in lazy_pinyin's style, folded."""
    return _fuzzy_syllable(_convert_style(tone_marked, Style.NORMAL, True))


def _listed_reading(ch: str) -> str:
    """The dictionaries' reading of the character on its own."""
    if (entry := PHRASES_DICT.get(ch)) is not None:
        return _folded(entry[0][0])
    if (listed := PINYIN_DICT.get(ord(ch))) is not None:
        return _folded(listed.split(",")[0])
    return ch


# character → (offset of the character in the phrase, phrase length) → such phrases
_Unusual = dict[str, dict[tuple[int, int], frozenset[str]]]


@lru_cache(maxsize=1)
def _unusual_readings() -> _Unusual:
    """The phrases that read a character otherwise than it reads on its own (长 in 长大, 了 in
    了解…), built from pypinyin's dictionary on first use (some 3,400 places in 47,000 phrases)."""
    found: dict[str, dict[tuple[int, int], set[str]]] = {}
    alone: dict[str, str] = {}
    for phrase, readings in PHRASES_DICT.items():
        if len(phrase) < 2:
            continue
        odd = len(readings) != len(phrase) or not all(readings)
        for offset, ch in enumerate(phrase):
            if ch not in alone:
                alone[ch] = _listed_reading(ch)
            if odd or _folded(readings[offset][0]) != alone[ch]:
                found.setdefault(ch, {}).setdefault((offset, len(phrase)), set()).add(phrase)
    return {
        ch: {place: frozenset(phrases) for place, phrases in places.items()}
        for ch, places in found.items()
    }


# A character's phrases that read it unusually: (start relative to it, length, phrases).
_Places = tuple[tuple[int, int, frozenset[str]], ...]


@lru_cache(maxsize=8192)
def _reading_alone(ch: str) -> tuple[str | None, _Places]:
    """The character's one reading outside the phrases of ``_unusual_readings`` (pypinyin's,
    checked against the dictionary that table was built from; else ``None``), and those
    phrases."""
    places = tuple(
        (-offset, length, phrases)
        for (offset, length), phrases in _unusual_readings().get(ch, {}).items()
    )
    syllables = _word_pinyin(ch)
    if len(syllables) != 1 or syllables[0] != _listed_reading(ch):
        return None, places
    return syllables[0], places


def _read_by_character(run: str) -> tuple[str, ...] | None:
    """The run read character by character, or ``None`` when a phrase in it (or a character
    whose reading is not known alone) needs pypinyin's cutting."""
    syllables: list[str] = []
    for index, ch in enumerate(run):
        syllable, places = _reading_alone(ch)
        if syllable is None:
            return None
        for shift, length, phrases in places:
            start = index + shift
            if start >= 0 and run[start : start + length] in phrases:
                return None
        syllables.append(syllable)
    return tuple(syllables)


@lru_cache(maxsize=2048)
def run_pinyin(run: str) -> tuple[str, ...]:
    """One folded syllable per character of a run of Han characters: ``lazy_pinyin(run)``'s
    reading, folded."""
    if (by_character := _read_by_character(run)) is not None:
        return by_character
    words = _phrase_segmenter.cut(run) if PHRASES_DICT else (run,)
    syllables = tuple(syllable for word in words for syllable in _word_pinyin(word))
    if len(syllables) != len(run):
        return tuple(char_pinyin(ch) for ch in run)
    return syllables
