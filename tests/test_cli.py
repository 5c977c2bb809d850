"""The operator's commands, run as `billbot …` would run them, on a real SQLite file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bot.cli import main
from bot.clock import FakeClock
from bot.demo import seed_demo
from bot.messages import Inbound, InboundKind
from storage.db import create_engine, migrate, session_factory
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
    assert item["ref"] in capsys.readouterr().out


def test_migrate_and_purge_run(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate"]) == 0
    assert main(["purge"]) == 0
    assert "conversations: 0" in capsys.readouterr().out


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
