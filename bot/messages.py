"""The channel-neutral message every channel turns its webhook call into."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class InboundKind(StrEnum):
    TEXT = "text"
    VOICE = "voice"  # carries WeChat's speech recognition as text, when it has one
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"
    MENU = "menu"  # menu clicks and other events that carry a key
    OTHER = "other"  # image, location, link, video, file…


@dataclass(frozen=True, slots=True)
class Inbound:
    """One customer message: who, on which channel, what, and the key that makes it unique.

    ``dedup_key`` is the MsgId for messages and FromUserName+CreateTime+Event for events,
    exactly as WeChat redelivers them.
    """

    channel: str  # "wechat" | "wecom" | "dev"
    user_id: str  # the OpenID (or WeCom UserID)
    kind: InboundKind
    text: str
    dedup_key: str
    raw_type: str = ""  # WeChat's MsgType/Event, for logs and guidance

    @property
    def record_key(self) -> str:
        """The key of this delivery's record (``processed_messages``): unique across channels."""
        return f"{self.channel}:{self.dedup_key}"
