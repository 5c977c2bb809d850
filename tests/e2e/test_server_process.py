"""The real server process and the real `billbot chat` client, across a server restart."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

USER = "oEndToEndCustomer00000000001"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, workdir: Path, port: int) -> None:
        self.workdir = workdir
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("BILLBOT_", "WECHAT_"))},
            "BILLBOT_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/var/billbot.db",
            "BILLBOT_PORT": str(port),
            "BILLBOT_PUBLIC_URL": self.url,
        }
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, command: str, *args: str) -> str:
        """Starts the server; returns what it printed until it listened."""
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            command,
            *args,
            cwd=self.workdir,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert self.proc.stdout is not None
        seen = []
        while True:  # the server says when it listens; no polling, no sleeping
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout=60)
            if not line:
                raise AssertionError("server exited:\n" + b"".join(seen).decode())
            seen.append(line)
            if b"Running on" in line:
                return b"".join(seen).decode()

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def chat(self, *lines: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "chat",
            "--url",
            self.url,
            "--user",
            USER,
            cwd=self.workdir,
            env=self.env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate("\n".join(lines).encode() + b"\n"), 60)
        assert proc.returncode == 0, out.decode()
        return out.decode()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    srv = Server(tmp_path, free_port())
    yield srv
    if srv.proc is not None and srv.proc.returncode is None:
        await srv.kill()


async def test_dialogue_resumes_after_the_server_is_killed_and_restarted(server: Server) -> None:
    await server.start("demo")  # migrates, seeds demo data, serves
    before = await server.chat("DD20250503123456", "同意")
    assert "****3456" in before and "金额" in before
    await server.kill()

    await server.start("serve")
    after = await server.chat("128.5")
    assert "wx_ab****89" in after and "/card/" in after
    assert "wx_ab12cd89" not in after


async def test_demo_on_another_port_prints_the_chat_line_that_reaches_it(server: Server) -> None:
    """`billbot demo --port P` names P in the chat line it prints, whatever BILLBOT_PORT says."""
    del server.env["BILLBOT_PORT"], server.env["BILLBOT_PUBLIC_URL"]
    server.env["BILLBOT_PORT"] = str(free_port())  # not the one used
    printed = await server.start("demo", "--port", str(server.port))
    [line] = [line for line in printed.splitlines() if "./run chat --url" in line]
    url = line.split("./run chat --url", 1)[1].split()[0]
    assert url == f"http://127.0.0.1:{server.port}"
    assert "****3456" in await server.chat("DD20250503123456", "同意")  # and it works


# -- start-up failures: one line each, never a traceback ---------------------------------------


async def run_cli(env: dict[str, str], cwd: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def one_line(err: str) -> str:
    assert "Traceback" not in err
    [line] = err.strip().splitlines()
    assert line.startswith("billbot: ")
    return line


@pytest.mark.parametrize("command", ["serve", "demo"])
async def test_a_port_in_use_is_one_line_naming_it_and_how_to_choose_another(
    tmp_path: Path, command: str
) -> None:
    srv = Server(tmp_path, free_port())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", srv.port))
        taken.listen()
        status, out, err = await run_cli(srv.env, tmp_path, command)
    assert status != 0 and "Running on" not in out
    line = one_line(err)
    for words in (f"127.0.0.1:{srv.port}", "already in use", "--port", "BILLBOT_PORT", "已被占用"):
        assert words in line
    assert not (tmp_path / "var" / "billbot.db").exists()  # refused before touching anything


@pytest.mark.parametrize("command", [["serve"], ["migrate"], ["agents", "list"], ["purge"]])
async def test_an_unreachable_database_is_one_line_with_its_url_masked(
    tmp_path: Path, command: list[str]
) -> None:
    srv = Server(tmp_path, free_port())
    srv.env["BILLBOT_DATABASE_URL"] = "postgresql+asyncpg://billbot:s3cret-pw@127.0.0.1:1/billbot"
    status, out, err = await run_cli(srv.env, tmp_path, *command)
    assert status != 0 and "Running on" not in out
    line = one_line(err)
    assert "postgresql+asyncpg://billbot:***@127.0.0.1:1/billbot" in line
    assert "s3cret-pw" not in err + out
    for words in ("connection refused", "running", "BILLBOT_DATABASE_URL", "无法连接数据库"):
        assert words in line


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("BILLBOT_PORT", "eighty", "BILLBOT_PORT"),
        ("BILLBOT_DATABASE_URL", "mysql://shop:pw@db/shop", "BILLBOT_DATABASE_URL"),
        ("BILLBOT_DATABASE_URL", "not a url", "BILLBOT_DATABASE_URL"),
    ],
)
async def test_a_bad_setting_is_one_line_naming_it(
    tmp_path: Path, name: str, value: str, named: str
) -> None:
    srv = Server(tmp_path, free_port())
    srv.env[name] = value
    status, out, err = await run_cli(srv.env, tmp_path, "serve")
    assert status != 0 and "Running on" not in out
    line = one_line(err)
    assert named in line and "bad setting" in line
