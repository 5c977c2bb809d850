"""Keyed indexes for the guessing guards."""

from __future__ import annotations

import hashlib

from storage.crypto import configure
from storage.repositories.agents import source_key
from storage.repositories.guards import order_key


def test_guard_keys_are_keyed_so_a_stolen_table_cannot_be_reversed() -> None:
    """Order and login-address guards key their rows by HMAC under the deployment's keys: a
    list of every possible order number, hashed, matches nothing without the keys."""
    configure(["first-deployment-key-0123456789"])
    first = order_key("DD20250503123456"), source_key("203.0.113.9")
    configure(["other-deployment-key-0123456789"])
    other = order_key("DD20250503123456"), source_key("203.0.113.9")
    assert first[0] != other[0] and first[1] != other[1]
    plain = hashlib.sha256(b"order-guard\x00DD20250503123456").hexdigest()
    assert plain not in (first[0], other[0])
