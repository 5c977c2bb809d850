"""Settings come from a mapping, name what is wrong, and never print a secret."""

from __future__ import annotations

import pytest

from bot.config import Settings, SettingsError, VerifyMode


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
    ],
)
def test_bad_values_say_what_to_fix(name: str, value: str, mentions: str) -> None:
    with pytest.raises(SettingsError, match=mentions):
        Settings.from_env({name: value})


def test_env_example_lists_every_setting() -> None:
    from pathlib import Path

    example = (Path(__file__).parents[1] / ".env.example").read_text()
    names = [
        "BILLBOT_DATABASE_URL",
        "BILLBOT_HOST",
        "BILLBOT_PORT",
        "BILLBOT_PUBLIC_URL",
        "BILLBOT_SECRET_KEYS",
        "BILLBOT_VERIFY_MODE",
        "BILLBOT_ORDER_API_URL",
        "WECHAT_APP_ID",
        "WECHAT_APP_SECRET",
        "WECHAT_TOKEN",
        "WECHAT_AES_KEY",
        "WECHAT_API_BASE",
        "WECOM_CORP_ID",
        "WECOM_AGENT_ID",
        "WECOM_SECRET",
        "WECOM_TOKEN",
        "WECOM_AES_KEY",
        "WECOM_API_BASE",
        "BILLBOT_SERVICE_HOURS",
        "BILLBOT_CLAIM_LEASE_SECONDS",
    ]
    for name in names:
        assert f"\n{name}=" in example, name
