"""The scene a receipt's QR code carries: signed and opaque, never the order number.

``q1.<id>.<expiry>.<mac>`` (base 36 numbers, a 96-bit HMAC-SHA256 tag): the id names a row of
``order_qrs``, which holds the order number sealed. The whole scene stays under WeChat's
64-character limit. A changed byte, another deployment's code or an expired one is refused
before the database is asked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from datetime import UTC, datetime

from bot.clock import Clock

VERSION = "q1"
_TAG_BYTES = 12


class SceneRefused(Exception):
    """Not a scene of ours (forged, garbled, another deployment's)."""


class SceneExpired(SceneRefused):
    """A scene of ours whose code has expired."""


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


class SceneCodec:
    """Signs and reads scenes with keys derived from ``BILLBOT_SECRET_KEYS`` (newest first:
    codes made before a rotation still read)."""

    def __init__(self, secrets: Sequence[str], clock: Clock) -> None:
        self._keys = [
            hashlib.sha256(b"billbot-qr-scene\x00" + s.encode("utf-8")).digest() for s in secrets
        ]
        self._clock = clock

    def _tag(self, key: bytes, body: str) -> str:
        mac = hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()[:_TAG_BYTES]
        return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")

    def make(self, qr_id: int, expires_at: datetime) -> str:
        body = f"{VERSION}.{_b36(qr_id)}.{_b36(int(expires_at.timestamp()))}"
        return f"{body}.{self._tag(self._keys[0], body)}"

    def read(self, scene: str) -> int:
        """The ``order_qrs`` id in a scene; SceneExpired or SceneRefused otherwise."""
        parts = scene.strip().split(".")
        if len(parts) != 4 or parts[0] != VERSION or len(scene) > 64:
            raise SceneRefused("not a billbot scene")
        body = ".".join(parts[:3])
        if not any(hmac.compare_digest(self._tag(k, body), parts[3]) for k in self._keys):
            raise SceneRefused("bad signature")
        try:
            qr_id, expires = int(parts[1], 36), int(parts[2], 36)
        except ValueError:
            raise SceneRefused("garbled") from None
        if datetime.fromtimestamp(expires, UTC) <= self._clock.now():
            raise SceneExpired("expired")
        return qr_id
