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

    async def start(self, command: str) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            command,
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
                return

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
