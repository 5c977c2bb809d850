"""Why billbot cannot start, in one line each instead of a traceback: the listening address is
taken or is not this machine's, the database cannot be reached or opened, or its URL cannot be
used. Each line says what failed, where (a database URL with its password masked), and what
to do — in Chinese, then English."""

from __future__ import annotations

import asyncio
import errno
import re
import socket

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, InvalidRequestError, NoSuchModuleError

from storage.db import create_engine

DATABASE_TIMEOUT_SECONDS = 20  # a first connection that takes longer is reported, not awaited
URL_EXAMPLES = "sqlite+aiosqlite:///var/billbot.db, postgresql+asyncpg://USER:PASSWORD@HOST:5432/DB"


class CannotStart(Exception):
    """A start-up failure in one line for the operator; ``str()`` is that line."""

    def __init__(self, zh: str, en: str) -> None:
        super().__init__(f"billbot: {zh} / {en}")
        self.zh = zh
        self.en = en


def masked_url(url: str) -> str:
    """The database URL as it may be printed: any password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:  # not a URL SQLAlchemy reads: mask what looks like user:password@
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- the listening address -----------------------------------------------------------------


def check_listen_address(host: str, port: int) -> None:
    """Binds and releases ``host:port`` as the server will (address reuse on, IPv6 sockets
    IPv6 only): raises CannotStart if the server could not listen there."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise listen_failure(host, port, exc) from None
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                raise listen_failure(host, port, exc) from None


def listen_failure(host: str, port: int, exc: OSError) -> CannotStart:
    """What binding ``host:port`` failing with ``exc`` means, and what to do."""
    where = address(host, port)
    if exc.errno == errno.EADDRINUSE:
        return CannotStart(
            f"{where} 已被占用：请先停止占用它的服务，或用 --port 或 BILLBOT_PORT 换一个端口",
            f"{where} is already in use — stop the other server or choose another port with"
            " --port or BILLBOT_PORT",
        )
    if exc.errno == errno.EACCES:
        return CannotStart(
            f"没有权限监听 {where}（1024 以下的端口需要管理员权限）：请用 --port 或"
            " BILLBOT_PORT 换一个 1024 以上的端口",
            f"not allowed to listen on {where} (ports below 1024 need root) — choose a port"
            " above 1024 with --port or BILLBOT_PORT",
        )
    if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
        return CannotStart(
            f"{host} 不是本机的地址，无法监听：请检查 --host 或 BILLBOT_HOST（例如 127.0.0.1）",
            f"cannot listen on {host}: it is not an address of this machine — check --host or"
            " BILLBOT_HOST (e.g. 127.0.0.1)",
        )
    return CannotStart(
        f"无法监听 {where}（{exc.strerror or exc}）：请检查 --host、--port"
        " 或 BILLBOT_HOST、BILLBOT_PORT",
        f"cannot listen on {where} ({exc.strerror or exc}) — check --host and --port, or"
        " BILLBOT_HOST and BILLBOT_PORT",
    )


# -- the database --------------------------------------------------------------------------


async def reach_database(url: str) -> None:
    """Opens one connection to the database and closes it: raises CannotStart if that fails
    (or takes longer than ``DATABASE_TIMEOUT_SECONDS``)."""
    try:
        engine = create_engine(url)
    except Exception as exc:  # the URL itself: unreadable, or a driver we don't have
        raise database_failure(url, exc) from None
    try:
        async with asyncio.timeout(DATABASE_TIMEOUT_SECONDS), engine.connect():
            pass
    except Exception as exc:
        raise database_failure(url, exc) from None
    finally:
        await engine.dispose()


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps: SQLAlchemy's ``orig``, then causes and contexts."""
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found and len(found) < 8:
        found.append(current)
        orig = getattr(current, "orig", None)
        current = (
            orig
            if isinstance(orig, BaseException) and orig not in found
            else (current.__cause__ or current.__context__)
        )
    return found


def database_failure(url: str, exc: BaseException) -> CannotStart:
    """What failing to open the database at ``url`` with ``exc`` means, and what to do."""
    shown = masked_url(url)
    causes = _causes(exc)

    def caused_by(*kinds: type[BaseException]) -> bool:
        return any(isinstance(c, kinds) for c in causes)

    if caused_by(ArgumentError, NoSuchModuleError, ModuleNotFoundError, InvalidRequestError):
        return CannotStart(
            f"配置有误：BILLBOT_DATABASE_URL={shown} 不是可用的数据库地址，"
            f"请改成例如 {URL_EXAMPLES}",
            f"bad setting: BILLBOT_DATABASE_URL={shown} is not a database URL billbot can use;"
            f" use e.g. {URL_EXAMPLES}",
        )
    try:
        parsed = make_url(url)
        sqlite, database = parsed.get_backend_name() == "sqlite", parsed.database or ""
    except ArgumentError:  # refused above already; never fail while saying why
        sqlite, database = False, ""
    if sqlite:
        return CannotStart(
            f"无法打开数据库文件 {database}：请确认它所在的文件夹存在且可写，"
            "或修改 BILLBOT_DATABASE_URL",
            f"cannot open the database file {database} (from {shown}) — check that its folder"
            " exists and is writable, or change BILLBOT_DATABASE_URL",
        )
    if caused_by(asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError):
        why = ("用户名或密码被拒绝", "the user name or password was refused")
        what = ("请检查 URL 里的用户名和密码", "check the user name and password in it")
    elif caused_by(asyncpg.InvalidCatalogNameError):
        name = database or "…"
        why = ("该数据库不存在", "that database does not exist")
        what = (f"请先创建它（例如 createdb {name}）", f"create it first (e.g. createdb {name})")
    elif caused_by(socket.gaierror):
        why = ("找不到这个主机名", "host name not found")
        what = ("请检查 URL 里的主机名", "check the host name in it")
    elif caused_by(ConnectionRefusedError):
        why = ("连接被拒绝", "connection refused")
        what = (
            "请确认数据库服务已启动，并在该主机和端口上监听",
            "check that the database server is running and listening on that host and port",
        )
    elif caused_by(TimeoutError):
        why = ("连接超时", "timed out")
        what = (
            "请检查网络、防火墙以及 URL 里的主机和端口",
            "check the network, any firewall, and the host and port in it",
        )
    else:
        detail = str(causes[-1]).strip().splitlines()[0][:160] if str(causes[-1]).strip() else ""
        detail = detail or type(causes[-1]).__name__
        why = (detail, detail)
        what = (
            "请确认数据库服务正常运行，并检查这个地址",
            "check that the database server is running, and this URL",
        )
    return CannotStart(
        f"无法连接数据库 {shown}（{why[0]}）：{what[0]}，或修改 BILLBOT_DATABASE_URL",
        f"cannot reach the database at {shown} ({why[1]}) — {what[1]}, or change"
        " BILLBOT_DATABASE_URL",
    )
