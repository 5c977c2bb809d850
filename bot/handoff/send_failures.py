"""Why an agent's reply did not reach the customer, and what to do about it, in words.

One entry per WeChat error code the console can meet when it sends a customer-service
message (meanings from WeChat's global return codes). Each has a stable key
(``wechat_<code>``) for the console and tests, and a sentence in Chinese and English written
for the agent; where only an administrator can fix it, the sentence says so. Any other code
gets a sentence quoting the code and WeChat's own ``errmsg``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bot.channels.wechat_api import NETWORK_ERROR, WeChatApiError
from bot.refusals import Refusal

UNREACHABLE = NETWORK_ERROR  # no answer from WeChat: DNS, connection, timeout, HTTP error
ERRMSG_SHOWN = 120  # characters of WeChat's errmsg quoted in the fallback sentence


@dataclass(frozen=True)
class SendFailure:
    """One kind of failed send: its key, the HTTP status the console answers, the words,
    and whether the conversation waits for the customer (nothing can be sent until they
    write again, so it is parked rather than left to lapse back to the queue)."""

    key: str
    status: int
    zh: str
    en: str
    parks: bool = False

    def refusal(self) -> Refusal:
        return Refusal(self.status, self.zh, self.en, key=self.key)


_WINDOW_CLOSED = (
    "客户最后一次发消息已超过 48 小时，微信不再允许回复。会话已转为“等待客户”，"
    "客户再发消息后就可以回复。",
    "It's more than 48 hours since the customer last wrote, so WeChat no longer allows"
    " replies. The conversation is parked as waiting for the customer; you can reply once"
    " they write again.",
)
_REPLIES_USED_UP = (
    "客户上一条消息之后可发的回复（最多 5 条）已用完，微信不再送达。会话已转为“等待客户”，"
    "客户再发消息后就可以继续回复。",
    "The replies WeChat allows after the customer's last message (at most 5) are used up."
    " The conversation is parked as waiting for the customer; you can reply again once they"
    " write.",
)
_TOKEN_REFUSED = (
    "微信不接受本服务器的访问凭证（access token 无效或已过期），消息没有发出。"
    "请管理员检查 WECHAT_APP_SECRET 和公众平台的 IP 白名单。",
    "WeChat refused this server's access token (invalid or expired), so the message was not"
    " sent. Ask your administrator to check WECHAT_APP_SECRET and the IP whitelist in the"
    " Official Accounts Platform.",
)
_QUOTA_TODAY = (
    "公众号今天的接口调用次数已用完，消息没有发出；明天会自动恢复。"
    "急用请管理员在微信公众平台查看并清零接口调用次数。",
    "The Official Account has used up today's WeChat API quota, so the message was not sent;"
    " it renews tomorrow. If it can't wait, ask your administrator to check and reset the"
    " quota in the Official Accounts Platform.",
)

# code → (HTTP status, zh, en, parks)
_TABLE: Mapping[int, tuple[int, tuple[str, str], bool]] = {
    UNREACHABLE: (
        502,
        (
            "本服务器连不上微信（域名解析或连接失败），消息没有发出。请稍后再发一次；"
            "如果一直这样，请管理员检查 WECHAT_API_BASE 设置和服务器的网络。",
            "WeChat can't be reached from this server (DNS/connection failed), so the message"
            " was not sent. Try again in a moment; if it keeps happening, ask your administrator"
            " to check WECHAT_API_BASE and the network.",
        ),
        False,
    ),
    45015: (409, _WINDOW_CLOSED, True),
    45047: (409, _REPLIES_USED_UP, True),
    40001: (502, _TOKEN_REFUSED, False),
    40014: (502, _TOKEN_REFUSED, False),
    42001: (502, _TOKEN_REFUSED, False),
    40125: (
        502,
        (
            "微信不接受本服务器配置的 AppSecret，消息没有发出。请管理员检查 WECHAT_APP_SECRET。",
            "WeChat refused this server's app secret, so the message was not sent. Ask your"
            " administrator to check WECHAT_APP_SECRET.",
        ),
        False,
    ),
    40013: (
        502,
        (
            "微信不认识本服务器配置的 AppID，消息没有发出。请管理员检查 WECHAT_APP_ID。",
            "WeChat doesn't know this server's app ID, so the message was not sent. Ask your"
            " administrator to check WECHAT_APP_ID.",
        ),
        False,
    ),
    40164: (
        502,
        (
            "本服务器的 IP 地址不在公众号的 IP 白名单里，微信拒绝发送。"
            "请管理员在微信公众平台把本服务器的 IP 加入白名单。",
            "This server's IP address is not on the Official Account's IP whitelist, so WeChat"
            " refused the message. Ask your administrator to add it to the whitelist in the"
            " Official Accounts Platform.",
        ),
        False,
    ),
    48001: (
        502,
        (
            "这个公众号没有客服消息接口的权限，控制台无法回复客户。"
            "请管理员在微信公众平台确认公众号已认证并拥有客服消息接口。",
            "This Official Account is not authorised for WeChat's customer-service message API,"
            " so the console can't reply to customers. Ask your administrator to check in the"
            " Official Accounts Platform that the account is verified and has this API.",
        ),
        False,
    ),
    45002: (
        422,
        (
            "消息太长，微信不接受。请缩短后再发，或分成几条发送。",
            "The message is too long for WeChat. Shorten it, or send it in several parts.",
        ),
        False,
    ),
    45009: (503, _QUOTA_TODAY, False),
    45011: (
        429,
        (
            "发送太频繁，微信暂时限流，消息没有发出。请等一分钟再发。",
            "Messages are going out too fast and WeChat is holding them back; this one was not"
            " sent. Wait a minute, then send it again.",
        ),
        False,
    ),
    43004: (
        409,
        (
            "客户已取消关注公众号，消息无法送达。客户重新关注并发消息后才能回复；"
            "会话已转为“等待客户”。",
            "The customer has unfollowed the account, so the message can't be delivered. You can"
            " reply only after they follow again and write; the conversation is parked as"
            " waiting for the customer.",
        ),
        True,
    ),
    40003: (
        502,
        (
            "微信认不出这位客户（可能已取消关注，或不是本公众号的用户），消息无法送达。"
            "如果每位客户都这样，请管理员检查 WECHAT_APP_ID 是否是这个公众号的。",
            "WeChat doesn't recognise this customer (they may have unfollowed, or belong to"
            " another account), so the message can't be delivered. If it happens with every"
            " customer, ask your administrator to check that WECHAT_APP_ID is this account's.",
        ),
        False,
    ),
}

# WeChat's own -1 ("system busy"), as opposed to no answer at all
_BUSY = SendFailure(
    "wechat_busy",
    503,
    "微信系统繁忙，消息没有发出。请稍后再发一次。",
    "WeChat says it is busy, so the message was not sent. Send it again in a moment.",
)

# not WeChat's refusal: something on this server failed before or while sending
_OUR_FAULT = SendFailure(
    "send_failed",
    503,
    "消息没有发出：本服务器发送时出错。请稍后再发一次；如果一直这样，请管理员查看服务器日志。",
    "The message was not sent: this server failed while sending it. Try again in a moment;"
    " if it keeps happening, ask your administrator to look at the server log.",
)

KNOWN_CODES: frozenset[int] = frozenset(_TABLE)


def send_failure(code: int, errmsg: str = "", *, reached: bool = True) -> SendFailure:
    """What a failed customer-service message means for the agent.

    ``reached`` is False when no answer came from WeChat at all (``-1`` from our client);
    WeChat answering ``-1`` itself means it is busy.
    """
    if code == UNREACHABLE and reached:
        return _BUSY
    known = _TABLE.get(code)
    if known is not None:
        status, (zh, en), parks = known
        return SendFailure(f"wechat_{code}", status, zh, en, parks)
    said = " ".join(errmsg.split())[:ERRMSG_SHOWN] or "-"
    return SendFailure(
        f"wechat_{code}",
        502,
        f"微信没有接受这条消息（错误码 {code}：{said}），消息没有发出。"
        "请稍后再试；如果一直这样，请把这个错误码告诉管理员。",
        f"WeChat did not accept the message (error {code}: {said}), so it was not sent."
        " Try again later; if it keeps happening, give this code to your administrator.",
    )


def failure_of(exc: BaseException) -> SendFailure:
    """The failure behind an exception from the sender: a WeChat error by its code; anything
    else is a fault on our side, logged where it happened (the message did not go out)."""
    if isinstance(exc, WeChatApiError):
        return send_failure(exc.errcode, exc.errmsg, reached=exc.reached)
    return _OUR_FAULT
