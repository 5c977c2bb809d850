"""The console API's route table, entry by entry: one operation each, read twice — to register
its aiohttp route (``bot.handlers.console``) and to write the OpenAPI document
(``bot.console.openapi``) — so what is served and what is described are one list."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from aiohttp import web
from pydantic import BaseModel

from bot.console.api_models import Frame, NoInput, Out
from bot.throttle import AddressThrottle

I = TypeVar("I", bound=BaseModel)  # noqa: E741 — the input model (a Body or a Query)
O = TypeVar("O", bound=Out)  # noqa: E741 — the response model

Words = tuple[str, str]  # (Chinese, English)

_PATH_ID = re.compile(r"\{(\w+)\}")
ID_PATTERN = r"\d{1,9}"  # fits PostgreSQL integer ids; a longer one is no route (404)


class Access(StrEnum):
    """Who may call an operation (the guard checks the session, the route the role)."""

    PUBLIC = "public"  # no session needed: the login and the API's description
    AGENT = "agent"  # any logged-in agent
    ADMIN = "admin"  # admins only


@dataclass(frozen=True)
class WithCookie(Generic[O]):
    """A response that also sets the session cookie (``session`` is its token) or, with
    ``session=None``, clears it."""

    body: O
    session: str | None


@dataclass(frozen=True)
class Endpoint(Generic[I, O]):
    """One JSON operation. ``path`` is in OpenAPI form (``/api/handoffs/{id}``; every path
    parameter is an id). The input model is read from the JSON body, or from the query string
    for GET; ``NoInput`` reads nothing."""

    method: str
    path: str
    handler: Callable[[web.Request, I], Awaitable[O | WithCookie[O]]]
    takes: type[I]
    gives: type[O]
    summary: Words
    access: Access = Access.AGENT
    one_time_ok: bool = False  # open to an agent who has not yet changed a one-time password
    refusals: tuple[int, ...] = ()  # statuses beyond those every such operation may answer
    status: int = 200
    throttle: web.AppKey[AddressThrottle] | None = None  # counted per address, before the body

    @property
    def changes(self) -> bool:
        return self.method != "GET"

    @property
    def reads_body(self) -> bool:
        return self.changes and self.takes is not NoInput

    @property
    def reads_query(self) -> bool:
        return not self.changes and self.takes is not NoInput

    @property
    def path_ids(self) -> list[str]:
        return _PATH_ID.findall(self.path)

    @property
    def routed_path(self) -> str:
        """The path as aiohttp routes it: ids are digits only."""
        return _PATH_ID.sub(lambda m: f"{{{m[1]}:{ID_PATTERN}}}", self.path)


@dataclass(frozen=True)
class Socket:
    """The live feed: a WebSocket carrying ``frames`` both ways."""

    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    summary: Words
    description: str
    frames: type[Frame] = Frame
    method: str = "GET"
    access: Access = Access.AGENT
    one_time_ok: bool = False

    @property
    def routed_path(self) -> str:
        return self.path


class Route(Protocol):
    """What every entry of the table has (an ``Endpoint`` or the ``Socket``)."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def summary(self) -> Words: ...
    @property
    def access(self) -> Access: ...
    @property
    def one_time_ok(self) -> bool: ...


def narrow(route: Route) -> Endpoint[Any, Any] | Socket:
    """The entry as what it is (the table is typed by what entries share)."""
    if isinstance(route, Endpoint | Socket):
        return route
    raise TypeError(f"{route.path}: not an Endpoint or a Socket")
