"""The Official Account protocol, both sides of the wire, including hostile and broken input."""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta
from typing import Literal
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as safe_xml
import pytest

from bot.channels.wechat_oa import (
    MAX_BODY,
    MAX_CLOCK_SKEW,
    ChannelError,
    OAClientCodec,
    OARequest,
    OfficialAccount,
    ParsedCall,
    compute_signature,
    pseudonym,
)
from bot.clock import FakeClock
from bot.config import EncryptMode, Secret, WeChatCredentials
from bot.messages import InboundKind

Mode = Literal["plain", "compat", "safe"]
MODES: tuple[Mode, ...] = ("plain", "compat", "safe")

APP_ID = "wx5823bf96d3bd56c7"
TOKEN = "QDG6eK"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
OTHER_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
OPENID = "oUser-0001"
ACCOUNT = "gh_testaccount"

BILLION_LAUGHS = (
    '<?xml version="1.0"?>'
    '<!DOCTYPE xml [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    "<xml><ToUserName>gh</ToUserName><FromUserName>u</FromUserName>"
    "<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&lol3;</Content>"
    "<MsgId>1</MsgId></xml>"
)
DOCTYPE_ONLY = (
    "<!DOCTYPE xml><xml><ToUserName>gh</ToUserName><FromUserName>u</FromUserName>"
    "<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>hi</Content>"
    "<MsgId>1</MsgId></xml>"
)


def make_creds(
    app_id: str = APP_ID,
    token: str = TOKEN,
    aes_key: str = AES_KEY,
    mode: EncryptMode | None = None,
) -> WeChatCredentials:
    return WeChatCredentials(app_id, Secret("app-secret"), Secret(token), Secret(aes_key), mode)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(clock: FakeClock) -> OfficialAccount:
    """Compatible mode: accepts what every client mode sends (see the mode tests below)."""
    return OfficialAccount(make_creds(mode=EncryptMode.COMPAT), clock)


def client(clock: FakeClock, mode: Mode = "safe", **creds: str) -> OAClientCodec:
    return OAClientCodec(make_creds(**creds), clock, mode, account_id=ACCOUNT)


def now(clock: FakeClock) -> int:
    return int(clock.now().timestamp())


def post(server: OfficialAccount, built: tuple[dict[str, str], bytes]) -> ParsedCall:
    query, body = built
    return server.parse(OARequest(query=query, body=body))


def refusal(server: OfficialAccount, query: dict[str, str], body: bytes) -> ChannelError:
    with pytest.raises(ChannelError) as caught:
        server.parse(OARequest(query=query, body=body))
    return caught.value


def rejected(server: OfficialAccount, query: dict[str, str], body: bytes) -> int:
    return refusal(server, query, body).status


def xml_of(body: bytes) -> Element:
    root: Element = safe_xml.fromstring(body, forbid_dtd=True, forbid_entities=True)
    return root


def text_of(root: Element, name: str) -> str:
    node = root.find(name)
    assert node is not None, name
    return node.text or ""


def resign(query: dict[str, str], **changes: str) -> dict[str, str]:
    """The query with some values changed and its plain signature recomputed over them."""
    changed = {**query, **changes}
    changed["signature"] = compute_signature(TOKEN, changed["timestamp"], changed["nonce"])
    return changed


# --- round trips ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_round_trip_text(server: OfficialAccount, clock: FakeClock, mode: Mode) -> None:
    codec = client(clock, mode)
    call = post(server, codec.build_text(OPENID, "订单 A-1024 ]]> <b>&amp;", msg_id=42))

    assert call.inbound.channel == "wechat"
    assert call.inbound.user_id == OPENID
    assert call.inbound.kind is InboundKind.TEXT
    assert call.inbound.text == "订单 A-1024 ]]> <b>&amp;"
    assert call.inbound.dedup_key == "msg:42"
    assert call.inbound.raw_type == "text"
    assert call.to_user == ACCOUNT
    assert call.encrypted is (mode != "plain")

    reply = "请输入金额 ]]> <>& 😀 ]]]]> end"
    assert codec.read_reply(server.render_text(call, reply)) == reply


@pytest.mark.parametrize("mode", MODES)
def test_empty_reply_is_plain_success(
    server: OfficialAccount, clock: FakeClock, mode: Mode
) -> None:
    codec = client(clock, mode)
    call = post(server, codec.build_text(OPENID, "hi"))
    body = server.render_text(call, "")
    assert body == b"success"
    assert codec.read_reply(body) == ""


# --- which bodies each WECHAT_ENCRYPT_MODE accepts ---------------------------------------


def test_mode_defaults_to_safe_with_a_key_and_plain_without() -> None:
    assert make_creds().mode is EncryptMode.SAFE
    assert make_creds(aes_key="").mode is EncryptMode.PLAIN


@pytest.mark.parametrize("client_mode", ["plain", "compat"])
def test_safe_mode_refuses_plaintext_bodies(clock: FakeClock, client_mode: Mode) -> None:
    """A plaintext body is not covered by its signature: in safe mode it is never trusted."""
    server = OfficialAccount(make_creds(), clock)
    query, body = client(clock, "plain").build_text(OPENID, "forged")
    error = refusal(server, query, body)
    assert error.status == 403 and "safe" in error.reason
    if client_mode == "compat":  # the encrypted part of a compat body is what counts
        call = post(server, client(clock, "compat").build_text(OPENID, "genuine"))
        assert call.inbound.text == "genuine" and call.signature_binding is None


def test_safe_mode_accepts_encrypted_bodies(clock: FakeClock) -> None:
    server = OfficialAccount(make_creds(), clock)
    call = post(server, client(clock, "safe").build_text(OPENID, "hi"))
    assert call.encrypted and call.inbound.text == "hi"


def test_plain_mode_refuses_encrypted_bodies(clock: FakeClock) -> None:
    server = OfficialAccount(make_creds(mode=EncryptMode.PLAIN), clock)
    query, body = client(clock, "safe").build_text(OPENID, "hi")
    assert rejected(server, query, body) == 403
    assert post(server, client(clock, "plain").build_text(OPENID, "hi")).inbound.text == "hi"


def test_plaintext_calls_carry_a_binding_of_signature_to_body(
    server: OfficialAccount, clock: FakeClock
) -> None:
    query, body = client(clock, "plain").build_text(OPENID, "hi", msg_id=1)
    call = post(server, (query, body))
    assert call.signature_binding is not None
    key, digest = call.signature_binding
    assert query["signature"] in key and query["nonce"] in key and query["timestamp"] in key
    assert digest == hashlib.sha256(body).hexdigest()
    other = post(server, (query, body.replace(b"hi", b"ho")))
    assert other.signature_binding is not None
    assert other.signature_binding[0] == key and other.signature_binding[1] != digest


def test_safe_or_compat_without_a_key_is_refused(clock: FakeClock) -> None:
    for mode in (EncryptMode.SAFE, EncryptMode.COMPAT):
        with pytest.raises(ValueError, match="WECHAT_AES_KEY"):
            OfficialAccount(make_creds(aes_key="", mode=mode), clock)


def test_plain_mode_without_aes_key(clock: FakeClock) -> None:
    server = OfficialAccount(make_creds(aes_key=""), clock)
    codec = client(clock, "plain", aes_key="")
    call = post(server, codec.build_text(OPENID, "hi"))
    assert codec.read_reply(server.render_text(call, "ok")) == "ok"
    with pytest.raises(ValueError, match="WECHAT_AES_KEY"):
        client(clock, "safe", aes_key="")


def test_encrypted_call_without_server_key_is_refused(clock: FakeClock) -> None:
    server = OfficialAccount(make_creds(aes_key=""), clock)
    query, body = client(clock, "safe").build_text(OPENID, "hi")
    assert rejected(server, query, body) == 403


# --- the reply body ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    ["]]>", "a]]>b]]>c", "]]]]>", "<>&", "<![CDATA[x]]>", "emoji 😀🇨🇳 and 中文", "tab\tnl\n"],
)
def test_plain_reply_content_survives_exactly(
    server: OfficialAccount, clock: FakeClock, content: str
) -> None:
    call = post(server, client(clock, "plain").build_text(OPENID, "hi"))
    root = xml_of(server.render_text(call, content))
    assert text_of(root, "Content") == content
    assert text_of(root, "ToUserName") == OPENID
    assert text_of(root, "FromUserName") == ACCOUNT
    assert text_of(root, "MsgType") == "text"
    assert text_of(root, "CreateTime") == str(now(clock))


def test_reply_drops_characters_xml_forbids(server: OfficialAccount, clock: FakeClock) -> None:
    call = post(server, client(clock, "plain").build_text(OPENID, "hi"))
    root = xml_of(server.render_text(call, "a\x00b\x08c\x1fd\ud800e\ufffef"))
    assert text_of(root, "Content") == "abcdef"
    assert server.render_text(call, "\x00\x01") == b"success"


def test_encrypted_reply_is_signed_envelope(server: OfficialAccount, clock: FakeClock) -> None:
    call = post(server, client(clock, "safe").build_text(OPENID, "hi"))
    root = xml_of(server.render_text(call, "secret reply"))

    assert sorted(child.tag for child in root) == ["Encrypt", "MsgSignature", "Nonce", "TimeStamp"]
    encrypt = text_of(root, "Encrypt")
    timestamp, nonce = text_of(root, "TimeStamp"), text_of(root, "Nonce")
    assert (timestamp, nonce) == (call.timestamp, call.nonce)
    expected = hashlib.sha1("".join(sorted([TOKEN, timestamp, nonce, encrypt])).encode())
    assert text_of(root, "MsgSignature") == expected.hexdigest()
    assert b"secret reply" not in server.render_text(call, "secret reply")


def test_client_refuses_badly_signed_reply(server: OfficialAccount, clock: FakeClock) -> None:
    codec = client(clock, "safe")
    call = post(server, codec.build_text(OPENID, "hi"))
    body = server.render_text(call, "reply")
    signature = text_of(xml_of(body), "MsgSignature")
    forged = body.replace(signature.encode(), b"0" * 40)
    with pytest.raises(ChannelError) as caught:
        codec.read_reply(forged)
    assert caught.value.status == 403


# --- URL verification ---------------------------------------------------------------------


def verify_query(clock: FakeClock, token: str = TOKEN) -> dict[str, str]:
    timestamp, nonce = str(now(clock)), "1514711492"
    return {
        "signature": compute_signature(token, timestamp, nonce),
        "timestamp": timestamp,
        "nonce": nonce,
        "echostr": "5838479218127813673",
    }


def test_verify_url_returns_echostr(server: OfficialAccount, clock: FakeClock) -> None:
    assert server.verify_url(verify_query(clock)) == "5838479218127813673"


@pytest.mark.parametrize(
    "change",
    [
        {"signature": "0" * 40},
        {"signature": ""},
        {"echostr": "<script>alert(1)</script>"},
        {"echostr": ""},
        {"timestamp": "not-a-number"},
    ],
)
def test_verify_url_refuses(
    server: OfficialAccount, clock: FakeClock, change: dict[str, str]
) -> None:
    with pytest.raises(ChannelError) as caught:
        server.verify_url({**verify_query(clock), **change})
    assert caught.value.status == 403


def test_verify_url_refuses_wrong_token(server: OfficialAccount, clock: FakeClock) -> None:
    with pytest.raises(ChannelError) as caught:
        server.verify_url(verify_query(clock, token="another-token"))
    assert caught.value.status == 403


@pytest.mark.parametrize("missing", ["signature", "timestamp", "nonce", "echostr"])
def test_verify_url_refuses_missing(
    server: OfficialAccount, clock: FakeClock, missing: str
) -> None:
    query = verify_query(clock)
    del query[missing]
    with pytest.raises(ChannelError) as caught:
        server.verify_url(query)
    assert caught.value.status == 403


def test_verify_url_refuses_stale(server: OfficialAccount, clock: FakeClock) -> None:
    query = verify_query(clock)
    clock.advance(timedelta(seconds=MAX_CLOCK_SKEW + 1))
    with pytest.raises(ChannelError) as caught:
        server.verify_url(query)
    assert caught.value.status == 403


# --- signatures and timestamps ------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_bad_signature(server: OfficialAccount, clock: FakeClock, mode: Mode) -> None:
    query, body = client(clock, mode).build_text(OPENID, "hi")
    assert rejected(server, {**query, "signature": "f" * 40}, body) == 403
    assert rejected(server, {k: v for k, v in query.items() if k != "signature"}, body) == 403


@pytest.mark.parametrize("mode", MODES)
def test_wrong_token(server: OfficialAccount, clock: FakeClock, mode: Mode) -> None:
    query, body = client(clock, mode, token="not-our-token").build_text(OPENID, "hi")
    assert rejected(server, query, body) == 403


@pytest.mark.parametrize("mode", ["compat", "safe"])
def test_bad_msg_signature(server: OfficialAccount, clock: FakeClock, mode: Mode) -> None:
    query, body = client(clock, mode).build_text(OPENID, "hi")
    assert rejected(server, {**query, "msg_signature": "0" * 40}, body) == 403
    assert rejected(server, {k: v for k, v in query.items() if k != "msg_signature"}, body) == 403


def test_ciphertext_swapped_under_valid_signature(
    server: OfficialAccount, clock: FakeClock
) -> None:
    codec = client(clock, "safe")
    query, _ = codec.build_text(OPENID, "first")
    _, other_body = codec.build_text(OPENID, "second")
    # signature and timestamp are fine, but msg_signature covers the other ciphertext
    assert rejected(server, query, other_body) == 403


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("offset", [MAX_CLOCK_SKEW + 1, -(MAX_CLOCK_SKEW + 1), 86400, -86400])
def test_stale_and_future_timestamps(
    server: OfficialAccount, clock: FakeClock, mode: Mode, offset: int
) -> None:
    sender_clock = FakeClock(clock.now() + timedelta(seconds=offset))
    query, body = client(sender_clock, mode).build_text(OPENID, "hi")
    assert rejected(server, query, body) == 403


@pytest.mark.parametrize("offset", [MAX_CLOCK_SKEW, -MAX_CLOCK_SKEW, 0])
def test_timestamps_within_skew(server: OfficialAccount, clock: FakeClock, offset: int) -> None:
    sender_clock = FakeClock(clock.now() + timedelta(seconds=offset))
    assert post(server, client(sender_clock).build_text(OPENID, "hi")).inbound.text == "hi"


@pytest.mark.parametrize("timestamp", ["abc", "", "12.5", "-5", "١٧٧٧٨٠٩٦٠٠", "9" * 40])
def test_non_numeric_timestamp(server: OfficialAccount, clock: FakeClock, timestamp: str) -> None:
    query, body = client(clock, "plain").build_text(OPENID, "hi")
    assert rejected(server, resign(query, timestamp=timestamp), body) == 403


def test_missing_timestamp_and_nonce(server: OfficialAccount, clock: FakeClock) -> None:
    query, body = client(clock, "plain").build_text(OPENID, "hi")
    for name in ("timestamp", "nonce"):
        assert rejected(server, {k: v for k, v in query.items() if k != name}, body) == 403


def test_wrong_app_id_inside_ciphertext(server: OfficialAccount, clock: FakeClock) -> None:
    query, body = client(clock, "safe", app_id="wx0000000000000000").build_text(OPENID, "hi")
    error = refusal(server, query, body)
    assert (error.status, "app ID" in error.reason) == (403, True)


def test_wrong_aes_key_is_refused(server: OfficialAccount, clock: FakeClock) -> None:
    query, body = client(clock, "safe", aes_key=OTHER_AES_KEY).build_text(OPENID, "hi")
    assert rejected(server, query, body) in (400, 403)


# --- bodies ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_oversized_body(server: OfficialAccount, clock: FakeClock, mode: Mode) -> None:
    query, body = client(clock, mode).build_text(OPENID, "x" * MAX_BODY)
    assert len(body) > MAX_BODY
    assert rejected(server, query, body) == 413


def test_body_at_limit_is_read(server: OfficialAccount, clock: FakeClock) -> None:
    query, body = client(clock, "plain").build_text(OPENID, "")
    padded = body.replace(b"</xml>", b" " * (MAX_BODY - len(body)) + b"</xml>")
    assert len(padded) == MAX_BODY
    assert post(server, (query, padded)).inbound.kind is InboundKind.TEXT


@pytest.mark.parametrize("document", [DOCTYPE_ONLY, BILLION_LAUGHS])
def test_dtd_in_outer_xml(server: OfficialAccount, clock: FakeClock, document: str) -> None:
    query, body = client(clock, "plain").build_document(document)
    error = refusal(server, query, body)
    assert (error.status, "DTD" in error.reason) == (400, True)


@pytest.mark.parametrize("document", [DOCTYPE_ONLY, BILLION_LAUGHS])
def test_dtd_in_encrypted_envelope(
    server: OfficialAccount, clock: FakeClock, document: str
) -> None:
    query, body = client(clock, "safe").build_text(OPENID, "hi")
    prolog = document.split("<xml>")[0].encode()  # the DOCTYPE and its entities
    error = refusal(server, query, prolog + body)
    assert (error.status, "DTD" in error.reason) == (400, True)


@pytest.mark.parametrize("mode", ["compat", "safe"])
@pytest.mark.parametrize("document", [DOCTYPE_ONLY, BILLION_LAUGHS])
def test_dtd_in_decrypted_xml(
    server: OfficialAccount, clock: FakeClock, mode: Mode, document: str
) -> None:
    query, body = client(clock, mode).build_document(document, OPENID)
    error = refusal(server, query, body)
    assert (error.status, error.reason.startswith("decrypted message declares a DTD")) == (
        400,
        True,
    )


@pytest.mark.parametrize(
    "document",
    [
        "<!-- a comment where a DTD could hide --><xml><MsgType>text</MsgType></xml>",
        "<?xml-stylesheet href='x'?><xml><MsgType>text</MsgType></xml>",
        "<xml><MsgType>text</MsgType><Content>&undeclared;</Content></xml>",
    ],
)
def test_nothing_but_a_declaration_before_the_root_and_no_undeclared_entity(
    server: OfficialAccount, clock: FakeClock, document: str
) -> None:
    query, body = client(clock, "plain").build_document(document)
    assert rejected(server, query, body) == 400


@pytest.mark.parametrize("mode", ["plain", "safe"])
def test_a_customer_may_write_what_looks_like_a_dtd(
    server: OfficialAccount, clock: FakeClock, mode: Mode
) -> None:
    said = '<!DOCTYPE html><!ENTITY x "y"> &amp; <![CDATA[ ]]>'
    call = post(server, client(clock, mode).build_text(OPENID, said))
    assert (call.inbound.kind, call.inbound.text) == (InboundKind.TEXT, said)


BROKEN: list[bytes] = [
    b"",
    b"   ",
    b"garbage, not xml at all",
    b"<xml><FromUserName>u</FromUserName><MsgType>te",
    b"<xml><Content>\xff\xfe\xfa</Content></xml>",
    "<xml><Content>中文</Content></xml>".encode("gbk"),
    b"\x00\x01\x02\x03",
    b"<notxml><FromUserName>u</FromUserName></notxml>",
    b"<xml>&undefined;</xml>",
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("document", BROKEN)
def test_broken_documents(
    server: OfficialAccount, clock: FakeClock, mode: Mode, document: bytes
) -> None:
    query, body = client(clock, mode).build_document(document, OPENID)
    assert rejected(server, query, body) == 400


@pytest.mark.parametrize("mode", ["compat", "safe"])
def test_broken_envelopes(server: OfficialAccount, clock: FakeClock, mode: Mode) -> None:
    query, body = client(clock, mode).build_text(OPENID, "hi")
    for broken in (b"", body[: len(body) // 2], b"\xff" + body, b"<xml></xml>", b"not xml"):
        assert rejected(server, query, broken) == 400


def test_encrypt_not_base64(server: OfficialAccount, clock: FakeClock) -> None:
    query, _ = client(clock, "safe").build_text(OPENID, "hi")
    for payload in ("!!!not base64!!!", "QUJD", "A" * 44):
        body = f"<xml><ToUserName>gh</ToUserName><Encrypt>{payload}</Encrypt></xml>".encode()
        signed = {
            **query,
            "msg_signature": compute_signature(TOKEN, query["timestamp"], query["nonce"], payload),
        }
        assert rejected(server, signed, body) == 400


def test_unknown_encrypt_type(server: OfficialAccount, clock: FakeClock) -> None:
    query, body = client(clock, "plain").build_text(OPENID, "hi")
    assert rejected(server, {**query, "encrypt_type": "rot13"}, body) == 400
    assert post(server, ({**query, "encrypt_type": "raw"}, body)).encrypted is False


def test_aes_claimed_but_body_plain(server: OfficialAccount, clock: FakeClock) -> None:
    query, body = client(clock, "plain").build_text(OPENID, "hi")
    assert rejected(server, {**query, "encrypt_type": "aes"}, body) == 400


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("field", ["FromUserName", "MsgType", "CreateTime", "ToUserName"])
def test_missing_fields(server: OfficialAccount, clock: FakeClock, mode: Mode, field: str) -> None:
    fields = {
        "ToUserName": ACCOUNT,
        "FromUserName": OPENID,
        "CreateTime": str(now(clock)),
        "MsgType": "text",
        "Content": "hi",
        "MsgId": "7",
    }
    for variant in ({k: v for k, v in fields.items() if k != field}, {**fields, field: ""}):
        document = "<xml>" + "".join(f"<{k}>{v}</{k}>" for k, v in variant.items()) + "</xml>"
        query, body = client(clock, mode).build_document(document, OPENID)
        assert rejected(server, query, body) == 400


def test_non_numeric_create_time(server: OfficialAccount, clock: FakeClock) -> None:
    document = (
        f"<xml><ToUserName>{ACCOUNT}</ToUserName><FromUserName>{OPENID}</FromUserName>"
        "<CreateTime>yesterday</CreateTime><MsgType>event</MsgType><Event>CLICK</Event></xml>"
    )
    query, body = client(clock, "safe").build_document(document, OPENID)
    assert rejected(server, query, body) == 400


def test_event_without_event_field(server: OfficialAccount, clock: FakeClock) -> None:
    query, body = client(clock, "safe").build_raw(OPENID, "<MsgType>event</MsgType>")
    assert rejected(server, query, body) == 400


def test_compat_mode_trusts_only_the_ciphertext(server: OfficialAccount, clock: FakeClock) -> None:
    query, body = client(clock, "compat").build_text(OPENID, "genuine", msg_id=5)
    assert b"genuine" in body  # the unauthenticated plaintext copy
    forged = body.replace(b"genuine", b"forged!").replace(OPENID.encode(), b"oAttacker")
    call = post(server, (query, forged))
    assert (call.inbound.text, call.inbound.user_id) == ("genuine", OPENID)


def test_mutated_bodies_only_raise_channel_error(server: OfficialAccount, clock: FakeClock) -> None:
    rng = random.Random(20260503)
    for mode in MODES:
        query, body = client(clock, mode).build_text(OPENID, "fuzz me")
        for _ in range(150):
            mutated = bytearray(body)
            for _ in range(rng.randint(1, 4)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            try:
                post(server, (query, bytes(mutated)))
            except ChannelError as exc:
                assert exc.status in (400, 403)


# --- mapping ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "key", "kind"),
    [
        ("subscribe", "qrscene_store42", InboundKind.SUBSCRIBE),
        ("subscribe", "", InboundKind.SUBSCRIBE),
        ("unsubscribe", "", InboundKind.UNSUBSCRIBE),
        ("CLICK", "MENU_ORDER", InboundKind.MENU),
        ("VIEW", "https://example.com/page", InboundKind.MENU),
        ("SCAN", "store42", InboundKind.MENU),
        ("LOCATION", "", InboundKind.MENU),
        ("scancode_push", "btn1", InboundKind.MENU),
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_events(
    server: OfficialAccount,
    clock: FakeClock,
    mode: Mode,
    event: str,
    key: str,
    kind: InboundKind,
) -> None:
    inbound = post(server, client(clock, mode).build_event(OPENID, event, key)).inbound
    assert inbound.kind is kind
    assert inbound.text == key
    assert inbound.raw_type == f"event:{event}"
    assert inbound.dedup_key == f"evt:{pseudonym(OPENID)}:{now(clock)}:{event}"
    assert inbound.user_id == OPENID


@pytest.mark.parametrize(
    ("inner", "raw_type"),
    [
        (
            "<MsgType>image</MsgType><PicUrl>http://x/y.jpg</PicUrl><MediaId>m</MediaId>",
            "image",
        ),
        (
            "<MsgType>location</MsgType><Location_X>23.1</Location_X><Location_Y>113.3</Location_Y>"
            "<Scale>20</Scale><Label>Guangzhou</Label>",
            "location",
        ),
        ("<MsgType>link</MsgType><Title>t</Title><Url>http://x</Url>", "link"),
        ("<MsgType>video</MsgType><MediaId>m</MediaId><ThumbMediaId>t</ThumbMediaId>", "video"),
        ("<MsgType>shortvideo</MsgType><MediaId>m</MediaId>", "shortvideo"),
        ("<MsgType>file</MsgType><Title>bill.pdf</Title>", "file"),
        ("<MsgType>miniprogrampage</MsgType>", "miniprogrampage"),
    ],
)
def test_non_text_messages(
    server: OfficialAccount, clock: FakeClock, inner: str, raw_type: str
) -> None:
    built = client(clock).build_raw(OPENID, inner + "<MsgId>9001</MsgId>")
    inbound = post(server, built).inbound
    assert (inbound.kind, inbound.text, inbound.raw_type) == (InboundKind.OTHER, "", raw_type)
    assert inbound.dedup_key == "msg:9001"


@pytest.mark.parametrize(
    ("recognition", "expected"),
    [
        ("<Recognition><![CDATA[订单号 A1024]]></Recognition>", "订单号 A1024"),
        ("<Recognition></Recognition>", ""),
        ("", ""),
    ],
)
def test_voice(server: OfficialAccount, clock: FakeClock, recognition: str, expected: str) -> None:
    inner = f"<MsgType>voice</MsgType><MediaId>m</MediaId><Format>amr</Format>{recognition}"
    inbound = post(server, client(clock).build_raw(OPENID, inner + "<MsgId>77</MsgId>")).inbound
    assert (inbound.kind, inbound.text, inbound.raw_type) == (InboundKind.VOICE, expected, "voice")


def test_text_is_capped(server: OfficialAccount, clock: FakeClock) -> None:
    inbound = post(server, client(clock).build_text(OPENID, "长" * 5000)).inbound
    assert inbound.text == "长" * 2048
    event = post(server, client(clock).build_event(OPENID, "CLICK", "k" * 3000)).inbound
    assert len(event.text) == 2048


def test_text_with_markup_is_data(server: OfficialAccount, clock: FakeClock) -> None:
    inner = "<MsgType>text</MsgType><Content>a &lt;b&gt; &amp; c</Content><MsgId>3</MsgId>"
    assert post(server, client(clock).build_raw(OPENID, inner)).inbound.text == "a <b> & c"


def test_dedup_keys(server: OfficialAccount, clock: FakeClock) -> None:
    codec = client(clock)
    first = post(server, codec.build_text(OPENID, "hi", msg_id=6_543_210_987_654_321)).inbound
    again = post(server, codec.build_text(OPENID, "hi", msg_id=6_543_210_987_654_321)).inbound
    other = post(server, codec.build_text(OPENID, "hi", msg_id=6_543_210_987_654_322)).inbound
    assert first.dedup_key == again.dedup_key == "msg:6543210987654321"
    assert other.dedup_key != first.dedup_key

    click = post(server, codec.build_event(OPENID, "CLICK", "A")).inbound
    click_again = post(server, codec.build_event(OPENID, "CLICK", "B")).inbound
    assert click.dedup_key == click_again.dedup_key == f"evt:{pseudonym(OPENID)}:{now(clock)}:CLICK"
    clock.advance(timedelta(seconds=1))
    later = post(server, codec.build_event(OPENID, "CLICK", "A")).inbound
    assert later.dedup_key == f"evt:{pseudonym(OPENID)}:{now(clock)}:CLICK" != click.dedup_key


def test_random_msg_ids_differ(server: OfficialAccount, clock: FakeClock) -> None:
    codec = client(clock)
    keys = {post(server, codec.build_text(OPENID, "hi")).inbound.dedup_key for _ in range(20)}
    assert len(keys) == 20


# --- WeChat's own published sample -------------------------------------------------------

# From Tencent's WXBizMsgCrypt Python demo (compatible mode, so the body also carries the
# plaintext fields); the msg_signature is the one WeChat published for this ciphertext.
SAMPLE_ENCRYPT = (
    "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PG"
    "HQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6"
    "tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp"
    "3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhv"
    "Ql+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE="
)


def test_wechat_published_sample_decrypts() -> None:
    creds = WeChatCredentials(
        "wx2c2769f8efd9abc2",
        Secret(""),
        Secret("spamtest"),
        Secret("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"),
    )
    clock = FakeClock(datetime.fromtimestamp(1409735669, UTC))
    timestamp, nonce = "1409735669", "1320562132"
    query = {
        "signature": hashlib.sha1(
            "".join(sorted(["spamtest", timestamp, nonce])).encode()
        ).hexdigest(),
        "timestamp": timestamp,
        "nonce": nonce,
        "encrypt_type": "aes",
        "msg_signature": "5d197aaffba7e9b25a30732f161a50dee96bd5fa",
    }
    body = (
        "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>"
        "<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>"
        "<CreateTime>1409735668</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        "<Content><![CDATA[abcdteT]]></Content><MsgId>6054768590064713728</MsgId>"
        f"<Encrypt><![CDATA[{SAMPLE_ENCRYPT}]]></Encrypt></xml>"
    ).encode()

    call = OfficialAccount(creds, clock).parse(OARequest(query=query, body=body))

    assert call.inbound.user_id == "oyORnuP8q7ou2gfYjqLzSIWZf0rs"
    assert (call.inbound.kind, call.inbound.text) == (InboundKind.TEXT, "abcdteT")
    assert call.inbound.dedup_key == "msg:6054768590064713728"
    assert (call.to_user, call.encrypted) == ("gh_10f6c3c3ac5a", True)
