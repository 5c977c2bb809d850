"""Card links: signed with the newest key, accepted with any listed key, refused after expiry."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest

from bot.clock import FakeClock
from bot.privacy.links import LinkExpired, LinkSigner, LinkTampered

OLD_KEY = "old-secret-key-0123456789abcdef"
NEW_KEY = "new-secret-key-0123456789abcdef"
PAYLOAD: dict[str, str | int] = {"c": 7, "o": "3456", "u": "oAbC****12", "r": "订单尾号3456"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_round_trip_adds_expiry_in_unix_seconds(clock: FakeClock) -> None:
    signer = LinkSigner([NEW_KEY], clock)
    token = signer.sign(PAYLOAD)
    payload = signer.verify(token)
    assert payload == {**PAYLOAD, "exp": int(clock.now().timestamp()) + 30 * 60}


def test_token_is_url_safe_and_short(clock: FakeClock) -> None:
    token = LinkSigner([NEW_KEY], clock).sign(PAYLOAD)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    assert len(token) < 200


def test_tampered_payload_is_refused(clock: FakeClock) -> None:
    signer = LinkSigner([NEW_KEY], clock)
    body, signature = signer.sign(PAYLOAD).split(".")
    forged = json.loads(unb64(body))
    forged["c"] = 8
    forged_body = b64(json.dumps(forged, separators=(",", ":")).encode())
    with pytest.raises(LinkTampered):
        signer.verify(f"{forged_body}.{signature}")


def test_tampered_signature_is_refused(clock: FakeClock) -> None:
    signer = LinkSigner([NEW_KEY], clock)
    body, signature = signer.sign(PAYLOAD).split(".")
    raw = bytearray(unb64(signature))
    raw[0] ^= 1
    with pytest.raises(LinkTampered):
        signer.verify(f"{body}.{b64(bytes(raw))}")


def test_extended_expiry_is_refused(clock: FakeClock) -> None:
    signer = LinkSigner([NEW_KEY], clock)
    body, signature = signer.sign(PAYLOAD).split(".")
    forged = json.loads(unb64(body))
    forged["exp"] += 86_400
    forged_body = b64(json.dumps(forged, separators=(",", ":"), ensure_ascii=False).encode())
    with pytest.raises(LinkTampered):
        signer.verify(f"{forged_body}.{signature}")


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        ".",
        "abc",
        "abc.",
        ".abc",
        "not base64!.sig",
        "a.b.c",
        "%%%.%%%",
        "x" * 5000,
        "eyJjIjo3fQ.AAAA",
    ],
)
def test_garbage_is_refused(clock: FakeClock, garbage: str) -> None:
    with pytest.raises(LinkTampered):
        LinkSigner([NEW_KEY], clock).verify(garbage)


def test_non_canonical_encoding_is_refused(clock: FakeClock) -> None:
    signer = LinkSigner([NEW_KEY], clock)
    token = signer.sign(PAYLOAD)
    with pytest.raises(LinkTampered):
        signer.verify(token + "=")


def test_expired_link(clock: FakeClock) -> None:
    signer = LinkSigner([NEW_KEY], clock)
    token = signer.sign(PAYLOAD)
    clock.advance(timedelta(minutes=29))
    assert signer.verify(token)["c"] == 7
    clock.advance(timedelta(minutes=2))
    with pytest.raises(LinkExpired):
        signer.verify(token)


def test_expired_and_tampered_is_tampered(clock: FakeClock) -> None:
    signer = LinkSigner([NEW_KEY], clock)
    body, _ = signer.sign(PAYLOAD).split(".")
    clock.advance(timedelta(hours=1))
    with pytest.raises(LinkTampered):
        signer.verify(f"{body}.{b64(bytes(32))}")


def test_ttl_is_configurable(clock: FakeClock) -> None:
    signer = LinkSigner([NEW_KEY], clock, ttl=timedelta(minutes=5))
    token = signer.sign(PAYLOAD)
    clock.advance(timedelta(minutes=5))
    with pytest.raises(LinkExpired):
        signer.verify(token)


def test_old_key_still_accepted_after_rotation(clock: FakeClock) -> None:
    before = LinkSigner([OLD_KEY], clock).sign(PAYLOAD)
    rotated = LinkSigner([NEW_KEY, OLD_KEY], clock)
    assert rotated.verify(before)["c"] == 7
    # New links are signed with the newest key only.
    assert LinkSigner([NEW_KEY], clock).verify(rotated.sign(PAYLOAD))["c"] == 7


def test_unknown_key_is_refused(clock: FakeClock) -> None:
    foreign = LinkSigner(["someone-elses-key-0123456789"], clock).sign(PAYLOAD)
    with pytest.raises(LinkTampered):
        LinkSigner([NEW_KEY, OLD_KEY], clock).verify(foreign)


def test_retired_key_is_refused(clock: FakeClock) -> None:
    before = LinkSigner([OLD_KEY], clock).sign(PAYLOAD)
    with pytest.raises(LinkTampered):
        LinkSigner([NEW_KEY], clock).verify(before)


def test_secret_is_not_used_raw_as_the_hmac_key(clock: FakeClock) -> None:
    import hashlib
    import hmac

    body, signature = LinkSigner([NEW_KEY], clock).sign(PAYLOAD).split(".")
    raw_mac = hmac.new(NEW_KEY.encode(), body.encode(), hashlib.sha256).digest()
    assert unb64(signature) != raw_mac


def test_reserved_and_invalid_arguments(clock: FakeClock) -> None:
    with pytest.raises(ValueError):
        LinkSigner([], clock)
    with pytest.raises(ValueError):
        LinkSigner([NEW_KEY], clock).sign({"exp": 1})
