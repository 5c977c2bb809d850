"""The one error type for a refusal a person reads: an HTTP status and plain words in both
languages. Services raise it; the console maps it to a response in one place."""

from __future__ import annotations


class Refusal(Exception):
    """A refused request or action: the HTTP status to answer, and what to tell the person."""

    def __init__(self, status: int, zh: str, en: str) -> None:
        super().__init__(f"{zh} / {en}")
        self.status = status
        self.zh = zh
        self.en = en
