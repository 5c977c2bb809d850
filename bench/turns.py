"""A turn's cost without HTTP or the WeChat protocol: the dispatcher alone, on SQLite.

    .venv/bin/python bench/turns.py [--customers 800] [--concurrency 32] [--rounds 3]

Runs billbot's dialogue (你好, 同意, the demo order number, its amount) for many customers
straight through ``Dispatcher.handle``, ``--concurrency`` customers at a time, each message
after the previous reply, on a fresh SQLite file with the demo data, in this process.
Prints the CPU time and the wall time per turn, for transactions committed in groups (as
the server runs) and, as the baseline in the same process, each transaction committed on
its own (``inline_sqlite.GROUP_TURNS = 1``), alternating, best of ``--rounds``; and the
ratio. CPU time is this process's, so other work on the machine disturbs it little.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from aiohttp.test_utils import TestServer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.app import create_app  # noqa: E402
from bot.clock import SystemClock  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.demo import DEMO_DIALOGUE, seed_demo  # noqa: E402
from bot.keys import DISPATCHER, SESSIONS  # noqa: E402
from bot.messages import Inbound, InboundKind  # noqa: E402
from storage import inline_sqlite  # noqa: E402

DIALOGUE = DEMO_DIALOGUE


async def one_run(folder: Path, name: str, customers: int, concurrency: int) -> tuple[float, float]:
    """(CPU µs per turn, wall µs per turn) over a fresh database."""
    url = f"sqlite+aiosqlite:///{folder}/{name}.db"
    app = create_app(Settings.from_env({"BILLBOT_DATABASE_URL": url}), SystemClock())
    server = TestServer(app)  # starts the app's database and services, as serving does
    await server.start_server()
    await seed_demo(app[SESSIONS], SystemClock().now())
    dispatcher = app[DISPATCHER]
    gate = asyncio.Semaphore(concurrency)

    async def customer(n: int) -> None:
        async with gate:
            for step, text in enumerate(DIALOGUE):
                key = f"{name}-{n}-{step}"
                inbound = Inbound("wechat", f"o{name}{n:08d}", InboundKind.TEXT, text, key)
                await dispatcher.handle(inbound)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(customer(n) for n in range(customers)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    turns = customers * len(DIALOGUE)
    await server.close()
    return cpu / turns * 1e6, wall / turns * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=800)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    grouped = inline_sqlite.GROUP_TURNS
    best: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_no in range(args.rounds):
            for label, turns in (("alone", 1), ("grouped", grouped)):
                inline_sqlite.GROUP_TURNS = turns
                cpu, wall = await one_run(
                    Path(tmp), f"{label}{round_no}", args.customers, args.concurrency
                )
                print(
                    f"round {round_no + 1} {label:8} CPU {cpu:6.0f} us, wall {wall:6.0f} us a turn"
                )
                old = best.get(label)
                best[label] = (min(cpu, old[0]), min(wall, old[1])) if old else (cpu, wall)
    (cpu_a, wall_a), (cpu_g, wall_g) = best["alone"], best["grouped"]
    print(
        f"\nbest of {args.rounds}: committed alone CPU {cpu_a:.0f} us, wall {wall_a:.0f} us a turn"
    )
    print(f"           committed in groups CPU {cpu_g:.0f} us, wall {wall_g:.0f} us a turn")
    print(f"grouped / alone: CPU x{cpu_g / cpu_a:.2f}, wall x{wall_g / wall_a:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
