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


# The words several places refuse with (the JSON API, the server-rendered console, the
# services): one copy each, so the pages and the API say the same thing.


def admins_only() -> Refusal:
    """An agent asked for what only an admin may do."""
    return Refusal(403, "只有管理员可以这样做。", "Only an admin can do this.", key="admins_only")


def unavailable() -> Refusal:
    """Something unforeseen failed while answering: the person may simply retry."""
    return Refusal(
        503,
        "服务暂时不可用，请稍后再试。",
        "Temporarily unavailable, please retry.",
        key="unavailable",
    )


class TooManyLogins(Refusal):
    """The login throttle's refusal: it also says when to try again (Retry-After)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            429,
            "登录尝试太频繁，请一分钟后再试。",
            "Too many login attempts from here; try again in a minute.",
            key="too_many_logins",
        )
        self.retry_after = retry_after
