"""The WeCom (企业微信) callback protocol: URL verification and encrypted event callbacks.

WeCom frames its callbacks as WeChat's safe mode does (the same AES envelope and SHA-1
signature), with the corp id in the envelope and every body encrypted: ``msg_signature``
covers token, timestamp, nonce and the ciphertext, so nothing unauthenticated is trusted.
``WeComClientCodec`` is WeCom's side of the wire, for the tests.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from wechatpy.crypto import PrpCrypto

from bot.channels.wechat_oa import (
    MAX_BODY,
    ChannelError,
    OARequest,
    aes_crypto_for,
    cdata,
    check_nonce,
    check_timestamp,
    compute_signature,
    decrypt_envelope,
    encrypt_envelope,
    parse_xml,
    pseudonym,
    required_field,
    signature_matches,
    xml_field,
)
from bot.clock import Clock
from bot.config import Secret

CHANNEL = "wecom"
_ECHOSTR = re.compile(r"[A-Za-z0-9+/=_-]{1,512}")
_STATE = re.compile(r"[A-Za-z0-9_-]{1,30}")


@dataclass(frozen=True)
class WeComEvent:
    """One decrypted callback. Only ``change_external_contact`` events carry the fields below."""

    event: str  # e.g. change_external_contact
    change_type: str  # add_external_contact, add_half_external_contact, del_external_contact…
    user_id: str  # the WeCom member (the service contact)
    external_user_id: str  # the customer, as WeCom names them to this corp
    state: str | None  # the contact way's state, if it was one of ours (well-formed only)
    welcome_code: str | None
    dedup_key: str  # the same delivery again gives the same key


class WeComCallback:
    """The server side of ``/wecom``."""

    def __init__(self, corp_id: str, token: Secret, aes_key: Secret, clock: Clock) -> None:
        crypto = aes_crypto_for(aes_key.reveal(), "WECOM_AES_KEY", "the WeCom app's")
        if crypto is None:
            raise ValueError("WeCom callbacks need WECOM_AES_KEY")
        self._crypto: PrpCrypto = crypto
        self._corp_id = corp_id
        self._token = token
        self._clock = clock

    def _verified_ciphertext(self, query: Mapping[str, str], encrypt: str) -> None:
        timestamp = check_timestamp(query.get("timestamp"), self._clock)
        nonce = check_nonce(query.get("nonce"))
        expected = compute_signature(self._token.reveal(), timestamp, nonce, encrypt)
        if not signature_matches(expected, query.get("msg_signature")):
            raise ChannelError(403, "bad msg_signature", "signature")

    def verify_url(self, query: Mapping[str, str]) -> str:
        """GET /wecom: the decrypted ``echostr``, if WeCom signed it."""
        echostr = query.get("echostr")
        if echostr is None or not _ECHOSTR.fullmatch(echostr):
            raise ChannelError(403, "missing or malformed echostr")
        self._verified_ciphertext(query, echostr)
        return decrypt_envelope(self._crypto, echostr, self._corp_id)

    def parse(self, req: OARequest) -> WeComEvent:
        """POST /wecom: verify, decrypt and read one callback; only ``ChannelError`` escapes."""
        try:
            return self._parse(req)
        except ChannelError:
            raise
        except Exception as exc:
            raise ChannelError(400, f"unexpected error parsing callback ({exc!r})") from None

    def _parse(self, req: OARequest) -> WeComEvent:
        if len(req.body) > MAX_BODY:
            raise ChannelError(413, f"body is {len(req.body)} bytes, the limit is {MAX_BODY}")
        envelope = parse_xml(req.body, "body")
        encrypt = xml_field(envelope, "Encrypt")
        if not encrypt:
            raise ChannelError(400, "WeCom callbacks are encrypted, but the body has no Encrypt")
        self._verified_ciphertext(req.query, encrypt)
        root = parse_xml(decrypt_envelope(self._crypto, encrypt, self._corp_id), "message")
        create_time = required_field(root, "CreateTime", "message")
        event = xml_field(root, "Event") or xml_field(root, "MsgType") or ""
        change = xml_field(root, "ChangeType") or ""
        user = xml_field(root, "UserID") or ""
        external = xml_field(root, "ExternalUserID") or ""
        state = xml_field(root, "State") or None
        welcome = xml_field(root, "WelcomeCode") or None
        return WeComEvent(
            event=event,
            change_type=change,
            user_id=user,
            external_user_id=external,
            state=state if state and _STATE.fullmatch(state) else None,
            welcome_code=welcome,
            dedup_key=f"{event}:{change}:{pseudonym(user + chr(0) + external)}:{create_time}",
        )


class WeComClientCodec:
    """Builds callbacks as WeCom's servers do: signed, encrypted, for the corp."""

    def __init__(self, corp_id: str, token: str, aes_key: str, clock: Clock) -> None:
        crypto = aes_crypto_for(aes_key, "WECOM_AES_KEY", "the WeCom app's")
        if crypto is None:
            raise ValueError("the codec needs an AES key")
        self._crypto = crypto
        self._corp_id = corp_id
        self._token = token
        self._clock = clock

    def _signed(self, encrypt: str) -> dict[str, str]:
        timestamp = str(int(self._clock.now().timestamp()))
        nonce = str(secrets.randbelow(10**10))
        return {
            "msg_signature": compute_signature(self._token, timestamp, nonce, encrypt),
            "timestamp": timestamp,
            "nonce": nonce,
        }

    def verify_query(self, echo: str) -> dict[str, str]:
        echostr = encrypt_envelope(self._crypto, echo, self._corp_id)
        return {**self._signed(echostr), "echostr": echostr}

    def build_document(self, document: str) -> tuple[dict[str, str], bytes]:
        encrypt = encrypt_envelope(self._crypto, document, self._corp_id)
        body = (
            f"<xml><ToUserName>{cdata(self._corp_id)}</ToUserName>"
            f"<AgentID>{cdata('1000002')}</AgentID><Encrypt>{cdata(encrypt)}</Encrypt></xml>"
        )
        return self._signed(encrypt), body.encode()

    def contact_event(
        self,
        change_type: str,
        user_id: str,
        external_user_id: str,
        *,
        state: str | None = None,
        welcome_code: str | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """A ``change_external_contact`` event, as WeCom sends when a customer adds a member."""
        fields = [
            f"<ToUserName>{cdata(self._corp_id)}</ToUserName>",
            "<FromUserName><![CDATA[sys]]></FromUserName>",
            f"<CreateTime>{int(self._clock.now().timestamp())}</CreateTime>",
            "<MsgType><![CDATA[event]]></MsgType>",
            "<Event><![CDATA[change_external_contact]]></Event>",
            f"<ChangeType>{cdata(change_type)}</ChangeType>",
            f"<UserID>{cdata(user_id)}</UserID>",
            f"<ExternalUserID>{cdata(external_user_id)}</ExternalUserID>",
        ]
        if state is not None:
            fields.append(f"<State>{cdata(state)}</State>")
        if welcome_code is not None:
            fields.append(f"<WelcomeCode>{cdata(welcome_code)}</WelcomeCode>")
        return self.build_document(f"<xml>{''.join(fields)}</xml>")
