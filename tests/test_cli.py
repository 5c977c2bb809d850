"""The operator's commands, run as `billbot …` would run them, on a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import unicodedata
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.cli import main
from bot.clock import FakeClock
from bot.console.labels import say_both
from bot.demo import seed_demo
from bot.messages import Inbound, InboundKind
from storage.db import create_engine, migrate, session_factory
from storage.repositories import Repositories
from tests.e2e.test_server_process import free_port
from tests.engine.test_dispatcher import make_dispatcher


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no stray .env from the repository
    for name in ("BILLBOT_DATABASE_URL", "BILLBOT_PORT", "BILLBOT_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BILLBOT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/cli.db")
    return tmp_path


def test_orders_import_reports_bad_rows_by_line_and_keeps_good_ones(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = workdir / "orders.csv"
    csv.write_text(
        "order_no,amount,store\nDD20250503123456,128.50,旗舰店\nDD20250503999999,abc,旗舰店\n"
        "DD20250503777777,99,城东店\n",
        encoding="utf-8",
    )
    assert main(["orders", "import", str(csv)]) == 1  # some rows were bad
    out = capsys.readouterr().out
    assert "3" in out and "abc" in out
    assert main(["handoffs", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_contacts_import_with_a_missing_column_is_refused_with_advice(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = workdir / "contacts.csv"
    csv.write_text("contact,name\nalice,Alice\n", encoding="utf-8")
    assert main(["contacts", "import", str(csv)]) == 2
    assert "wechat_id" in capsys.readouterr().err


def test_handoffs_list_shows_the_queue_masked(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def queue_one() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{workdir}/cli.db")
        await migrate(engine)
        sessions = session_factory(engine)
        clock = FakeClock()
        await seed_demo(sessions, clock.now())
        bot = make_dispatcher(sessions, clock)
        user = "oQueuedCustomer0000000000001"
        for i, text in enumerate(["你好", "同意", "DD20250503123456", "转人工"]):
            await bot.handle(Inbound("wechat", user, InboundKind.TEXT, text, f"msg:{i}"))
        await engine.dispose()

    asyncio.run(queue_one())
    assert main(["handoffs", "list", "--json"]) == 0
    [item] = json.loads(capsys.readouterr().out)
    assert item["reason"] == "asked" and item["order"] == "****3456"
    assert item["customer"] == "oQue****01" and len(item["ref"]) == 8
    assert main(["handoffs", "list"]) == 0
    table = capsys.readouterr().out
    asked = say_both("reason_asked")  # the console's words
    assert asked is not None and item["ref"] in table
    assert asked[0] in table and asked[1].split()[0] in table
    assert all(words in table for words in say_both("status_waiting") or ("-",))


def display_width(line: str) -> int:
    """Columns a terminal gives the line: wide and full-width characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in line)


def test_handoffs_list_says_status_owner_reason_and_wait_in_words_within_80_columns(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    owner = "客服" * 32  # the longest name: 64 characters, 128 columns
    odd_reason = "一个以后才会有的很长的转人工原因" * 2  # 32 characters, not one we know

    async def queue() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{workdir}/cli.db")
        await migrate(engine)
        now = datetime.now(UTC) - timedelta(minutes=14, seconds=37)
        async with session_factory(engine).begin() as s:
            repos = Repositories.on(s)
            agent = await repos.agents.create(owner, "agent", "-", now)
            assert agent is not None
            reasons = ["verify_failed", "order_not_synced", "cannot_verify", odd_reason]
            for n, reason in enumerate(reasons):
                conv = await repos.conversations.load_for_update(
                    "wechat", f"oWide{n:023d}", "new", now, now + timedelta(hours=72)
                )
                h = await repos.handoffs.create(
                    conv.id, reason, now, order_tail="3456", amount_confirmed=True, failures=3
                )
                if n == 0:
                    await repos.handoffs.claim(h.id, agent.id, now, now + timedelta(hours=1))
        await engine.dispose()

    asyncio.run(queue())
    assert main(["handoffs", "list"]) == 0
    table = capsys.readouterr().out
    for line in table.splitlines():
        assert display_width(line) <= 80, line
    claimed, failed = say_both("status_claimed"), say_both("reason_verify_failed", n=3)
    assert claimed is not None and failed is not None  # the console's words, also here
    for words in (*claimed, failed[0], failed[1].split()[0]):
        assert words in table, words
    assert "14 分" in table and "14 min" in table  # the wait, with units
    assert table.count("客") == table.count("服") == 32  # the long name folded, not cut
    assert odd_reason[:6] in table
    assert "claimed" not in table and "verify_failed" not in table  # words, not stored values

    assert main(["handoffs", "list", "--json"]) == 0
    items = json.loads(capsys.readouterr().out)
    assert (items[0]["status"], items[0]["reason"]) == ("claimed", "verify_failed")
    assert items[0]["owner"] == owner and items[1]["owner"] is None
    assert 14 * 60 <= items[0]["waiting_seconds"] < 16 * 60


def test_purge_says_what_it_deleted_in_words_or_that_nothing_was_due(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate"]) == 0
    assert main(["purge"]) == 0
    out = capsys.readouterr().out
    assert "没有到期" in out and "Nothing was due" in out

    async def a_conversation_four_days_old() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{workdir}/cli.db")
        sessions = session_factory(engine)
        clock = FakeClock(datetime.now(UTC) - timedelta(days=4))
        await seed_demo(sessions, clock.now())
        bot = make_dispatcher(sessions, clock)
        for i, text in enumerate(["你好", "同意", "DD20250503123456"]):
            await bot.handle(Inbound("wechat", "oGoneCustomer", InboundKind.TEXT, text, f"m:{i}"))
        await engine.dispose()

    asyncio.run(a_conversation_four_days_old())
    assert main(["purge"]) == 0
    [line] = capsys.readouterr().out.strip().splitlines()
    zh, en = line.split(" / ")
    assert zh.startswith("已删除：1 个过期会话") and "条对话记录" in zh
    assert en.startswith("Deleted: 1 expired conversation") and " transcript lines" in en
    assert main(["purge"]) == 0
    assert "Nothing was due" in capsys.readouterr().out


def test_every_count_the_purge_returns_has_words(tmp_path: Path) -> None:
    from storage.retention import PURGED, describe_purge

    counts = asyncio.run(purge_an_empty_database(tmp_path))
    assert [key for key, *_ in PURGED] == list(counts)
    said = describe_purge(dict.fromkeys(counts, 2))
    assert said.count("2 ") == 2 * len(counts)


def test_the_purge_counts_the_old_guards_it_deletes(tmp_path: Path) -> None:
    from storage.models import ApiError, OrderGuard
    from storage.retention import describe_purge, purge_expired

    async def purge_old_guards() -> dict[str, int]:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/guards.db")
        now = datetime.now(UTC)
        try:
            await migrate(engine)
            async with session_factory(engine)() as session, session.begin():
                long_ago = now - timedelta(days=10)
                session.add(OrderGuard(order_key="k" * 64, failures=3, window_start=long_ago))
                session.add(
                    ApiError(service="wechat", call="send", errcode=1, errmsg="x", at=long_ago)
                )
            return await purge_expired(session_factory(engine), now)
        finally:
            await engine.dispose()

    counts = asyncio.run(purge_old_guards())
    assert counts["order_guards"] == 1 and counts["api_errors"] == 1
    assert "1 old order-guessing record" in describe_purge(counts)


async def purge_an_empty_database(folder: Path) -> dict[str, int]:
    from storage.retention import purge_expired

    engine = create_engine(f"sqlite+aiosqlite:///{folder}/empty.db")
    try:
        await migrate(engine)
        return await purge_expired(session_factory(engine), datetime.now(UTC))
    finally:
        await engine.dispose()


def test_the_demo_banner_names_the_address_a_chat_on_this_machine_reaches() -> None:
    from bot.cli import demo_banner
    from bot.config import Settings

    base = Settings.from_env({"BILLBOT_DATABASE_URL": "postgresql+asyncpg://u:pw@db/billbot"})
    for host, url in (
        ("127.0.0.1", "http://127.0.0.1:9123"),
        ("0.0.0.0", "http://127.0.0.1:9123"),  # every address: loopback is one of them
        ("::", "http://[::1]:9123"),
        ("::1", "http://[::1]:9123"),
    ):
        banner = demo_banner(replace(base, host=host, port=9123), None)
        assert f"./run chat --url {url}" in banner and f"{url}/console" in banner
        assert "pw@" not in banner  # the database URL is shown with its password masked


def test_a_port_outside_1_to_65535_is_refused_by_the_parser(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for port in ("0", "70000", "http"):
        with pytest.raises(SystemExit) as refused:
            main(["serve", "--port", port])
        assert refused.value.code == 2 and "TCP port" in capsys.readouterr().err


def test_serving_the_public_with_demo_keys_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from bot.cli import warn_about_demo_credentials
    from bot.config import Settings

    warn_about_demo_credentials(Settings.from_env({}))
    assert not caplog.records  # a laptop demo: fine
    warn_about_demo_credentials(Settings.from_env({"BILLBOT_PUBLIC_URL": "https://shop.example"}))
    assert "BILLBOT_SECRET_KEYS" in caplog.text


def test_serve_on_a_public_address_with_demo_secrets_is_refused(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--host", "0.0.0.0", "--port", "1"]) == 2
    err = capsys.readouterr().err
    for name in ("BILLBOT_SECRET_KEYS", "WECHAT_TOKEN", "WECHAT_AES_KEY", "billbot keys new"):
        assert name in err
    assert not (workdir / "cli.db").exists()  # refused before touching anything


def test_keys_new_prints_secrets_that_let_a_public_server_start(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import refusal_to_serve
    from bot.config import Settings

    assert main(["keys", "new"]) == 0
    lines = capsys.readouterr().out.splitlines()
    values = dict(line.split("=", 1) for line in lines if not line.startswith("#"))
    assert {"BILLBOT_SECRET_KEYS", "WECHAT_TOKEN", "WECHAT_AES_KEY"} <= values.keys()
    public = Settings.from_env({**values, "BILLBOT_HOST": "0.0.0.0"})
    assert refusal_to_serve(public) is None
    assert refusal_to_serve(Settings.from_env({"BILLBOT_HOST": "0.0.0.0"})) is not None
    for loopback in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert refusal_to_serve(Settings.from_env({"BILLBOT_HOST": loopback})) is None
    # an account without an AES key, in plain mode, is not asked for one
    plain = {**values, "BILLBOT_HOST": "0.0.0.0", "WECHAT_ENCRYPT_MODE": "plain"}
    del plain["WECHAT_AES_KEY"]
    assert refusal_to_serve(Settings.from_env(plain)) is None


def test_report_funnel_json_and_table(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async def two_journeys() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{workdir}/cli.db")
        await migrate(engine)
        sessions = session_factory(engine)
        clock = FakeClock()
        await seed_demo(sessions, clock.now())
        bot = make_dispatcher(sessions, clock)
        for user, texts in (("oA", ["你好", "同意", "DD20250503123456", "128.5"]), ("oB", ["hi"])):
            for i, text in enumerate(texts):
                await bot.handle(Inbound("wechat", user, InboundKind.TEXT, text, f"{user}:{i}"))
        await engine.dispose()

    asyncio.run(two_journeys())
    assert main(["report", "funnel", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    names = [s["name"] for s in report["steps"]]
    assert names == [
        "started",
        "consent_shown",
        "consented",
        "declined",
        "order_found",
        "verified",
        "card_issued",
        "card_opened",
        "contact_added",
        "handed_off",
        "abandoned",
    ]
    counts = {s["name"]: s["count"] for s in report["steps"]}
    assert counts["started"] == 2 and counts["card_issued"] == 1
    assert {s["name"]: s["conversion"] for s in report["steps"]}["consented"] == 0.5
    assert set(report) >= {"time_to_card_seconds", "abandoned_at", "by_channel", "by_verify_mode"}
    assert main(["report", "funnel"]) == 0
    table = capsys.readouterr().out
    assert "card issued" in table and "█" in table
    assert main(["report", "funnel", "--since", "2099-01-01", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"][0]["count"] == 0
    with pytest.raises(SystemExit) as bad:
        main(["report", "funnel", "--since", "yesterday"])
    assert bad.value.code == 2


def test_keys_rotate_is_audited_and_audit_prints_it(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["migrate"]) == 0
    monkeypatch.setenv(
        "BILLBOT_SECRET_KEYS",
        "a-brand-new-key-0123456789,demo-only-secret-key-change-me-in-production-0001",
    )
    assert main(["keys", "rotate", "--batch", "10"]) == 0
    assert "Key rotation done" in capsys.readouterr().out
    assert main(["audit", "--json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)
    assert entry["action"] == "key_rotation" and entry["actor"] == "system"
    assert main(["audit"]) == 0
    assert "key_rotation" in capsys.readouterr().out
    assert main(["audit", "--since", "2099-01-01", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_run_without_arguments_prints_the_help_and_starts_nothing(tmp_path: Path) -> None:
    """The real ./run script, in a copy whose .venv is a stand-in: installed (the stamp
    matches), its billbot is this checkout's, and its python refuses to install anything."""
    import hashlib
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    for name in ("run", "pyproject.toml"):
        (tmp_path / name).write_bytes((root / name).read_bytes())
    (tmp_path / "run").chmod(0o755)
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    stamp = hashlib.sha256((root / "pyproject.toml").read_bytes()).hexdigest()
    (tmp_path / ".venv" / ".billbot-installed").write_text(stamp + "\n")
    (bin_dir / "python").write_text("#!/bin/sh\necho 'no installing in this test' >&2\nexit 99\n")
    (bin_dir / "billbot").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m bot "$@"\n')
    for tool in ("python", "billbot"):
        (bin_dir / tool).chmod(0o755)
    env = {
        **os.environ,
        "PYTHONPATH": str(root),
        # were it to serve after all, not on anybody's port or database
        "BILLBOT_PORT": str(free_port()),
        "BILLBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/var/billbot.db",
    }
    done = subprocess.run(
        [str(tmp_path / "run")], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    for words in ("usage: ./run", "./run demo", "./run test", "usage: billbot", "agents"):
        assert words in done.stdout, words
    assert "Running on" not in done.stdout + done.stderr
    assert not (tmp_path / "var").exists()  # no database made, no demo seeded


def test_a_database_that_cannot_be_migrated_is_one_line_not_a_traceback(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket
    import sqlite3

    with sqlite3.connect(workdir / "cli.db") as db:  # as left by a newer billbot
        db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        db.execute("INSERT INTO alembic_version VALUES ('9999_from_the_future')")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["serve", "--port", str(port)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "could not migrate" in err and "Traceback" not in err
