"""The load generator of bench/compare.py: one process plays its part of pre-generated traffic.

    .venv/bin/python bench/loadgen.py TRAFFIC.json --url http://127.0.0.1:8081 \\
        --connections 32 [--part 0 --parts 1] --out RESULT.json

The traffic file holds signed, encrypted callbacks ready to send (compare.py writes it), in
two lists of customers, ``warmup`` and ``measured``; a customer is a list of
``[query string, body]``. This process takes every ``parts``-th customer from ``part`` on and
keeps ``--connections`` customers in flight; each customer's messages go in order, the next
after the previous reply, as WeChat delivers them. Warm-up customers go first and are not
recorded; then it prints ``ready`` and waits for a line on stdin, so that several processes
start the measured run together. Nothing is built or encrypted while timing.

Writes JSON to ``--out``: ``started`` and ``finished`` (wall clock, comparable across
processes), ``cpu`` (this process's CPU seconds meanwhile), ``errors`` (what failed,
counted), and for each measured customer, in order, ``latencies`` (seconds; null where the
call failed) and ``replies`` (the bodies; "" where the call failed).
Needs only aiohttp: it never imports billbot.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

Call = tuple[URL, bytes]  # one callback, ready to send
HEADERS = {"Content-Type": "text/xml"}


Played = list[tuple[float | None, bytes]]  # one customer's (latency, reply) per call


def prepare(url: str, customers: list[list[list[str]]]) -> list[list[Call]]:
    """URLs parsed and bodies encoded before any timing."""
    return [
        [(URL(f"{url}?{query}", encoded=True), body.encode()) for query, body in customer]
        for customer in customers
    ]


async def play_customer(
    session: aiohttp.ClientSession, customer: list[Call], errors: Counter[str]
) -> Played:
    played: Played = []
    for target, body in customer:
        started = time.perf_counter()
        try:
            async with session.post(target, data=body, headers=HEADERS) as resp:
                reply = await resp.read()
            elapsed = time.perf_counter() - started
        except (aiohttp.ClientError, TimeoutError) as exc:
            errors[f"{type(exc).__name__}: {exc}"[:200]] += 1
            played.append((None, b""))
            continue
        if resp.status != 200:
            errors[f"HTTP {resp.status}: {reply[:120]!r}"] += 1
            played.append((None, b""))
            continue
        played.append((elapsed, reply))
    return played


async def play(customers: list[list[Call]], connections: int, errors: Counter[str]) -> list[Played]:
    """Every customer's dialogue, ``connections`` customers at a time; results in input order."""
    results: list[Played] = [[] for _ in customers]
    queue = iter(range(len(customers)))
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

        async def worker() -> None:
            for index in queue:  # one shared iterator: each customer is taken once
                results[index] = await play_customer(session, customers[index], errors)

        await asyncio.gather(*(worker() for _ in range(connections)))
    return results


async def run(args: argparse.Namespace, traffic: dict[str, Any]) -> dict[str, Any]:
    url = args.url.rstrip("/") + traffic["path"]
    warmup = prepare(url, traffic["warmup"][args.part :: args.parts])
    measured = prepare(url, traffic["measured"][args.part :: args.parts])
    await play(warmup, args.connections, Counter())
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    errors: Counter[str] = Counter()
    started, cpu = time.time(), time.process_time()
    results = await play(measured, args.connections, errors)
    finished, cpu = time.time(), time.process_time() - cpu
    return {
        "started": started,
        "finished": finished,
        "cpu": cpu,
        "errors": dict(errors),
        "latencies": [[latency for latency, _ in played] for played in results],
        "replies": [[body.decode("utf-8", "replace") for _, body in played] for played in results],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("traffic", help="the traffic file compare.py wrote")
    parser.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:8081")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--part", type=int, default=0)
    parser.add_argument("--parts", type=int, default=1)
    parser.add_argument("--out", required=True, help="where to write the result JSON")
    args = parser.parse_args()
    traffic = json.loads(Path(args.traffic).read_text())
    result = asyncio.run(run(args, traffic))
    Path(args.out).write_text(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
