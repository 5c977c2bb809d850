"""`billbot contacts list|disable|enable` and the fallback contact's start-up check, run as an
operator runs them, on a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import logging
import unicodedata
from pathlib import Path

import pytest

from bot.cli import main, prepare
from bot.config import Settings

CONTACTS_CSV = (
    "客服编号,姓名,微信号,二维码,企业微信账号,门店,在岗\n"
    "C001,王小明,wx_wang0001,https://u.wechat.com/EXAMPLE,,上海静安寺旗舰店,是\n"
    "C002,李华（售后主管，夜班负责人）,wx_lihua002,,lihua,,否\n"
    "C003,Zhao Min,zhaomin1988,,,北京朝阳大悦城店（二期）,\n"
)
CLEAR_IDS = ("wx_wang0001", "wx_lihua002", "zhaomin1988")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no stray .env from the repository
    for name in ("BILLBOT_DATABASE_URL", "BILLBOT_FALLBACK_CONTACT", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BILLBOT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/cli.db")
    return tmp_path


@pytest.fixture
def imported(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = workdir / "contacts.csv"
    csv.write_text(CONTACTS_CSV, encoding="utf-8")
    assert main(["contacts", "import", str(csv)]) == 0
    capsys.readouterr()


def listed(capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, object]]:
    assert main(["contacts", "list", "--json"]) == 0
    return {item["contact"]: item for item in json.loads(capsys.readouterr().out)}


def display_width(line: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line)


def test_an_empty_contacts_table_says_so(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["contacts", "list"]) == 0
    out = capsys.readouterr().out
    assert "客服表为空" in out and "The contacts table is empty" in out
    assert "billbot contacts import" in out
    assert main(["contacts", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


@pytest.mark.usefixtures("imported")
def test_contacts_list_json_masks_wechat_ids_and_says_how_to_add(
    capsys: pytest.CaptureFixture[str],
) -> None:
    contacts = listed(capsys)

    assert list(contacts) == ["C001", "C002", "C003"]
    assert contacts["C001"] == {
        "contact": "C001",
        "name": "王小明",
        "wechat_id_masked": "wx_wa****01",
        "store": "上海静安寺旗舰店",
        "on_duty": True,
        "add_by": ["qr"],
    }
    assert contacts["C002"]["on_duty"] is False
    assert contacts["C002"]["add_by"] == []  # a WeCom account, but WeCom is off
    assert contacts["C003"]["add_by"] == [] and contacts["C003"]["on_duty"] is True


@pytest.mark.usefixtures("imported")
@pytest.mark.parametrize("terminal", ["80", "200"])
def test_contacts_list_fits_80_columns_in_words_and_never_shows_an_id_in_clear(
    terminal: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", terminal)
    assert main(["contacts", "list"]) == 0
    out = capsys.readouterr().out

    assert max(display_width(line) for line in out.splitlines()) <= 80
    assert not any(clear in out for clear in CLEAR_IDS)
    for words in ("wx_wa****01", "zh****88", "在岗 on duty", "离岗 off duty", "二维码 QR"):
        assert words in out
    assert "无法添加 none" in out


@pytest.mark.usefixtures("imported")
def test_disable_then_enable_are_said_stored_and_audited(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["contacts", "disable", "C001"]) == 0
    said = capsys.readouterr().out
    assert "C001" in said and "离岗" in said and "off duty" in said
    assert listed(capsys)["C001"]["on_duty"] is False

    assert main(["contacts", "enable", " C001 "]) == 0
    said = capsys.readouterr().out
    assert "在岗" in said and "on duty" in said
    assert listed(capsys)["C001"]["on_duty"] is True

    assert main(["audit", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [(e["actor"], e["action"], e["target"]) for e in entries] == [
        ("cli", "contact_disable", "contact:C001"),
        ("cli", "contact_enable", "contact:C001"),
    ]


@pytest.mark.usefixtures("imported")
def test_an_unknown_contact_id_is_one_clear_line_and_status_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["contacts", "disable", "C999"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.strip().splitlines()
    assert "C999" in line and "billbot contacts list" in line
    assert main(["contacts", "enable", "C999"]) == 2
    capsys.readouterr()
    assert main(["audit", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


@pytest.mark.usefixtures("imported")
def test_a_contact_taken_off_duty_stays_off_duty_through_a_reimport(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["contacts", "disable", "C003"]) == 0
    assert main(["contacts", "import", str(workdir / "contacts.csv")]) == 0  # 在岗 empty for C003
    capsys.readouterr()
    assert listed(capsys)["C003"]["on_duty"] is False


@pytest.mark.usefixtures("imported")
@pytest.mark.parametrize(
    ("fallback", "warned"),
    [("C404", "names no contact"), ("C002", "is off duty"), ("C001", None), ("", None)],
)
def test_a_fallback_contact_that_cannot_stand_in_is_one_warning_at_start(
    workdir: Path, fallback: str, warned: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.from_env(
        {
            "BILLBOT_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/cli.db",
            "BILLBOT_FALLBACK_CONTACT": fallback,
        }
    )
    with caplog.at_level(logging.WARNING, logger="billbot"):
        asyncio.run(prepare(settings, demo=False))  # as `billbot serve` does at start

    if warned is None:
        assert caplog.records == []
        return
    [record] = caplog.records
    message = record.getMessage()
    assert f"BILLBOT_FALLBACK_CONTACT={fallback}" in message and warned in message
    assert "\n" not in message
