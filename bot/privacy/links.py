"""Signed, expiring links for the contact card page.

A token is ``base64url(compact JSON payload with "exp") "." base64url(HMAC-SHA256)``. The
payload is signed, not encrypted: put only masked or harmless fields in it. Keys rotate by
listing the new one first; tokens signed with any listed key stay valid until they expire.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bot.clock import Clock

LinkPayload = dict[str, str | int]

EXPIRY_FIELD = "exp"
CARD_LIFETIME = timedelta(minutes=30)  # a card link, and the WeCom contact way behind it
# Separates this key from the other uses of the same secret (field encryption, blind index).
_KDF_INFO = b"billbot-card-link"
_MAX_TOKEN_LENGTH = 2048  # far above a real card token; refuses oversized input cheaply
_B64URL = re.compile(r"[A-Za-z0-9_-]+")


class LinkError(Exception):
    """A card link that cannot be honoured."""


class LinkTampered(LinkError):
    """Malformed, or signed by no key we hold: the page answers 403."""


class LinkExpired(LinkError):
    """Genuine but past its expiry: the page answers 410 and says how to get a fresh one."""

    def __init__(self, expired_at: datetime) -> None:
        super().__init__(f"card link expired at {expired_at.isoformat()}")
        self.expired_at = expired_at


def derive_link_key(secret: str) -> bytes:
    """The HMAC key for card links, derived so the raw secret serves no two purposes."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KDF_INFO)
    return hkdf.derive(secret.encode("utf-8"))


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Strict, canonical base64url without padding; anything else is tampering."""
    if not _B64URL.fullmatch(text):
        raise LinkTampered("not base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise LinkTampered("not base64url") from None
    if _b64encode(raw) != text:  # one token per payload: no alternative encodings
        raise LinkTampered("non-canonical base64url")
    return raw


class LinkSigner:
    """Signs and verifies card-link tokens; ``keys`` are secrets, newest first."""

    def __init__(self, keys: Sequence[str], clock: Clock, ttl: timedelta = CARD_LIFETIME) -> None:
        if not keys:
            raise ValueError("LinkSigner needs at least one key (BILLBOT_SECRET_KEYS)")
        if ttl <= timedelta(0):
            raise ValueError("LinkSigner ttl must be positive")
        self._keys = tuple(derive_link_key(k) for k in keys)
        self._clock = clock
        self._ttl_seconds = int(ttl.total_seconds())

    @property
    def clock(self) -> Clock:
        """The clock expiry is measured by, for pages that say how long a link has left."""
        return self._clock

    def sign(self, payload: Mapping[str, str | int]) -> str:
        """A URL-safe token carrying ``payload`` plus an ``exp`` of now + ttl (unix seconds)."""
        if EXPIRY_FIELD in payload:
            raise ValueError(f"payload field {EXPIRY_FIELD!r} is reserved for the expiry")
        data: LinkPayload = dict(payload)
        data[EXPIRY_FIELD] = int(self._clock.now().timestamp()) + self._ttl_seconds
        body = _b64encode(
            json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        )
        return f"{body}.{_b64encode(self._mac(self._keys[0], body))}"

    def verify(self, token: str) -> LinkPayload:
        """The payload (with ``exp``), or ``LinkTampered`` / ``LinkExpired``."""
        if not isinstance(token, str) or len(token) > _MAX_TOKEN_LENGTH:
            raise LinkTampered("not a card token")
        body, dot, signature_text = token.partition(".")
        if not dot:
            raise LinkTampered("no signature")
        signature = _b64decode(signature_text)
        _b64decode(body)  # format first, so garbage never reaches the MAC
        if not any(hmac.compare_digest(self._mac(key, body), signature) for key in self._keys):
            raise LinkTampered("bad signature")
        payload = self._parse(_b64decode(body))
        expires = int(payload[EXPIRY_FIELD])
        if int(self._clock.now().timestamp()) >= expires:
            raise LinkExpired(datetime.fromtimestamp(expires, UTC))
        return payload

    @staticmethod
    def _mac(key: bytes, body: str) -> bytes:
        return hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()

    @staticmethod
    def _parse(raw: bytes) -> LinkPayload:
        # The signature is already good, so a bad shape here means a token from elsewhere
        # (another deployment sharing the key, a future format): still refused as tampered.
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise LinkTampered("payload is not JSON") from None
        if not isinstance(data, dict):
            raise LinkTampered("payload is not an object")
        payload: LinkPayload = {}
        for name, value in data.items():
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise LinkTampered(f"payload field {name!r} has an unexpected type")
            payload[name] = value
        if not isinstance(payload.get(EXPIRY_FIELD), int):
            raise LinkTampered("payload has no expiry")
        return payload
