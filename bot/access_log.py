"""The access log: one line per request, never a query string, quiet by default.

Query strings carry what must not sit in a log file: WeChat's signatures and nonces (enough,
with a plaintext body, to speak as a customer), OpenIDs, unmask reasons. Card links carry a
signed token in the path. So a line holds the method, the path with tokens cut, the status,
the size and the time, and nothing the caller chose to put after ``?``.
"""

from __future__ import annotations

import logging
from enum import StrEnum

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

# Asked for all day long by health checks and the console (its page, static files, partials
# and JSON reads, polled): never worth a line at `errors`, whatever the answer. What the
# console changes (a login, a reply, a resolve) is an action: refused, it is logged.
QUIET_PATHS = ("/healthz", "/metrics", "/favicon.ico")
CONSOLE = "/console"  # the console's page and everything under /console/, when read
CONSOLE_READS = "/api/"  # the console's JSON API, when it only reads (GET, HEAD)
READS = ("GET", "HEAD")


def is_quiet(method: str, path: str) -> bool:
    """Requests the access log skips at `errors`: health checks and the console's polling."""
    if path in QUIET_PATHS:
        return True
    console = path == CONSOLE or path.startswith((CONSOLE + "/", CONSOLE_READS))
    return console and method in READS


class AccessLog(StrEnum):
    ALL = "all"  # every request
    ERRORS = "errors"  # 4xx and 5xx, except the console's polling and health checks
    OFF = "off"


def loggable_path(path: str) -> str:
    """The path as it may be logged: a card link's token is replaced by an ellipsis."""
    if path.startswith("/card/"):
        return "/card/…"
    return path


def access_logger_class(mode: AccessLog) -> type[AbstractAccessLogger]:
    """An aiohttp access-logger class that writes lines for ``mode``."""

    class BillbotAccessLogger(AbstractAccessLogger):
        @property
        def enabled(self) -> bool:
            return mode is not AccessLog.OFF and self.logger.isEnabledFor(logging.INFO)

        def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
            if mode is AccessLog.OFF:
                return
            path = request.path
            if mode is AccessLog.ERRORS and (
                response.status < 400 or is_quiet(request.method, path)
            ):
                return
            self.logger.info(
                '%s "%s %s" %d %dB %.1fms',
                request.remote or "-",
                request.method,
                loggable_path(path),
                response.status,
                response.body_length,
                time * 1000,
            )

    return BillbotAccessLogger
