"""The WeRoBot baseline for bench/compare.py: what a merchant writes with WeRoBot, nothing more.

Runs in its own virtual environment (bench/.venv-werobot, made by compare.py), never imports
billbot, and is served the way WeRoBot apps usually are: gunicorn with its defaults, one sync
worker. Safe mode (encrypted) with the token, EncodingAESKey and app id from the environment,
WeRoBot's SQLite session storage, and a handler that keeps a little state per customer (how
many messages they sent) and answers in text.

    BENCH_TOKEN=… BENCH_AES_KEY=… BENCH_APP_ID=… BENCH_SESSION_DB=/tmp/s.sqlite3 \\
        bench/.venv-werobot/bin/gunicorn --workers 1 --chdir bench werobot_app:app
"""

from __future__ import annotations

import os

import werobot  # type: ignore[import-not-found]
import werobot.crypto  # type: ignore[import-not-found]  # safe mode: fail at start if missing
from werobot.session.sqlitestorage import SQLiteStorage  # type: ignore[import-not-found]

robot = werobot.WeRoBot(
    token=os.environ["BENCH_TOKEN"],
    encoding_aes_key=os.environ["BENCH_AES_KEY"],
    app_id=os.environ["BENCH_APP_ID"],
    session_storage=SQLiteStorage(os.environ["BENCH_SESSION_DB"]),
)


@robot.text
def count_and_reply(message: object, session: dict[str, int]) -> str:
    count = session.get("count", 0) + 1
    session["count"] = count
    return f"收到第{count}条：{message.content}"  # type: ignore[attr-defined]


app = robot.wsgi
