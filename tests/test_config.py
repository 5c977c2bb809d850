"""Settings come from a mapping, name what is wrong, and never print a secret."""

from __future__ import annotations

import pytest

from bot.access_log import AccessLog
from bot.channels.wechat_oa import OfficialAccount
from bot.clock import FakeClock
from bot.config import EncryptMode, Settings, SettingsError, VerifyMode, fresh_secrets


def test_defaults_run_the_embedded_demo() -> None:
    s = Settings.from_env({})
    assert s.database_url == "sqlite+aiosqlite:///var/billbot.db"
    assert (s.host, s.port, s.verify_mode) == ("127.0.0.1", 8080, VerifyMode.AMOUNT)
    assert len(s.wechat.aes_key.reveal()) == 43


def test_values_are_read_and_secrets_hidden() -> None:
    s = Settings.from_env(
        {
            "BILLBOT_PORT": "9000",
            "BILLBOT_VERIFY_MODE": "tracking_no",
            "BILLBOT_SECRET_KEYS": "new-key-0123456789abc, old-key-0123456789abc",
            "WECHAT_APP_SECRET": "s3cr3t-value",
        }
    )
    assert s.port == 9000 and s.verify_mode is VerifyMode.TRACKING_NO
    assert [k.reveal() for k in s.secret_keys] == ["new-key-0123456789abc", "old-key-0123456789abc"]
    assert "s3cr3t-value" not in repr(s)


@pytest.mark.parametrize(
    ("name", "value", "mentions"),
    [
        ("BILLBOT_PORT", "http", "BILLBOT_PORT"),
        ("BILLBOT_VERIFY_MODE", "face", "amount"),
        ("BILLBOT_SECRET_KEYS", "short", "16"),
        ("WECHAT_AES_KEY", "abc", "43"),
        ("BILLBOT_TRUSTED_PROXIES", "10.0.0.1,nginx", "nginx"),
        ("BILLBOT_ORDER_PATTERN", "DD(\\d{14}", "regular expression"),
        ("BILLBOT_REPLY_DEADLINE_SECONDS", "5", "below 5"),
        ("BILLBOT_REPLY_DEADLINE_SECONDS", "soon", "BILLBOT_REPLY_DEADLINE_SECONDS"),
    ],
)
def test_bad_values_say_what_to_fix(name: str, value: str, mentions: str) -> None:
    with pytest.raises(SettingsError, match=mentions):
        Settings.from_env({name: value})


def test_env_example_lists_every_setting() -> None:
    """Every name ``Settings.from_env`` reads, found in its source, has a line in .env.example."""
    import inspect
    import re
    from pathlib import Path

    example = (Path(__file__).parents[1] / ".env.example").read_text()
    source = inspect.getsource(Settings.from_env)
    names = set(re.findall(r'"((?:BILLBOT|WECHAT|WECOM)_[A-Z_]+)"', source))
    assert len(names) >= 24
    for name in sorted(names):
        assert f"\n{name}=" in example, name


def test_encrypt_mode_is_safe_by_default_and_checked() -> None:
    assert Settings.from_env({}).wechat.mode is EncryptMode.SAFE
    assert Settings.from_env({"WECHAT_ENCRYPT_MODE": "Compat"}).wechat.mode is EncryptMode.COMPAT
    with pytest.raises(SettingsError, match="safe"):
        Settings.from_env({"WECHAT_ENCRYPT_MODE": "aes"})


def test_access_log_setting() -> None:
    assert Settings.from_env({}).access_log is AccessLog.ERRORS
    assert Settings.from_env({"BILLBOT_ACCESS_LOG": "off"}).access_log is AccessLog.OFF
    with pytest.raises(SettingsError, match="errors"):
        Settings.from_env({"BILLBOT_ACCESS_LOG": "verbose"})


def test_fresh_secrets_are_usable_and_not_the_demo_values() -> None:
    first, second = fresh_secrets(), fresh_secrets()
    assert all(first[name] != second[name] for name in first)
    settings = Settings.from_env(
        {name: value for name, value in first.items() if not name.startswith("WECOM_")}
    )
    assert settings.public_demo_secrets() == []
    OfficialAccount(settings.wechat, FakeClock())  # the AES key is a valid EncodingAESKey
    assert Settings.from_env({}).public_demo_secrets() == [
        "BILLBOT_SECRET_KEYS",
        "WECHAT_TOKEN",
        "WECHAT_AES_KEY",
    ]


def test_wecom_is_on_only_when_fully_configured() -> None:
    full = {
        "WECOM_CORP_ID": "ww0123456789abcdef",
        "WECOM_SECRET": "contact-secret",
        "WECOM_TOKEN": "wecomtoken",
        "WECOM_AES_KEY": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    }
    assert Settings.from_env(full).wecom_enabled
    assert not Settings.from_env({}).wecom_enabled
    with pytest.raises(SettingsError, match="WECOM_SECRET, WECOM_AES_KEY missing"):
        Settings.from_env({"WECOM_CORP_ID": "ww01", "WECOM_TOKEN": "t"})
    with pytest.raises(SettingsError, match="43"):
        Settings.from_env({**full, "WECOM_AES_KEY": "short"})


def test_reply_deadline_setting() -> None:
    assert Settings.from_env({}).reply_deadline_seconds == 4.0
    quick = Settings.from_env({"BILLBOT_REPLY_DEADLINE_SECONDS": "2.5"})
    assert quick.reply_deadline_seconds == 2.5
