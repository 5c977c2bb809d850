"""Field encryption: personal data is stored sealed with AES-GCM, under keys derived from
``BILLBOT_SECRET_KEYS`` (newest first) and never stored in the database.

A sealed value reads ``e1.<key id>.<base64url(nonce + ciphertext + tag)>``; the key id names
which secret sealed it, so values sealed under an older key still open while new writes use
the newest, and ``billbot keys rotate`` reseals them. A value without the prefix is read as it
is (rows written before encryption): the rotation seals those too.

The keyring is set once per process (``configure``) by whatever opens the database: the
server, each CLI command, the tests. Columns of type ``Sealed`` seal on write and open on read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.engine import Dialect
from sqlalchemy.types import Text, TypeDecorator

PREFIX = "e1."
_INFO = b"billbot-field-encryption"
_INDEX_INFO = b"billbot-blind-index"
_AAD = b"billbot-field"
_NONCE = 12


class KeyringError(RuntimeError):
    """A sealed value cannot be opened, or no keys were configured: says what to do."""


def _derive(secret: str, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
        secret.encode("utf-8")
    )


def key_id(secret: str) -> str:
    """A short public name for a secret (not reversible), stored beside what it sealed."""
    return hashlib.sha256(_derive(secret, b"billbot-key-id")).hexdigest()[:8]


class Keyring:
    """The field keys, newest first."""

    def __init__(self, secrets: Sequence[str]) -> None:
        if not secrets:
            raise KeyringError("no BILLBOT_SECRET_KEYS: field encryption needs at least one key")
        self._keys = [(key_id(s), AESGCM(_derive(s, _INFO))) for s in secrets]
        self._by_id = dict(self._keys)
        self._index_keys = [_derive(s, _INDEX_INFO) for s in secrets]
        self.newest_id = self._keys[0][0]

    def index(self, value: str) -> str:
        """The blind index of ``value`` under the newest key: equal values, equal indexes; the
        value cannot be read back from it (HMAC-SHA256)."""
        return hmac.new(self._index_keys[0], value.encode("utf-8"), "sha256").hexdigest()

    def index_variants(self, value: str) -> list[str]:
        """The index under every key, newest first: finds rows not yet rotated."""
        return [hmac.new(k, value.encode("utf-8"), "sha256").hexdigest() for k in self._index_keys]

    def seal(self, plain: str) -> str:
        kid, aead = self._keys[0]
        nonce = os.urandom(_NONCE)
        sealed = aead.encrypt(nonce, plain.encode("utf-8"), _AAD)
        return f"{PREFIX}{kid}.{base64.urlsafe_b64encode(nonce + sealed).decode('ascii')}"

    def open(self, stored: str) -> str:
        if not stored.startswith(PREFIX):
            return stored  # written before encryption; `billbot keys rotate` seals it
        try:
            _, kid, body = stored.split(".", 2)
            raw = base64.urlsafe_b64decode(body.encode("ascii"))
        except ValueError:
            raise KeyringError("a sealed field is damaged (not e1.<id>.<base64>)") from None
        aead = self._by_id.get(kid)
        if aead is None:
            raise KeyringError(
                f"a field was sealed with key {kid}, which is not in BILLBOT_SECRET_KEYS: put"
                " the old key back (after the new one) until `billbot keys rotate` has run"
            )
        try:
            return aead.decrypt(raw[:_NONCE], raw[_NONCE:], _AAD).decode("utf-8")
        except InvalidTag:
            raise KeyringError(
                f"a field sealed with key {kid} failed its integrity check"
            ) from None

    def is_current(self, stored: str) -> bool:
        """True if ``stored`` is sealed with the newest key (nothing for a rotation to do)."""
        return stored.startswith(f"{PREFIX}{self.newest_id}.")


_keyring: Keyring | None = None


def configure(secrets: Sequence[str]) -> Keyring:
    """Sets this process's keyring (newest first) and returns it."""
    global _keyring
    _keyring = Keyring(secrets)
    return _keyring


def keyring() -> Keyring:
    if _keyring is None:
        raise KeyringError("field encryption keys are not configured (storage.crypto.configure)")
    return _keyring


class SealedJSON(TypeDecorator[Any]):
    """A JSON value stored sealed; plain JSON from before encryption still reads."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return keyring().seal(json.dumps(value, ensure_ascii=False, separators=(",", ":")))

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, str):  # a JSON column the driver already decoded
            return value
        return json.loads(keyring().open(value))


class Sealed(TypeDecorator[str]):
    """A text column stored sealed (AES-GCM); ``None`` stays NULL."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else keyring().seal(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else keyring().open(value)
