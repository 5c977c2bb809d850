"""The WeChat Official Account callback protocol: signatures, AES envelopes and message XML.

Pure protocol, no HTTP and no database: the handler hands in the query and body, gets back a
channel-neutral ``Inbound`` (or a ``ChannelError`` carrying the status to answer), and asks for
the reply body. ``OAClientCodec`` is the other side of the wire — it speaks as WeChat's servers
do, for ``billbot chat`` and the end-to-end tests.

Every signature is computed here and compared in constant time; wechatpy is used only for the
AES framing (``PrpCrypto``), because its own checks compare with ``!=``. No XML may declare a
DTD or entities (``parse_xml``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from xml.etree.ElementTree import Element, ParseError, fromstring

from wechatpy.crypto import PrpCrypto
from wechatpy.exceptions import InvalidAppIdException

from bot.clock import Clock
from bot.config import EncryptMode, WeChatCredentials
from bot.messages import Inbound, InboundKind

MAX_BODY = 64 * 1024
MAX_CLOCK_SKEW = 300  # seconds
MAX_TEXT = 2048  # characters of customer text kept in an Inbound

CHANNEL = "wechat"
NO_REPLY = b"success"  # WeChat's "received, nothing to say"
DEMO_ACCOUNT_ID = "gh_billbotdemo01"  # the original ID the client codec writes as ToUserName

# Query values we echo or sign: WeChat sends digits; anything exotic is refused, not escaped.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_NONCE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ECHOSTR = re.compile(r"[A-Za-z0-9_-]{1,128}")
_SIGNATURE = re.compile(r"[0-9a-fA-F]{40}")
# Characters XML 1.0 does not allow anywhere, including CDATA (and lone surrogates).
_XML_FORBIDDEN = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

_EVENT_KINDS: Mapping[str, InboundKind] = {
    "subscribe": InboundKind.SUBSCRIBE,
    "unsubscribe": InboundKind.UNSUBSCRIBE,
}


class ChannelError(Exception):
    """A callback we refuse; ``status`` is what to answer, ``reason`` is safe to log and show,
    ``kind`` is a short label for /metrics (signature, stale, mode, too_large, malformed…)."""

    def __init__(self, status: int, reason: str, kind: str = "") -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason
        self.kind = kind or {400: "malformed", 413: "too_large"}.get(status, "forbidden")


@dataclass(frozen=True)
class OARequest:
    """What the handler passes in: the query parameters and the raw body."""

    query: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class ParsedCall:
    """A verified callback: the message, plus what the reply needs."""

    inbound: Inbound
    to_user: str  # the account's original ID (ToUserName), the reply's FromUserName
    encrypted: bool  # the reply is encrypted iff the request was
    nonce: str
    timestamp: str
    # A plaintext body is not covered by its signature, so one signature may carry one body:
    # (key naming the signature, digest of the body) for the handler to bind; None if encrypted.
    signature_binding: tuple[str, str] | None = None


# --- shared building blocks -------------------------------------------------------------


def compute_signature(*parts: str) -> str:
    """WeChat's signature: SHA-1 over the parts sorted in dictionary order and concatenated."""
    return hashlib.sha1(b"".join(sorted(p.encode() for p in parts))).hexdigest()


def signature_matches(expected: str, given: str | None) -> bool:
    if given is None or not _SIGNATURE.fullmatch(given):
        return False
    return hmac.compare_digest(expected, given.lower())


def pseudonym(user_id: str) -> str:
    """A stable stand-in for an id in delivery keys and logs, which must not hold it."""
    return hashlib.sha256(f"billbot-pseudonym\x00{user_id}".encode()).hexdigest()[:20]


def cdata(value: str) -> str:
    """``value`` as CDATA that no content can break: ``]]>`` is split, forbidden chars dropped."""
    clean = _XML_FORBIDDEN.sub("", value)
    return "<![CDATA[" + clean.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _aes_crypto(creds: WeChatCredentials) -> PrpCrypto | None:
    """wechatpy's AES-CBC framing for the EncodingAESKey, or None when no key is configured."""
    return aes_crypto_for(creds.aes_key.reveal(), "WECHAT_AES_KEY", "the Official Account's")


def aes_crypto_for(encoding_key: str, setting: str, where: str) -> PrpCrypto | None:
    """The AES framing WeChat and WeCom share, for a 43-character EncodingAESKey (or None)."""
    if not encoding_key:
        return None
    try:
        key = base64.b64decode(encoding_key + "=", validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(encoding_key) != 43 or len(key) != 32:
        raise ValueError(
            f"{setting} is not a valid EncodingAESKey: copy the 43 characters from {where}"
            " server settings"
        )
    return PrpCrypto(key)


def encrypt_envelope(crypto: PrpCrypto, document: str | bytes, app_id: str) -> str:
    encrypted = crypto.encrypt(document, app_id)
    return encrypted.decode("ascii") if isinstance(encrypted, bytes) else str(encrypted)


def decrypt_envelope(crypto: PrpCrypto, encrypted: str, app_id: str) -> str:
    """Decrypt one ``Encrypt`` payload; 403 if it was sealed for another app, 400 if garbled."""
    try:
        document = crypto.decrypt(encrypted, app_id)
    except InvalidAppIdException:
        raise ChannelError(403, "encrypted message is addressed to another app ID") from None
    except Exception as exc:  # base64, padding, framing or UTF-8: wechatpy raises anything
        raise ChannelError(
            400, f"cannot decrypt Encrypt to UTF-8 text ({type(exc).__name__})"
        ) from None
    if not isinstance(document, str):
        raise ChannelError(400, "cannot decrypt Encrypt (unexpected payload)")
    return document


# what may precede the root element: a byte order mark, an XML declaration, white space
_PROLOG = re.compile(r"\ufeff?\s*(?:<\?xml\s[^<>]*\?>\s*)?<[^!?]")


def parse_xml(document: str | bytes, what: str) -> Element:
    """Parse untrusted XML with DTDs and entities forbidden; any failure is a 400.

    A DTD, the only place entities are declared, can only come before the root element.
    WeChat's documents start with the root (after at most an XML declaration), so anything
    else there — a ``<!DOCTYPE``, a comment — is refused before parsing; a reference to an
    undeclared entity is a parse error. Checking the start costs a third of defusedxml's
    parser set-up, which was paid twice per message."""
    if isinstance(document, bytes):
        try:
            document = document.decode("utf-8")
        except UnicodeDecodeError:
            raise ChannelError(400, f"{what} is not UTF-8") from None
    if not document.strip():
        raise ChannelError(400, f"{what} is empty")
    if _PROLOG.match(document) is None:
        raise ChannelError(
            400, f"{what} declares a DTD or entities, or does not start with its root element"
        )
    try:
        root: Element = fromstring(document)
    except ParseError as exc:
        raise ChannelError(400, f"{what} is not well-formed XML ({exc})") from None
    if root.tag != "xml":
        raise ChannelError(400, f"{what} has root <{root.tag}>, expected <xml>")
    return root


def xml_field(root: Element, name: str) -> str | None:
    node = root.find(name)
    if node is None:
        return None
    return node.text or ""


def required_field(root: Element, name: str, what: str) -> str:
    value = xml_field(root, name)
    if not value:
        raise ChannelError(400, f"{what} has no {name}")
    return value


def check_timestamp(timestamp: str | None, clock: Clock) -> str:
    if timestamp is None or not _TIMESTAMP.fullmatch(timestamp):
        raise ChannelError(403, "missing or non-numeric timestamp", "stale")
    skew = abs(int(timestamp) - clock.now().timestamp())
    if skew > MAX_CLOCK_SKEW:
        raise ChannelError(403, f"timestamp is {int(skew)} s away from our clock", "stale")
    return timestamp


def check_nonce(nonce: str | None) -> str:
    if nonce is None or not _NONCE.fullmatch(nonce):
        raise ChannelError(403, "missing or malformed nonce")
    return nonce


def _clip(text: str) -> str:
    return text[:MAX_TEXT]


# --- server side --------------------------------------------------------------------------


class OfficialAccount:
    """The server side of the Official Account callback (plaintext, compatible and safe modes)."""

    def __init__(self, creds: WeChatCredentials, clock: Clock) -> None:
        self._creds = creds
        self._clock = clock
        self._crypto = _aes_crypto(creds)
        self._mode = creds.mode
        if self._mode is not EncryptMode.PLAIN and self._crypto is None:
            raise ValueError(f"WECHAT_ENCRYPT_MODE={self._mode.value} needs WECHAT_AES_KEY")

    @property
    def mode(self) -> EncryptMode:
        return self._mode

    def verify_url(self, query: Mapping[str, str]) -> str:
        """GET /wechat: the ``echostr`` to answer with, if WeChat signed the call."""
        try:
            timestamp = check_timestamp(query.get("timestamp"), self._clock)
            nonce = check_nonce(query.get("nonce"))
            expected = compute_signature(self._creds.token.reveal(), timestamp, nonce)
            if not signature_matches(expected, query.get("signature")):
                raise ChannelError(403, "bad signature on URL verification", "signature")
            # echostr is not covered by the signature, so it must be too dull to reflect harm.
            echostr = query.get("echostr")
            if echostr is None or not _ECHOSTR.fullmatch(echostr):
                raise ChannelError(403, "missing or malformed echostr")
            return echostr
        except ChannelError:
            raise
        except Exception as exc:
            raise ChannelError(403, f"unexpected URL verification failure ({exc!r})") from None

    def parse(self, req: OARequest) -> ParsedCall:
        """POST /wechat: verify, decrypt and map one callback; only ``ChannelError`` escapes."""
        try:
            return self._parse(req)
        except ChannelError:
            raise
        except Exception as exc:
            raise ChannelError(400, f"unexpected error parsing callback ({exc!r})") from None

    def _parse(self, req: OARequest) -> ParsedCall:
        if len(req.body) > MAX_BODY:
            raise ChannelError(413, f"body is {len(req.body)} bytes, the limit is {MAX_BODY}")
        query = req.query
        token = self._creds.token.reveal()
        timestamp = check_timestamp(query.get("timestamp"), self._clock)
        nonce = check_nonce(query.get("nonce"))
        signature = query.get("signature")
        if not signature_matches(compute_signature(token, timestamp, nonce), signature):
            raise ChannelError(403, "bad signature", "signature")
        encrypt_type = query.get("encrypt_type", "raw").lower()
        if encrypt_type not in ("raw", "aes"):
            raise ChannelError(400, f"unknown encrypt_type {encrypt_type!r}")
        if encrypt_type == "aes":
            return self._parse_encrypted(req, token, timestamp, nonce)
        if self._mode is EncryptMode.SAFE:
            # the plain signature covers only token, timestamp and nonce: in safe mode a
            # body is trusted only under msg_signature, which covers the ciphertext
            raise ChannelError(
                403, "plaintext callback refused: WECHAT_ENCRYPT_MODE is safe", "mode"
            )
        root = parse_xml(req.body, "body")
        binding = (
            f"{CHANNEL}:{str(signature).lower()}:{timestamp}:{nonce}",
            hashlib.sha256(req.body).hexdigest(),
        )
        return ParsedCall(
            inbound=map_message(root),
            to_user=required_field(root, "ToUserName", "message"),
            encrypted=False,
            nonce=nonce,
            timestamp=timestamp,
            signature_binding=binding,
        )

    def _parse_encrypted(
        self, req: OARequest, token: str, timestamp: str, nonce: str
    ) -> ParsedCall:
        if self._crypto is None or self._mode is EncryptMode.PLAIN:
            raise ChannelError(403, "encrypted callback but WECHAT_ENCRYPT_MODE is plain", "mode")
        root = parse_xml(req.body, "body")
        encrypt = xml_field(root, "Encrypt")
        if not encrypt:
            raise ChannelError(400, "encrypt_type=aes but the body has no Encrypt")
        expected = compute_signature(token, timestamp, nonce, encrypt)
        if not signature_matches(expected, req.query.get("msg_signature")):
            raise ChannelError(403, "bad msg_signature", "signature")
        inner = decrypt_envelope(self._crypto, encrypt, self._creds.app_id)
        # In compatible mode the plaintext copy beside Encrypt is unauthenticated: only the
        # decrypted document counts.
        root = parse_xml(inner, "decrypted message")
        return ParsedCall(
            inbound=map_message(root),
            to_user=required_field(root, "ToUserName", "message"),
            encrypted=True,
            nonce=nonce,
            timestamp=timestamp,
        )

    def render_text(self, call: ParsedCall, text: str) -> bytes:
        """The reply body: a text message, encrypted iff the call was; ``success`` if no text."""
        if not _XML_FORBIDDEN.sub("", text):
            return NO_REPLY
        document = (
            "<xml>"
            f"<ToUserName>{cdata(call.inbound.user_id)}</ToUserName>"
            f"<FromUserName>{cdata(call.to_user)}</FromUserName>"
            f"<CreateTime>{int(self._clock.now().timestamp())}</CreateTime>"
            "<MsgType><![CDATA[text]]></MsgType>"
            f"<Content>{cdata(text)}</Content>"
            "</xml>"
        )
        if not call.encrypted:
            return document.encode()
        if self._crypto is None:  # parse() refuses encrypted calls without a key
            raise ChannelError(403, "encrypted reply but WECHAT_AES_KEY is not set")
        encrypt = encrypt_envelope(self._crypto, document, self._creds.app_id)
        signature = compute_signature(
            self._creds.token.reveal(), call.timestamp, call.nonce, encrypt
        )
        return (
            "<xml>"
            f"<Encrypt>{cdata(encrypt)}</Encrypt>"
            f"<MsgSignature>{cdata(signature)}</MsgSignature>"
            f"<TimeStamp>{call.timestamp}</TimeStamp>"
            f"<Nonce>{cdata(call.nonce)}</Nonce>"
            "</xml>"
        ).encode()


def map_message(root: Element) -> Inbound:
    """Turn a decrypted message document into an ``Inbound``, by WeChat's rules for dedup."""
    user_id = required_field(root, "FromUserName", "message")
    msg_type = required_field(root, "MsgType", "message")
    create_time = required_field(root, "CreateTime", "message")
    if not create_time.isascii() or not create_time.isdigit():
        raise ChannelError(400, "message has a non-numeric CreateTime")

    if msg_type.lower() == "event":
        event = required_field(root, "Event", "event")
        kind = _EVENT_KINDS.get(event.lower(), InboundKind.MENU)
        return Inbound(
            channel=CHANNEL,
            user_id=user_id,
            kind=kind,
            text=_clip(xml_field(root, "EventKey") or ""),
            dedup_key=f"evt:{pseudonym(user_id)}:{create_time}:{event}",
            raw_type=f"event:{event}",
        )

    msg_id = xml_field(root, "MsgId")
    # WeChat always sends MsgId with messages; without one, fall back to the event rule.
    dedup_key = f"msg:{msg_id}" if msg_id else f"msg:{pseudonym(user_id)}:{create_time}"
    match msg_type.lower():
        case "text":
            kind, text = InboundKind.TEXT, xml_field(root, "Content") or ""
        case "voice":
            kind, text = InboundKind.VOICE, xml_field(root, "Recognition") or ""
        case _:
            kind, text = InboundKind.OTHER, ""
    return Inbound(
        channel=CHANNEL,
        user_id=user_id,
        kind=kind,
        text=_clip(text),
        dedup_key=dedup_key,
        raw_type=msg_type,
    )


# --- client side (what WeChat's servers send) ---------------------------------------------


class OAClientCodec:
    """Builds callbacks as WeChat's servers do and reads our replies; safe mode by default."""

    def __init__(
        self,
        creds: WeChatCredentials,
        clock: Clock,
        mode: Literal["plain", "compat", "safe"] = "safe",
        *,
        account_id: str = DEMO_ACCOUNT_ID,
    ) -> None:
        self._creds = creds
        self._clock = clock
        self._mode = mode
        self._account_id = account_id
        self._crypto = _aes_crypto(creds)
        if mode != "plain" and self._crypto is None:
            raise ValueError(f"{mode} mode needs WECHAT_AES_KEY; use mode='plain' without one")

    @property
    def mode(self) -> Literal["plain", "compat", "safe"]:
        return self._mode

    def build_text(
        self, openid: str, text: str, msg_id: int | None = None
    ) -> tuple[dict[str, str], bytes]:
        """A text message from ``openid``; a random MsgId unless one is given."""
        if msg_id is None:
            msg_id = secrets.randbits(63)
        return self.build_raw(
            openid,
            f"<MsgType><![CDATA[text]]></MsgType><Content>{cdata(text)}</Content>"
            f"<MsgId>{msg_id}</MsgId>",
        )

    def build_event(
        self, openid: str, event: str, event_key: str = ""
    ) -> tuple[dict[str, str], bytes]:
        """An event (subscribe, unsubscribe, CLICK, VIEW, SCAN…) from ``openid``."""
        return self.build_raw(
            openid,
            f"<MsgType><![CDATA[event]]></MsgType><Event>{cdata(event)}</Event>"
            f"<EventKey>{cdata(event_key)}</EventKey>",
        )

    def build_raw(self, openid: str, inner_xml: str) -> tuple[dict[str, str], bytes]:
        """Any message: ``inner_xml`` is everything after ToUserName, FromUserName, CreateTime."""
        fields = (
            f"<ToUserName>{cdata(self._account_id)}</ToUserName>"
            f"<FromUserName>{cdata(openid)}</FromUserName>"
            f"<CreateTime>{int(self._clock.now().timestamp())}</CreateTime>"
            f"{inner_xml}"
        )
        return self._seal(f"<xml>{fields}</xml>", openid, compat_fields=fields)

    def build_document(
        self, document: str | bytes, openid: str = ""
    ) -> tuple[dict[str, str], bytes]:
        """Sign (and encrypt, outside plain mode) a whole document as-is — hostile ones too."""
        return self._seal(document, openid, compat_fields="")

    def _seal(
        self, document: str | bytes, openid: str, compat_fields: str
    ) -> tuple[dict[str, str], bytes]:
        token = self._creds.token.reveal()
        timestamp = str(int(self._clock.now().timestamp()))
        nonce = str(secrets.randbelow(10**10))
        query = {
            "signature": compute_signature(token, timestamp, nonce),
            "timestamp": timestamp,
            "nonce": nonce,
        }
        if openid:
            query["openid"] = openid
        if self._crypto is None or self._mode == "plain":
            return query, document.encode() if isinstance(document, str) else document
        encrypt = encrypt_envelope(self._crypto, document, self._creds.app_id)
        query["encrypt_type"] = "aes"
        query["msg_signature"] = compute_signature(token, timestamp, nonce, encrypt)
        if self._mode == "compat":
            body = f"<xml>{compat_fields}<Encrypt>{cdata(encrypt)}</Encrypt></xml>"
        else:
            body = (
                f"<xml><ToUserName>{cdata(self._account_id)}</ToUserName>"
                f"<Encrypt>{cdata(encrypt)}</Encrypt></xml>"
            )
        return query, body.encode()

    def read_reply(self, body: bytes) -> str:
        """The text of a reply ("" for ``success``); encrypted replies must be correctly signed."""
        if body.strip() in (b"", NO_REPLY):
            return ""
        root = parse_xml(body, "reply")
        encrypt = xml_field(root, "Encrypt")
        if self._mode != "plain":
            if not encrypt or self._crypto is None:
                raise ChannelError(400, f"{self._mode} mode expects an encrypted reply")
            timestamp = check_timestamp(xml_field(root, "TimeStamp"), self._clock)
            nonce = check_nonce(xml_field(root, "Nonce"))
            expected = compute_signature(self._creds.token.reveal(), timestamp, nonce, encrypt)
            if not signature_matches(expected, xml_field(root, "MsgSignature")):
                raise ChannelError(403, "bad MsgSignature on reply")
            root = parse_xml(decrypt_envelope(self._crypto, encrypt, self._creds.app_id), "reply")
        elif encrypt is not None:
            raise ChannelError(400, "plain mode got an encrypted reply")
        msg_type = xml_field(root, "MsgType")
        if msg_type != "text":
            raise ChannelError(400, f"reply has MsgType {msg_type!r}, expected text")
        return xml_field(root, "Content") or ""
