"""The `billbot` command (same as `python -m bot`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import signal
import sys
from collections.abc import Sequence
from dataclasses import asdict, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from bot.access_log import AccessLog, access_logger_class
from bot.app import create_app
from bot.clock import SystemClock
from bot.config import (
    DEMO_SECRET_KEY,
    DEMO_TOKEN,
    Settings,
    SettingsError,
    fresh_secrets,
    is_loopback,
)
from bot.demo import seed_demo
from bot.roster import DUTY_WORDS, Roster, add_ways
from bot.startup import (
    CannotStart,
    check_listen_address,
    listen_failure,
    masked_url,
    reach_database,
)
from storage.crypto import configure as configure_keyring
from storage.db import create_engine, migrate, session_factory
from storage.records import ContactRecord
from storage.repositories import HandoffRepository

if TYPE_CHECKING:
    from rich.console import Console
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from bot.console.auth import LoginState
    from storage.repositories.agents import AgentRecord

log = logging.getLogger("billbot")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="billbot", description="WeChat bill → service contact bot")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the webhook server (migrates the schema first)")
    demo = sub.add_parser("demo", help="seed demo data if the database is empty, then serve")
    for cmd in (serve, demo):
        cmd.add_argument("--host", default=None)
        cmd.add_argument("--port", type=parse_port, default=None)
        cmd.add_argument("--workers", type=int, default=1)

    chat = sub.add_parser(
        "chat", help="be a customer: talk to a running server over WeChat's protocol"
    )
    chat.add_argument("--url", default=None, help="server base URL (default BILLBOT_PUBLIC_URL)")
    chat.add_argument("--user", default=None, help="the customer's OpenID")

    for kind in ("orders", "contacts"):
        group = sub.add_parser(kind, help=f"manage {kind}").add_subparsers(
            dest="action", required=True
        )
        imp = group.add_parser("import", help=f"upsert {kind} from a CSV file")
        imp.add_argument("file", type=Path)
        if kind == "orders":
            imp.add_argument(
                "--qr", action="store_true", help="also make each order's receipt QR code (PNG)"
            )
            imp.add_argument("--out", type=Path, default=Path("qr"), help="where PNGs go (qr/)")
        if kind == "contacts":
            add_contact_commands(group)

    qr = sub.add_parser(
        "qr", help="receipt QR codes: scanning one leads to the order's card, nothing typed"
    )
    qr.add_argument("order_no", nargs="+", help="order numbers (already imported)")
    qr.add_argument("--out", type=Path, default=Path("qr"), help="where the PNGs go (qr/)")
    qr.add_argument("--days", type=int, default=30, help="days the codes work (at most 30)")

    handoffs = sub.add_parser("handoffs", help="the handoff queue").add_subparsers(
        dest="action", required=True
    )
    listing = handoffs.add_parser("list", help="list waiting handoffs")
    listing.add_argument("--json", action="store_true")

    agents = sub.add_parser("agents", help="console logins").add_subparsers(
        dest="action", required=True
    )
    add_agent = agents.add_parser("add", help="create a console login; prints a one-time password")
    add_agent.add_argument("name")
    add_agent.add_argument("--role", choices=("agent", "admin"), default="agent")
    unlock = agents.add_parser("unlock", help="lift a login's lockout after wrong passwords")
    unlock.add_argument("name")
    add_agent_admin_commands(agents)

    report = sub.add_parser("report", help="figures").add_subparsers(dest="action", required=True)
    queue_report = report.add_parser("queue", help="today's handoff queue figures")
    queue_report.add_argument("--json", action="store_true")
    funnel = report.add_parser("funnel", help="the conversion funnel, step by step")
    funnel.add_argument("--since", type=parse_day, help="first day (YYYY-MM-DD, China time)")
    funnel.add_argument("--until", type=parse_day, help="last day, inclusive")
    funnel.add_argument("--json", action="store_true")

    keys = sub.add_parser("keys", help="secrets").add_subparsers(dest="action", required=True)
    keys.add_parser("new", help="print fresh secrets to paste into .env")
    rotate = keys.add_parser(
        "rotate", help="re-seal every personal field under the newest key (resumable)"
    )
    rotate.add_argument("--batch", type=int, default=500, help="rows per transaction")

    audit = sub.add_parser("audit", help="the append-only audit log (no personal data in clear)")
    audit.add_argument("--since", type=parse_day, help="first day (YYYY-MM-DD, China time)")
    audit.add_argument("--json", action="store_true")

    sub.add_parser("purge", help="run the retention job once")
    sub.add_parser("migrate", help="apply database migrations")
    return p


def add_agent_admin_commands(agents: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`billbot agents list | reset-password | disable | enable`."""
    listing = agents.add_parser("list", help="every login: role, status, last seen")
    listing.add_argument("--json", action="store_true")
    reset = agents.add_parser(
        "reset-password",
        help="print a new one-time password (changed at next login); ends sessions, lifts locks",
    )
    reset.add_argument("name")
    disable = agents.add_parser(
        "disable", help="the login can no longer sign in; what it holds goes back to the queue"
    )
    disable.add_argument("name")
    enable = agents.add_parser("enable", help="a disabled login may sign in again")
    enable.add_argument("name")


def parse_port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port; use 1 to 65535, e.g. 8080")
    return port


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; use YYYY-MM-DD") from None


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = build_parser().parse_args(argv)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        settings = Settings.load()
    except SettingsError as exc:
        print(f"billbot: bad setting: {exc}", file=sys.stderr)
        return 2
    configure_keyring([k.reveal() for k in settings.secret_keys])
    command: str = args.command
    if uses_database(command, args):
        try:
            asyncio.run(reach_database(settings.database_url))
        except CannotStart as exc:
            print(exc, file=sys.stderr)
            return 1
    if command in ("serve", "demo"):
        host, port = args.host or settings.host, args.port or settings.port
        public_url = settings.public_url
        if public_url == f"http://{settings.host}:{settings.port}":  # the default follows
            public_url = f"http://{host}:{port}"
        settings = replace(settings, host=host, port=port, public_url=public_url)
        return serve(settings, demo=command == "demo", workers=max(1, args.workers))
    if command == "chat":
        from bot.chat import DEFAULT_USER, run_chat

        return asyncio.run(
            run_chat(args.url or settings.public_url, settings, args.user or DEFAULT_USER)
        )
    if command == "contacts" and args.action != "import":
        return run_contact_command(settings, args)
    if command in ("orders", "contacts"):
        qr_out = args.out if command == "orders" and args.qr else None
        return asyncio.run(import_file(settings, command, args.file, qr_out=qr_out))
    if command == "qr":
        return asyncio.run(receipt_qrs(settings, args.order_no, args.out, args.days))
    if command == "handoffs":
        return asyncio.run(list_handoffs(settings, as_json=args.json))
    if command == "agents" and args.action == "unlock":
        return asyncio.run(unlock_agent(settings, args.name))
    if command == "agents" and args.action == "add":
        return asyncio.run(add_agent(settings, args.name, args.role))
    if command == "agents":
        return asyncio.run(manage_agents(settings, args.action, args))
    if command == "report" and args.action == "funnel":
        return asyncio.run(report_funnel(settings, args.since, args.until, as_json=args.json))
    if command == "report":
        return asyncio.run(report_queue(settings, as_json=args.json))
    if command == "keys" and args.action == "rotate":
        return asyncio.run(rotate_keys(settings, max(1, args.batch)))
    if command == "keys":
        return print_fresh_secrets()
    if command == "audit":
        return asyncio.run(show_audit(settings, args.since, as_json=args.json))
    if command == "purge":
        return asyncio.run(purge(settings))
    if command == "migrate":
        return asyncio.run(run_migrate(settings))
    return 2  # argparse already refused anything else


def uses_database(command: str, args: argparse.Namespace) -> bool:
    """Commands that open the database, which is checked first (``serve`` and ``demo`` check
    it themselves, after their own refusals)."""
    if command in ("serve", "demo", "chat"):
        return False
    return not (command == "keys" and args.action == "new")


async def run_migrate(settings: Settings) -> int:
    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()
    print(f"schema is up to date on {engine.url.render_as_string(hide_password=True)}")
    return 0


async def prepare(settings: Settings, demo: bool) -> str | None:
    """Migrates; for the demo, seeds data and an admin login, returning its one-time password.
    Warns in one line if BILLBOT_FALLBACK_CONTACT cannot stand in for anyone."""
    from bot.console.auth import AgentDirectory

    engine = create_engine(settings.database_url)
    password = None
    try:
        await migrate(engine)
        sessions = session_factory(engine)
        if demo and await seed_demo(sessions, SystemClock().now()):
            print("Seeded demo orders and contacts.")
            _, password = await AgentDirectory(sessions, SystemClock()).create("demo", "admin")
        problem = await fallback_contact_problem(sessions, settings.fallback_contact)
        if problem is not None:
            log.warning("%s", problem)
    finally:
        await engine.dispose()
    return password


def migration_failure(url: str, exc: Exception) -> str:
    """One line for a database that answers but cannot be migrated (rights, a newer schema)."""
    said = " ".join(str(exc).split())[:200] or type(exc).__name__
    return (
        f"billbot: 无法更新 {masked_url(url)} 的数据库结构（{said}）——请检查该数据库账号能否建表，"
        "以及数据库是否被更新版本的 billbot 用过。"
        f" / billbot: could not migrate the database at {masked_url(url)} ({said}) — check that"
        " its user may create tables and that no newer billbot has used it."
    )


def local_url(host: str, port: int) -> str:
    """Where a client on this machine reaches a server listening on ``host:port`` (a server on
    every address is reached on loopback)."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def demo_banner(settings: Settings, password: str | None) -> str:
    url = local_url(settings.host, settings.port)
    login = (
        f"log in as  demo  with the one-time password  {password}  (you then choose your own)"
        if password
        else "log in with your agent account (new ones: ./run agents add NAME --role admin)"
    )
    return f"""
billbot is listening on {url}  (database: {masked_url(settings.database_url)})

Next, in a second terminal, be a customer:
    ./run chat --url {url}        (or .venv/bin/billbot chat --url {url})
and try:   DD20250503123456   →  同意  →  128.5
(other demo orders: 2025050322001456781234567890 paid 56.80; 4200001234202505031234567890 paid 99)
Type 转人工 at any point to reach the handoff queue; see it with `./run handoffs list`.

Agents work the queue at {url}/console :
{login}
"""


def run_server(settings: Settings, *, worker: bool = False) -> None:
    """One server process; the access log never records query strings (see bot.access_log).

    A worker of several shares the port (SO_REUSEPORT) and leaves the banner to the parent.
    """
    access = None if settings.access_log is AccessLog.OFF else logging.getLogger("billbot.access")

    async def serving() -> web.Application:
        return create_app(settings, background_jobs=True)  # in run_app's loop, as it needs

    web.run_app(
        serving(),
        host=settings.host,
        port=settings.port,
        reuse_port=worker or None,
        print=None if worker else print,
        access_log_class=access_logger_class(settings.access_log),
        access_log=access,
    )


def _run_worker(settings: Settings) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        run_server(settings, worker=True)
    except OSError as exc:  # the address was taken after the parent's check
        print(listen_failure(settings.host, settings.port, exc), file=sys.stderr)
        sys.exit(1)


def refusal_to_serve(settings: Settings) -> str | None:
    """Why this server must not start: public demo secrets on a reachable address."""
    weak = settings.public_demo_secrets()
    if not weak or is_loopback(settings.host):
        return None
    return (
        f"billbot: refusing to listen on {settings.host} with {', '.join(weak)} empty or at the"
        " public demo value: anyone could forge WeChat callbacks and card links. Run"
        " `billbot keys new`, put the values in .env (and WECHAT_TOKEN / WECHAT_AES_KEY in the"
        " Official Account's server settings too), or listen on 127.0.0.1."
    )


def warn_about_demo_credentials(settings: Settings) -> None:
    """Behind a reverse proxy a loopback server is public too: say so, loudly."""
    demo_keys = any(k.reveal() == DEMO_SECRET_KEY for k in settings.secret_keys)
    demo_wechat = settings.wechat.token.reveal() == DEMO_TOKEN
    local = settings.public_url.startswith(("http://127.", "http://localhost"))
    if (demo_keys or demo_wechat) and not local:
        log.warning(
            "BILLBOT_PUBLIC_URL is %s but %s still has the public demo value: set your own"
            " in .env (`billbot keys new` prints fresh ones) before customers use this server",
            settings.public_url,
            "BILLBOT_SECRET_KEYS" if demo_keys else "WECHAT_TOKEN",
        )


def serve(settings: Settings, *, demo: bool, workers: int) -> int:
    refusal = refusal_to_serve(settings)
    if refusal is not None:
        print(refusal, file=sys.stderr)
        return 2
    warn_about_demo_credentials(settings)
    try:
        check_listen_address(settings.host, settings.port)
        asyncio.run(reach_database(settings.database_url))
    except CannotStart as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        password = asyncio.run(prepare(settings, demo))
    except Exception as exc:  # reachable, yet the schema could not be brought up to date
        log.debug("migration failed", exc_info=True)
        print(migration_failure(settings.database_url, exc), file=sys.stderr)
        return 1
    if demo:
        print(demo_banner(settings, password), flush=True)
    if workers == 1:
        try:
            run_server(settings)
        except OSError as exc:  # the address was taken after the check above
            print(listen_failure(settings.host, settings.port, exc), file=sys.stderr)
            return 1
        return 0
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_run_worker, args=(settings,)) for _ in range(workers)]
    for proc in procs:
        proc.start()

    def stop_workers(_signum: int, _frame: object) -> None:
        # a service manager stops the parent with SIGTERM: the workers go with it, each
        # finishing its requests (aiohttp's own SIGTERM handling) before exiting
        for proc in procs:
            if proc.is_alive():
                proc.terminate()

    signal.signal(signal.SIGTERM, stop_workers)
    try:
        for proc in procs:
            proc.join()
    except KeyboardInterrupt:
        stop_workers(signal.SIGINT, None)
        for proc in procs:
            proc.join()
    return 0


def print_fresh_secrets() -> int:
    print("# Fresh secrets: paste into .env (git ignores it). Never reuse the demo values.")
    for name, value in fresh_secrets().items():
        # WeCom's pair stays commented: WeCom needs its corp id and secret beside them
        print(f"{'# ' if name.startswith('WECOM_') else ''}{name}={value}")
    print(
        "# WECHAT_TOKEN and WECHAT_AES_KEY must also be entered in the Official Account's"
        " server settings (服务器配置: Token, EncodingAESKey); the WECOM_ pair in the WeCom"
        " app's API receive settings, if you use WeCom."
    )
    return 0


async def receipt_qrs(settings: Settings, order_numbers: list[str], out: Path, days: int) -> int:
    from bot.receipt_qr import format_receipt_qrs, make_receipt_qrs

    made = await make_receipt_qrs(
        settings, order_numbers, out, SystemClock(), days=max(1, min(days, 30))
    )
    print(format_receipt_qrs(made))
    return 0 if all(qr.path is not None for qr in made) else 1


async def import_file(
    settings: Settings, kind: str, path: Path, *, qr_out: Path | None = None
) -> int:
    from bot.imports import ImportFileError, format_report, import_contacts, import_orders

    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
        run = import_orders if kind == "orders" else import_contacts
        try:
            report = await run(path, session_factory(engine), SystemClock(), progress=True)
        except ImportFileError as exc:
            print(f"billbot: {exc}", file=sys.stderr)
            return 2
    finally:
        await engine.dispose()
    print(format_report(report))
    if qr_out is not None and report.keys:
        qr_failed = await receipt_qrs(settings, report.keys, qr_out, 30)
        return 1 if report.errors or qr_failed else 0
    return 1 if report.errors else 0


# ---------------------------------------------------------------------------- contacts


def add_contact_commands(group: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``billbot contacts list|disable|enable`` beside ``contacts import``."""
    listing = group.add_parser("list", help="every contact: on duty or not, and how to add them")
    listing.add_argument("--json", action="store_true")
    for action, does in (
        ("disable", "take a contact off duty: no new cards name them"),
        ("enable", "put a contact back on duty"),
    ):
        group.add_parser(action, help=does).add_argument(
            "id", help="the contact's id (the contact column of the contacts CSV), e.g. C001"
        )


def run_contact_command(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "list":
        return asyncio.run(list_contacts(settings, as_json=args.json))
    return asyncio.run(set_contact_on_duty(settings, args.id, on_duty=args.action == "enable"))


_ADD_WAY_WORDS = {"qr": "二维码 QR", "wecom": "企业微信 WeCom"}


def _duty_words(on_duty: bool) -> str:
    return " ".join(DUTY_WORDS[on_duty])


async def list_contacts(settings: Settings, *, as_json: bool) -> int:
    from rich import box
    from rich.table import Table

    from bot.privacy.masking import mask_wechat_id

    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
        contacts = await Roster(session_factory(engine), SystemClock()).contacts()
    finally:
        await engine.dispose()
    items = [
        {
            "contact": c.contact,
            "name": c.name,
            "wechat_id_masked": mask_wechat_id(c.wechat_id),
            "store": c.store,
            "on_duty": c.on_duty,
            "add_by": add_ways(c, settings.wecom_enabled),
        }
        for c in contacts
    ]
    if as_json:
        print(json.dumps(items, ensure_ascii=False, indent=2))
        return 0
    if not items:
        print(
            "客服表为空：请用 billbot contacts import FILE.csv 导入客服。"
            " / The contacts table is empty: import contacts with billbot contacts import FILE.csv."
        )
        return 0
    on_duty = sum(1 for c in contacts if c.on_duty)
    # 80 terminal columns: the short columns never wrap; names and stores wrap if they must
    table = Table(
        title=f"客服 Contacts: {len(items)}（在岗 {on_duty} on duty）",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for column, wraps in (
        ("编号\nID", False),
        ("姓名\nname", True),
        ("微信号\nWeChat", False),
        ("门店\nstore", True),
        ("状态\nduty", False),
        ("客户添加\nadd by", False),
    ):
        table.add_column(column, no_wrap=not wraps, overflow="fold")
    wecom_off = False
    for contact, item in zip(contacts, items, strict=True):
        ways = [_ADD_WAY_WORDS[way] for way in add_ways(contact, settings.wecom_enabled)]
        if not ways and contact.wecom_userid:
            wecom_off = True
            ways = ["无法添加 none*"]
        table.add_row(
            contact.contact,
            contact.name,
            str(item["wechat_id_masked"]),
            contact.store or "-",
            _duty_words(contact.on_duty),
            "\n".join(ways) or "无法添加 none",
        )
    console = narrow_console()
    console.print(table)
    if wecom_off:
        console.print(
            "* 有企业微信账号，但企业微信未开启（WECOM_* 设置）。"
            " / * Has a WeCom account, but WeCom is off (the WECOM_* settings)."
        )
    return 0


async def set_contact_on_duty(settings: Settings, contact_key: str, *, on_duty: bool) -> int:
    """``contacts enable|disable ID``: on or off duty, audited (actor "cli")."""
    from bot.refusals import Refusal

    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
        roster = Roster(session_factory(engine), SystemClock())
        change = await roster.set_on_duty(contact_key, on_duty, actor="cli")
    except Refusal as exc:  # no such contact
        print(
            f"billbot: {exc.zh}billbot contacts list 列出全部。"
            f" / {exc.en} billbot contacts list shows them all.",
            file=sys.stderr,
        )
        return 2
    finally:
        await engine.dispose()
    print(describe_duty_change(change.before, change.after, settings))
    return 0


def describe_duty_change(before: ContactRecord, after: ContactRecord, settings: Settings) -> str:
    who_zh, who_en = (
        f"客服 {after.contact}（{after.name}）",
        f"Contact {after.contact} ({after.name})",
    )
    if before.on_duty == after.on_duty:
        zh, en = DUTY_WORDS[after.on_duty]
        return f"{who_zh}本来就是{zh}，未作更改。 / {who_en} was already {en}; nothing changed."
    if not after.on_duty:
        fallback = settings.fallback_contact
        instead_zh = (
            f"后备客服 {fallback} " if fallback else "人工（未设置 BILLBOT_FALLBACK_CONTACT）"
        )
        instead_en = (
            f"the fallback contact {fallback}"
            if fallback
            else "a person (BILLBOT_FALLBACK_CONTACT is not set)"
        )
        return (
            f"{who_zh}已设为离岗：指定此客服的订单改由{instead_zh}接待。"
            f"恢复：billbot contacts enable {after.contact}"
            f"\n{who_en} is now off duty: orders naming them go to {instead_en}."
            f" Undo: billbot contacts enable {after.contact}"
        )
    done = (
        f"{who_zh}已设为在岗：指定此客服的订单会再收到其名片。"
        f"\n{who_en} is now on duty: orders naming them get their card again."
    )
    if not add_ways(after, settings.wecom_enabled):
        done += (
            "\n注意：客户无法添加此客服（没有二维码，也没有可用的企业微信账号），这些订单会转人工。"
            "\nNote: no customer can add them (no qr_url and no usable WeCom account): those"
            " orders go to a person until their contacts CSV row has one."
        )
    return done


async def fallback_contact_problem(
    sessions: async_sessionmaker[AsyncSession], fallback: str
) -> str | None:
    """Why BILLBOT_FALLBACK_CONTACT (``fallback``) cannot stand in for anyone, in one line;
    None if it can, or is not set."""
    from storage.repositories import ContactRepository

    if not fallback:
        return None
    async with sessions() as session:
        contact = await ContactRepository(session).find(fallback)
    if contact is None:
        return (
            f"BILLBOT_FALLBACK_CONTACT={fallback} 不在客服表中：订单的客服缺失或离岗时，"
            f"客户会转人工。请导入该客服，或改正这个设置。"
            f" / BILLBOT_FALLBACK_CONTACT={fallback} names no contact"
            " in the contacts table: customers whose order's contact is missing or off duty go to"
            " a person. Import that contact (billbot contacts import) or fix the setting."
        )
    if not contact.on_duty:
        return (
            f"BILLBOT_FALLBACK_CONTACT={fallback} 是离岗状态，不能替人接待。"
            f"恢复：billbot contacts enable {fallback}"
            f" / BILLBOT_FALLBACK_CONTACT={fallback} is off duty and stands in for nobody."
            f" Undo: billbot contacts enable {fallback}"
        )
    return None


async def list_handoffs(settings: Settings, *, as_json: bool) -> int:
    """The open handoffs: status, owner and reason in words, the wait with units; ``--json``
    keeps the stored values."""
    from bot.console.labels import say_both
    from bot.durations import say_duration
    from bot.privacy.masking import mask_user_id
    from storage.repositories.agents import AgentRepository

    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
        async with session_factory(engine)() as session:
            rows = await HandoffRepository(session).list_open()
            names = await AgentRepository(session).names()
    finally:
        await engine.dispose()
    now = SystemClock().now()
    items = [
        {
            "ref": h.ref,
            "status": h.status,
            "owner": names.get(h.claimed_by) if h.claimed_by is not None else None,
            "reason": h.reason,
            "priority": h.priority,
            "channel": h.channel,
            "customer": mask_user_id(h.user_id),
            "order": f"****{h.order_tail}" if h.order_tail else None,
            "amount_confirmed": h.amount_confirmed,
            "failures": h.failures,
            "dropped_by": h.dropped_by,
            "created_at": h.created_at.isoformat(),
            "waiting_seconds": int((now - h.created_at).total_seconds()),
        }
        for h in rows
    ]
    if as_json:
        print(json.dumps(items, ensure_ascii=False, indent=2))
        return 0
    if not items:
        print("队列为空 / The handoff queue is empty.")
        return 0
    from rich.table import Table

    # 80 columns shared out: the short cells keep their width, owner and reason share the rest
    table = Table(
        title=f"人工队列 / Handoff queue ({len(items)})",
        expand=True,
        show_edge=False,
        collapse_padding=True,
    )
    table.add_column("编号\nref", no_wrap=True)
    table.add_column("状态\nstatus", width=12)
    table.add_column("处理人\nowner", ratio=1, min_width=8, overflow="fold")
    table.add_column("原因\nreason", ratio=2, min_width=14, overflow="fold")
    table.add_column("已等待\nwaited", no_wrap=True)
    table.add_column("订单\norder", no_wrap=True)
    for h, it in zip(rows, items, strict=True):
        # an unknown value reads the same in both languages: shown once
        # the console's words (an unknown stored value is shown as stored)
        status = "\n".join(dict.fromkeys(say_both(f"status_{h.status}") or (h.status,)))
        reason_words = say_both(f"reason_{h.reason}", n=h.failures) or (h.reason,)
        reason = "\n".join(dict.fromkeys(reason_words))
        owner = str(it["owner"]) if it["owner"] else "—"
        if h.dropped_by and not it["owner"]:
            owner = f"（{h.dropped_by} 超时未回复）\n({h.dropped_by} timed out)"
        wait = (now - h.created_at).total_seconds()
        order = str(it["order"] or "—")
        if h.amount_confirmed:
            order += "\n金额已核对\namount ok"
        table.add_row(
            h.ref, status, owner, reason, f"{say_duration(wait)}\n{say_duration(wait, 'en')}", order
        )
    narrow_console().print(table)
    return 0


async def purge(settings: Settings) -> int:
    from storage.retention import describe_purge, purge_expired

    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
        counts = await purge_expired(session_factory(engine), SystemClock().now())
    finally:
        await engine.dispose()
    print(describe_purge(counts))
    return 0


async def add_agent(settings: Settings, name: str, role: str) -> int:
    from bot.console.auth import AgentDirectory
    from bot.refusals import Refusal

    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
        try:
            agent, password = await AgentDirectory(session_factory(engine), SystemClock()).create(
                name, role
            )
        except Refusal as exc:
            print(f"billbot: {exc.zh} / {exc.en}", file=sys.stderr)
            return 1
    finally:
        await engine.dispose()
    print(f"Created {agent.role} login {agent.name!r} (id {agent.id}).")
    print(f"One-time password: {password}")
    print(
        "它只显示这一次；首次登录 /console 时必须修改。"
        " / It is shown only once and must be changed at the first login at /console."
    )
    return 0


async def report_queue(settings: Settings, *, as_json: bool) -> int:
    from datetime import timedelta

    from bot.handoff.events import EventBus
    from bot.handoff.hours import ServiceHours
    from bot.handoff.queue import HandoffService

    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
        service = HandoffService(
            session_factory(engine),
            SystemClock(),
            None,
            EventBus(),
            lease=timedelta(seconds=settings.claim_lease_seconds),
            hours=ServiceHours.parse(settings.service_hours),
        )
        figures = await service.today()
    finally:
        await engine.dispose()
    if as_json:
        print(json.dumps(asdict(figures), ensure_ascii=False, indent=2))
        return 0

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value / 60:.1f} min"

    from rich.console import Console
    from rich.table import Table

    table = Table(title="今日人工队列 / Handoff queue today (China time)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("waiting now / 等待中", str(figures.waiting))
    table.add_row("handled today / 今日已解决", str(figures.handled_today))
    table.add_row("avg wait / 平均等待", seconds(figures.avg_wait_seconds))
    table.add_row("avg first response / 平均首次回复", seconds(figures.avg_first_response_seconds))
    table.add_row("avg resolution / 平均解决", seconds(figures.avg_resolution_seconds))
    Console().print(table)
    return 0


async def report_funnel(
    settings: Settings, since: date | None, until: date | None, *, as_json: bool
) -> int:
    from bot.funnel import SIDE_STEPS, STEP_LABELS, funnel_report

    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
        report = await funnel_report(session_factory(engine), since, until)
    finally:
        await engine.dispose()
    if as_json:
        print(json.dumps(asdict(report), ensure_ascii=False, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    span = f"{report.since or '…'} – {report.until or '…'}"
    started = max(1, report.steps[0].count)
    table = Table(title=f"转化漏斗 / Conversion funnel ({span}, China time)")
    for column, justify in (("step", "left"), ("count", "right"), ("conv.", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    table.add_column("drop-off", justify="right")
    table.add_column("", no_wrap=True)
    for step in report.steps:
        zh, en = STEP_LABELS[step.name]
        bar = "█" * round(24 * step.count / started)
        table.add_row(
            f"{zh} {en}",
            str(step.count),
            f"{step.conversion:.0%}" if step.previous else "",
            str(step.drop_off) if step.previous and step.name not in SIDE_STEPS else "",
            bar,
        )
    console = Console()
    console.print(table)
    timing = report.time_to_card_seconds
    if timing["median"] is not None:
        console.print(
            f"time to card / 出名片用时: median {timing['median']:.0f} s, p90 {timing['p90']:.0f} s"
        )
    if report.abandoned_at:
        where = ", ".join(f"{STEP_LABELS[k][1]} {n}" for k, n in report.abandoned_at.items())
        console.print(f"abandoned after / 中途离开于: {where}")
    if report.contacts_lost:
        console.print(f"contacts added, then deleted / 添加后又删除: {report.contacts_lost}")
    return 0


async def rotate_keys(settings: Settings, batch: int) -> int:
    """Re-seals personal fields under the newest of BILLBOT_SECRET_KEYS, with a progress bar;
    interrupted, it runs again from where it stopped (sealed values are skipped)."""
    import time

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    from storage.crypto import keyring
    from storage.repositories import AuditRepository
    from storage.rotation import RotationReport, count_rows, rotate

    keys = keyring()
    engine = create_engine(settings.database_url)
    started = time.perf_counter()
    try:
        await migrate(engine)
        sessions = session_factory(engine)
        total = await count_rows(sessions)
        plain_lines = not sys.stdout.isatty()  # for logs: one line per batch
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            console=Console(stderr=True),
        ) as bar:
            task = bar.add_task(f"re-sealing under key {keys.newest_id}", total=max(total, 1))

            def advance(table: str, rows: int, report: RotationReport) -> None:
                bar.advance(task, rows)
                if plain_lines:
                    print(
                        f"{table}: {report.rows}/{total} rows, {report.resealed} re-sealed",
                        flush=True,
                    )

            report = await rotate(sessions, keys, batch=batch, progress=advance)
        async with sessions() as session, session.begin():
            await AuditRepository(session).record(
                "key_rotation",
                actor="system",
                target=f"key:{keys.newest_id}",
                reason=f"{report.resealed} values re-sealed, {report.reindexed} re-indexed",
                now=SystemClock().now(),
            )
    finally:
        await engine.dispose()
    seconds = time.perf_counter() - started
    print(
        f"Key rotation done in {seconds:.1f} s: {report.rows} rows, {report.resealed} values"
        f" re-sealed under key {keys.newest_id}, {report.current} already current."
        " The older keys can leave BILLBOT_SECRET_KEYS once every server runs with this list."
    )
    return 0


async def show_audit(settings: Settings, since: date | None, *, as_json: bool) -> int:
    from bot.funnel import CHINA, day_start
    from storage.repositories import AuditRepository

    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
        async with session_factory(engine)() as session:
            entries = await AuditRepository(session).since(day_start(since) if since else None)
    finally:
        await engine.dispose()
    rows = [
        {
            "at": e.at.isoformat(),
            "actor": e.actor,
            "action": e.action,
            "target": e.target,
            "reason": e.reason,
        }
        for e in entries
    ]
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print("审计日志为空 / The audit log is empty.")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"审计日志 / Audit log ({len(rows)})")
    for column in ("time (China)", "actor", "action", "target", "reason"):
        table.add_column(column)
    for e in entries:
        table.add_row(
            e.at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S"),
            e.actor,
            e.action,
            e.target,
            e.reason,
        )
    Console().print(table)
    return 0


async def unlock_agent(settings: Settings, name: str) -> int:
    from bot.console.auth import AgentDirectory

    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
        directory = AgentDirectory(session_factory(engine), SystemClock())
        record = await directory.find(name)
        if record is None:
            print(no_such_login(name), file=sys.stderr)
            return 2
        locked = await directory.unlock(record.id, actor="system")
    finally:
        await engine.dispose()
    print(
        f"Unlocked {record.name!r} ({locked} address(es) were locked out): they can sign in"
        f" again. / 已解锁（{locked} 个地址曾被锁定），可以重新登录。"
    )
    return 0


# -- console logins, for the operator: list, reset-password, disable, enable ----------------

MAX_COLUMNS = 80  # tables fit a default terminal; CJK characters take two columns


def narrow_console() -> Console:
    """Rich output at most ``MAX_COLUMNS`` wide, or the terminal's width if narrower."""
    from rich.console import Console

    return Console(width=min(MAX_COLUMNS, Console().width))


def no_such_login(name: str) -> str:
    return (
        f"billbot: 没有名为「{name}」的账号（billbot agents list 列出所有账号）"
        f" / no login named {name!r} (billbot agents list shows them all)"
    )


def say_login_status(login: LoginState) -> tuple[str, str]:
    """``(zh, en)``: the status in the console's words (one catalogue for both)."""
    from bot.console.labels import Labels

    return Labels("zh").plain_login_status(login), Labels("en").plain_login_status(login)


async def list_agents(settings: Settings, *, as_json: bool) -> int:
    from bot.console.auth import AgentDirectory
    from bot.durations import say_duration

    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
        logins = await AgentDirectory(session_factory(engine), SystemClock()).logins()
    finally:
        await engine.dispose()
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "name": r.name,
                        "role": r.role,
                        "status": str(r.status),
                        "must_change_password": r.must_change_password,
                        "locked_until": r.locked_until.isoformat() if r.locked_until else None,
                        "disabled_at": r.disabled_at.isoformat() if r.disabled_at else None,
                        "last_seen_at": r.last_seen_at.isoformat() if r.last_seen_at else None,
                        "last_seen_seconds": (
                            None if r.seen_seconds is None else int(r.seen_seconds)
                        ),
                    }
                    for r in logins
                ],
                ensure_ascii=False,
                indent=2,
            )
        )
        return 0
    if not logins:
        print(
            "还没有客服账号：billbot agents add NAME --role admin 创建一个。"
            " / No logins yet: create one with billbot agents add NAME --role admin."
        )
        return 0
    from rich.table import Table

    table = Table(title=f"客服账号 / Console logins ({len(logins)})")
    table.add_column("名字\nname", overflow="fold")
    table.add_column("角色\nrole")
    table.add_column("状态\nstatus", overflow="fold")
    table.add_column("最后在线\nlast seen", overflow="fold")
    roles = {"admin": "管理员\nadmin", "agent": "客服\nagent"}
    for r in logins:
        seen = r.seen_seconds
        last = (
            "从未登录\nnever"
            if seen is None
            else f"{say_duration(seen)}前\n{say_duration(seen, 'en')} ago"
        )
        zh, en = say_login_status(r)
        table.add_row(r.name, roles.get(r.role, r.role), f"{zh}\n{en}", last)
    narrow_console().print(table)
    return 0


async def manage_agents(settings: Settings, action: str, args: argparse.Namespace) -> int:
    """`billbot agents list | reset-password | disable | enable`; each change is audited."""
    if action == "list":
        return await list_agents(settings, as_json=args.json)
    from bot.console.auth import AgentDirectory

    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
        sessions = session_factory(engine)
        directory = AgentDirectory(sessions, SystemClock())
        record = await directory.find(args.name)
        if record is None:
            print(no_such_login(args.name), file=sys.stderr)
            return 2
        if action == "reset-password":
            _, password, locked = await directory.reset_password(record.id, actor="system")
            print_reset(record, password, locked)
        elif action == "disable":
            # the running server's lapse sweep gives their conversations back, with the live
            # events every console hears (this process has no feed to tell them)
            print_disabled(record, await directory.disable(record.id, actor="system"))
        else:
            if await directory.enable(record.id, actor="system"):
                print(
                    f"已启用「{record.name}」，可以重新登录。 / {record.name!r} may sign in again."
                )
            else:
                print(f"「{record.name}」本来就未停用。 / {record.name!r} was not disabled.")
    finally:
        await engine.dispose()
    return 0


def print_reset(record: AgentRecord, password: str, locked: int) -> None:
    print(f"New one-time password for {record.name!r}: {password}")
    lifted = (
        (f"，{locked} 个地址的锁定已解除", f"; lockouts from {locked} address(es) are lifted")
        if locked
        else ("", "")
    )
    print(
        f"它只显示这一次，「{record.name}」下次登录时必须修改；原有登录已全部退出{lifted[0]}。"
        " / It is shown only once and must be changed at the next login; every session of"
        f" theirs has ended{lifted[1]}."
    )
    if record.disabled_at is not None:
        print(
            "注意：这个账号仍是停用状态（billbot agents enable 恢复）。"
            " / Note: this login is still disabled (billbot agents enable restores it)."
        )


def print_disabled(record: AgentRecord, lapsed: int | None) -> None:
    if lapsed is None:
        print(f"「{record.name}」已经是停用状态。 / {record.name!r} was already disabled.")
        return
    print(
        f"已停用「{record.name}」：不能再登录，现有登录已退出；其 {lapsed} 个会话的认领已结束，"
        f"服务器会在几秒内把它们放回队列。"
        f" / Disabled {record.name!r}: they can no longer sign in and their sessions have ended;"
        f" the {lapsed} conversation(s) they held lapsed, and the server puts them back in the"
        f" queue within seconds."
    )
