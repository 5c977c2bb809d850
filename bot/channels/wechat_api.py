"""Outbound calls to the WeChat Official Account API: our own async client and token manager.

wechatpy's client is synchronous and refreshes tokens per process; WeChat keeps one valid
token per app, so two processes refreshing on their own keep killing each other's token.
Here the token lives in the database and one process at a time refreshes it, under a lease.
Neither the app secret nor a token is ever logged or put in an exception message.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.config import Secret
from bot.metrics import Metrics
from storage.repositories.tokens import TokenRepository

log = logging.getLogger(__name__)

REFRESH_MARGIN = timedelta(minutes=5)  # refresh early: a token this close to expiry is replaced
REFRESH_LEASE = timedelta(seconds=30)  # longer than one token request may take (timeout below)
WAIT_STEP = 0.5  # seconds between looks at the database while another process refreshes
MAX_WAITS = 30  # then refresh ourselves: the other refresher is presumably stuck or dead
REQUEST_TIMEOUT = 10.0  # seconds, per HTTP request to WeChat
DEFAULT_EXPIRES_IN = 7200

# WeChat's answers meaning "this access token is no good": refreshed and retried once.
TOKEN_REFUSED = frozenset({40001, 40014, 42001})
NETWORK_ERROR = -1  # WeChat's own "system busy"; also ours when no answer came (reached=False)


class WeChatApiError(Exception):
    """WeChat (or the way to it) refused a call: WeChat's ``errcode`` and ``errmsg``.

    ``reached`` is False when no answer came from WeChat at all (DNS, connection, timeout,
    an HTTP error, a body that is not JSON): the code is then ``NETWORK_ERROR``. What each
    code means for an agent is said in ``bot/handoff/send_failures.py``.
    """

    def __init__(self, errcode: int, errmsg: str, *, reached: bool = True) -> None:
        super().__init__(f"WeChat API error {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        self.reached = reached


async def _get_json(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    what: str,
    limit: aiohttp.ClientTimeout,
    params: Mapping[str, str],
    body: bytes | None = None,
) -> dict[str, Any]:
    """One request; every failure on the way becomes a WeChatApiError(-1).

    Messages name only ``what`` was called, never the URL: its query holds the token or secret.
    """
    try:
        async with http.request(
            method,
            url,
            params=params,
            data=body,
            headers={"Content-Type": "application/json; charset=utf-8"} if body else None,
            timeout=limit,
        ) as resp:
            if resp.status != 200:
                raise WeChatApiError(NETWORK_ERROR, f"{what}: HTTP {resp.status}", reached=False)
            # WeChat sometimes labels JSON text/plain, so decode it ourselves.
            payload = json.loads(await resp.text())
    except TimeoutError:
        raise WeChatApiError(
            NETWORK_ERROR, f"{what}: no answer within {limit.total or 0:g} s", reached=False
        ) from None
    except aiohttp.ClientError as exc:
        raise WeChatApiError(
            NETWORK_ERROR, f"{what}: {type(exc).__name__}", reached=False
        ) from None
    except ValueError:
        raise WeChatApiError(
            NETWORK_ERROR, f"{what}: the answer was not JSON", reached=False
        ) from None
    if not isinstance(payload, dict):
        raise WeChatApiError(
            NETWORK_ERROR, f"{what}: the answer was not a JSON object", reached=False
        )
    return payload


def _errcode(payload: Mapping[str, Any]) -> tuple[int, str]:
    try:
        code = int(payload.get("errcode", 0))
    except (TypeError, ValueError):
        code = NETWORK_ERROR
    return code, str(payload.get("errmsg", ""))


class TokenManager:
    """The app's access token: read from the database, refreshed by one process at a time."""

    service = "WeChat"  # named in logs
    token_path = "/cgi-bin/token"

    def __init__(
        self,
        http: aiohttp.ClientSession,
        sessions: async_sessionmaker[AsyncSession],
        base_url: str,
        app_id: str,
        app_secret: Secret,
        clock: Clock,
        *,
        wait: Callable[[float], Awaitable[None]] = asyncio.sleep,
        wait_step: float = WAIT_STEP,
        max_waits: int = MAX_WAITS,
        timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self._http = http
        self._sessions = sessions
        self._base = base_url.rstrip("/")
        self._app_id = app_id
        self._secret = app_secret
        self._clock = clock
        self._wait = wait
        self._wait_step = wait_step
        self._max_waits = max_waits
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        # Coroutines of this process queue here, so only one of them asks the database.
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(app_id={self._app_id!r}, base_url={self._base!r})"

    @property
    def store_key(self) -> str:
        """The token's row in the database (one per app)."""
        return self._app_id

    def token_params(self) -> dict[str, str]:
        """The token request's query; it holds the secret, so it is never logged."""
        return {
            "grant_type": "client_credential",
            "appid": self._app_id,
            "secret": self._secret.reveal(),
        }

    async def token(self) -> str:
        """A token with more than REFRESH_MARGIN left, refreshing it if need be."""
        async with self._lock:
            for looked in range(self._max_waits):
                now = self._clock.now()
                async with self._sessions.begin() as session:
                    repo = TokenRepository(session)
                    token, expires_at = await repo.get(self.store_key)
                    if token and expires_at and expires_at - now > REFRESH_MARGIN:
                        return token
                    took_lease = await repo.try_take_lease(
                        self.store_key, now, REFRESH_LEASE, refresh_before=now + REFRESH_MARGIN
                    )
                if took_lease:
                    return await self._refresh(lease_until=now + REFRESH_LEASE)
                if token and expires_at and expires_at > now:
                    return token  # still valid while another process fetches its successor
                if looked == 0:  # once: says why a send waits, and that only one refreshes
                    log.info(
                        "%s token for app %s is being refreshed by another process; waiting for it",
                        self.service,
                        self._app_id,
                    )
                await self._wait(self._wait_step)
            async with self._sessions.begin() as session:
                token, expires_at = await TokenRepository(session).get(self.store_key)
            if token and expires_at and expires_at - self._clock.now() > REFRESH_MARGIN:
                return token
            log.warning(
                "%s token refresh for app %s: the process holding the lease gave no result"
                " after %d looks; refreshing without it",
                self.service,
                self._app_id,
                self._max_waits,
            )
            return await self._refresh(lease_until=None)

    async def invalidate(self, token: str) -> None:
        """Forgets a token WeChat refused, so the next ``token()`` fetches a new one."""
        async with self._sessions.begin() as session:
            await TokenRepository(session).invalidate(self.store_key, token)

    async def _refresh(self, lease_until: datetime | None) -> str:
        started = self._clock.now()
        stored = False
        try:
            token, expires_in = await self._fetch()
            async with self._sessions.begin() as session:
                await TokenRepository(session).store(
                    self.store_key,
                    token,
                    started + timedelta(seconds=expires_in),
                    self._clock.now(),
                )
            stored = True
        finally:
            if lease_until is not None and not stored:
                # Let the next caller try at once instead of waiting out the lease.
                async with self._sessions.begin() as session:
                    await TokenRepository(session).release_lease(self.store_key, lease_until)
        log.info(
            "%s access token refreshed for app %s (valid %d s)",
            self.service,
            self._app_id,
            expires_in,
        )
        return token

    async def _fetch(self) -> tuple[str, int]:
        payload = await _get_json(
            self._http,
            "GET",
            f"{self._base}{self.token_path}",
            what="token request",
            limit=self._timeout,
            params=self.token_params(),
        )
        token = payload.get("access_token")
        if not isinstance(token, str) or not token:
            code, message = _errcode(payload)
            if code == 0:
                code, message = NETWORK_ERROR, "token request: no access_token in the answer"
            log.error(
                "%s refused the token request for app %s: errcode %d (%s)",
                self.service,
                self._app_id,
                code,
                message,
            )
            raise WeChatApiError(code, message)
        try:
            expires_in = int(payload.get("expires_in", DEFAULT_EXPIRES_IN))
        except (TypeError, ValueError):
            expires_in = DEFAULT_EXPIRES_IN
        return token, expires_in


class TokenedApi:
    """JSON calls under an access token; each retries at most once, on a refused token."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        tokens: TokenManager,
        base_url: str,
        *,
        timeout: float = REQUEST_TIMEOUT,
        metrics: Metrics | None = None,
    ) -> None:
        self._http = http
        self._tokens = tokens
        self._base = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._metrics = metrics

    def _count_error(self, exc: WeChatApiError) -> None:
        if self._metrics is not None:
            self._metrics.api_errors.labels(self._tokens.service.lower(), str(exc.errcode)).inc()

    def _count_sent(self, channel: str, kind: str) -> None:
        if self._metrics is not None:
            self._metrics.messages.labels(channel, "out", kind).inc()

    async def _post(self, path: str, payload: Mapping[str, Any], *, what: str) -> dict[str, Any]:
        """The answer of a call that succeeded (errcode 0); WeChatApiError otherwise, counted
        in /metrics by service and errcode.

        Network errors are not retried: the call may have arrived, and a retry could act twice.
        """
        try:
            return await self._post_once_or_twice(path, payload, what=what)
        except WeChatApiError as exc:
            self._count_error(exc)
            raise

    async def _post_once_or_twice(
        self, path: str, payload: Mapping[str, Any], *, what: str
    ) -> dict[str, Any]:
        # WeChat shows \\u escapes literally in some messages: send the UTF-8 itself.
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        for attempt in (1, 2):
            token = await self._tokens.token()
            answer = await _get_json(
                self._http,
                "POST",
                f"{self._base}{path}",
                what=what,
                limit=self._timeout,
                params={"access_token": token},
                body=body,
            )
            code, message = _errcode(answer)
            if code == 0:
                return answer
            if code in TOKEN_REFUSED and attempt == 1:
                log.warning(
                    "%s refused the access token (errcode %d) for a %s; refreshing and"
                    " retrying once",
                    self._tokens.service,
                    code,
                    what,
                )
                await self._tokens.invalidate(token)
                continue
            raise WeChatApiError(code, message)
        raise AssertionError("unreachable: the second attempt returns or raises")


@dataclass(frozen=True)
class SceneQr:
    """A parametric QR code WeChat made: what the code holds (``url``) and its lifetime."""

    url: str
    ticket: str
    expire_seconds: int


MAX_QR_SECONDS = 30 * 24 * 3600  # temporary codes live at most 30 days


class WeChatApi(TokenedApi):
    """The calls the bot makes to the Official Account API."""

    async def create_scene_qr(self, scene: str, expire_seconds: int) -> SceneQr:
        """A temporary QR code carrying ``scene`` (at most 64 characters): scanning it sends a
        ``subscribe`` (new followers) or ``SCAN`` event with it. WeChatApiError if refused."""
        payload = {
            "expire_seconds": min(expire_seconds, MAX_QR_SECONDS),
            "action_name": "QR_STR_SCENE",
            "action_info": {"scene": {"scene_str": scene}},
        }
        answer = await self._post("/cgi-bin/qrcode/create", payload, what="scene QR code")
        url, ticket = answer.get("url"), answer.get("ticket")
        if not isinstance(url, str) or not isinstance(ticket, str):
            raise WeChatApiError(-1, "qrcode/create answered without url or ticket")
        seconds = answer.get("expire_seconds")
        return SceneQr(url, ticket, seconds if isinstance(seconds, int) else expire_seconds)

    async def send_text(self, openid: str, text: str) -> None:
        """A customer-service text message; raises WeChatApiError if WeChat refuses it."""
        payload = {"touser": openid, "msgtype": "text", "text": {"content": text}}
        await self._post("/cgi-bin/message/custom/send", payload, what="customer message")
        self._count_sent("wechat", "api")
