"""Webhook latency and throughput: billbot against baselines in the same process tree.

    .venv/bin/python bench/webhook.py [--customers 60] [--concurrency 12]

Starts three local servers on 127.0.0.1 (bare aiohttp, protocol-only, billbot on a fresh
SQLite file with demo data), then plays the same load on each: every customer runs the whole
dialogue (notice, agree, order number, amount) in safe mode. Prints latency percentiles and
throughput, and billbot's ratios to each baseline. Bounded in requests and time; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.channels.wechat_oa import OAClientCodec  # noqa: E402
from bot.clock import SystemClock  # noqa: E402
from bot.config import Settings  # noqa: E402

RUN = f"{int(time.time()) % 10**8:08d}"  # fresh customers on every run, whatever the database
DRAINS: set[asyncio.Future[bytes]] = set()
DIALOGUE = ("你好", "同意", "DD20250503123456", "128.5")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start(args: list[str], env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
        if not line:
            raise RuntimeError(f"{args} exited before listening")
        if b"Running on" in line:
            DRAINS.add(asyncio.ensure_future(proc.stdout.read()))  # keep draining the log
            return proc


async def run_load(
    url: str, customers: int, concurrency: int, tag: str
) -> tuple[list[float], float]:
    codec = OAClientCodec(Settings.from_env({}).wechat, SystemClock(), "safe")
    latencies: list[float] = []
    sem = asyncio.Semaphore(concurrency)
    msg_id = int(time.time() * 1000) * 1000

    async def customer(i: int, session: aiohttp.ClientSession) -> None:
        nonlocal msg_id
        async with sem:
            openid = f"oBench{tag}{RUN}{i:012d}"
            for text in DIALOGUE:
                msg_id += 1
                query, body = codec.build_text(openid, text, msg_id)
                started = time.perf_counter()
                async with session.post(url + "/wechat", params=query, data=body) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"{url}: HTTP {resp.status}")
                latencies.append(time.perf_counter() - started)

    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        began = time.perf_counter()
        await asyncio.gather(*(customer(i, session) for i in range(customers)))
        elapsed = time.perf_counter() - began
    return latencies, elapsed


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000 if len(values) > 1 else 0.0


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=12)
    parser.add_argument(
        "--database-url",
        default="",
        help="billbot's database (default: a fresh SQLite file); e.g. a PostgreSQL database"
        " of its own: postgresql+asyncpg://postgres@127.0.0.1:5432/billbot_bench",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="billbot-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BILLBOT_", "WECHAT_"))}
    env["PYTHONPATH"] = str(ROOT)
    ports = {name: free_port() for name in ("bare", "protocol", "billbot")}
    procs = [
        await start(
            [str(ROOT / "bench/baseline_server.py"), "bare", "--port", str(ports["bare"])],
            env,
            work,
        ),
        await start(
            [str(ROOT / "bench/baseline_server.py"), "protocol", "--port", str(ports["protocol"])],
            env,
            work,
        ),
        await start(
            ["-m", "bot", "demo", "--port", str(ports["billbot"])],
            {
                **env,
                "BILLBOT_DATABASE_URL": args.database_url or f"sqlite+aiosqlite:///{work}/bench.db",
            },
            work,
        ),
    ]
    try:
        results = {}
        for name, port in ports.items():
            url = f"http://127.0.0.1:{port}"
            await run_load(url, 4, 2, "warm" + name[:2])  # warm-up, not counted
            results[name] = await run_load(url, args.customers, args.concurrency, name[:2])
        total = args.customers * len(DIALOGUE)
        print(f"{total} requests per server, {args.concurrency} customers at a time, safe mode")
        print(f"{'server':10} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'req/s':>8}")
        for name, (lat, elapsed) in results.items():
            print(
                f"{name:10} {pct(lat, 50):8.2f} {pct(lat, 95):8.2f} {pct(lat, 99):8.2f} "
                f"{len(lat) / elapsed:8.0f}"
            )
        b_lat, b_el = results["billbot"]
        for base in ("bare", "protocol"):
            lat, el = results[base]
            print(
                f"billbot / {base}: p50 x{pct(b_lat, 50) / pct(lat, 50):.1f}, "
                f"throughput x{(len(b_lat) / b_el) / (len(lat) / el):.2f}"
            )
    finally:
        for proc in procs:
            proc.terminate()
            await proc.wait()


if __name__ == "__main__":
    asyncio.run(main())
