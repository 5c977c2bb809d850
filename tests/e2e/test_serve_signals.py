"""`billbot serve --workers N` stops its workers when a service manager stops it."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp

from tests.e2e.test_server_process import Server, free_port


async def healthy(url: str) -> bool:
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(url + "/healthz", timeout=aiohttp.ClientTimeout(total=2)) as resp,
        ):
            return resp.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def test_sigterm_to_the_parent_stops_every_worker(tmp_path: Path) -> None:
    server = Server(tmp_path, free_port())  # its settings only: started here, silent workers
    url = server.url
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "demo",
        "--workers",
        "2",
        cwd=tmp_path,
        env=server.env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(60):
            while not await healthy(url):  # the workers say nothing: ask until they answer
                assert proc.returncode is None, "serve exited before its workers listened"
                await asyncio.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=30) == 0
        # the parent returns only once its workers exited: nothing listens on the port now
        assert not await healthy(url)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
