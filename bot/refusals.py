"""The one error type for a refusal a person reads: an HTTP status and plain words in both
languages. Services raise it; the console maps it to a response in one place."""

from __future__ import annotations


class Refusal(Exception):
    """A refused request or action: the HTTP status to answer, what to tell the person, and
    optionally a stable ``key`` naming the case (for scripts and tests; the words may change)."""

    def __init__(self, status: int, zh: str, en: str, *, key: str | None = None) -> None:
        super().__init__(f"{zh} / {en}")
        self.status = status
        self.zh = zh
        self.en = en
        self.key = key
