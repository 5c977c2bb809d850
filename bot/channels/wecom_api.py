"""Outbound calls to WeCom's 客户联系 API: contact ways, remarks, welcome messages.

The access token is shared by every process through the database, refreshed by one at a time,
exactly as the Official Account's is (see ``wechat_api``); only the token request differs.
"""

from __future__ import annotations

import aiohttp

from bot.channels.wechat_api import NETWORK_ERROR, TokenedApi, TokenManager, WeChatApiError

MAX_QR_IMAGE = 2 * 1024 * 1024  # bytes: a contact-way QR image is a few kilobytes

# The errcode WeCom gives a welcome code that was already used or has lapsed (20 s).
WELCOME_ALREADY_SENT = frozenset({41096})


class WeComTokenManager(TokenManager):
    """WeCom's access token for the corp's 客户联系 secret."""

    service = "WeCom"
    token_path = "/cgi-bin/gettoken"

    @property
    def store_key(self) -> str:
        return f"wecom:{self._app_id}"

    def token_params(self) -> dict[str, str]:
        return {"corpid": self._app_id, "corpsecret": self._secret.reveal()}


class WeComApi(TokenedApi):
    """The calls the bot makes to WeCom; each raises ``WeChatApiError`` with WeCom's errcode."""

    async def add_contact_way(self, userid: str, state: str) -> tuple[str, str]:
        """A one-person 联系我 QR code carrying ``state``: returns (config_id, qr_code URL)."""
        answer = await self._post(
            "/cgi-bin/externalcontact/add_contact_way",
            {"type": 1, "scene": 2, "user": [userid], "skip_verify": True, "state": state},
            what="add_contact_way",
        )
        config_id, qr_code = answer.get("config_id"), answer.get("qr_code")
        if not isinstance(config_id, str) or not isinstance(qr_code, str) or not qr_code:
            raise WeChatApiError(NETWORK_ERROR, "add_contact_way: no config_id or qr_code")
        return config_id, qr_code

    async def del_contact_way(self, config_id: str) -> None:
        await self._post(
            "/cgi-bin/externalcontact/del_contact_way",
            {"config_id": config_id},
            what="del_contact_way",
        )

    async def remark(
        self, userid: str, external_userid: str, remark: str, description: str
    ) -> None:
        await self._post(
            "/cgi-bin/externalcontact/remark",
            {
                "userid": userid,
                "external_userid": external_userid,
                "remark": remark,
                "description": description,
            },
            what="remark",
        )

    async def send_welcome(self, welcome_code: str, text: str) -> None:
        """The one welcome message WeCom allows within 20 s; "already sent" counts as done."""
        try:
            await self._post(
                "/cgi-bin/externalcontact/send_welcome_msg",
                {"welcome_code": welcome_code, "text": {"content": text}},
                what="send_welcome_msg",
            )
        except WeChatApiError as exc:
            if exc.errcode not in WELCOME_ALREADY_SENT:
                raise
            return
        self._count_sent("wecom", "welcome")

    async def fetch_image(self, url: str) -> bytes:
        """The QR image WeCom serves at ``url`` (fetched here so it can be watermarked)."""
        try:
            async with self._http.get(url, timeout=self._timeout) as resp:
                if resp.status != 200:
                    raise WeChatApiError(NETWORK_ERROR, f"QR image: HTTP {resp.status}")
                body = await resp.content.read(MAX_QR_IMAGE + 1)
            if len(body) > MAX_QR_IMAGE:
                raise WeChatApiError(NETWORK_ERROR, "QR image: larger than expected")
        except (TimeoutError, aiohttp.ClientError) as exc:
            error = WeChatApiError(NETWORK_ERROR, f"QR image: {type(exc).__name__}")
            self._count_error(error)
            raise error from None
        except WeChatApiError as exc:
            self._count_error(exc)
            raise
        return body
