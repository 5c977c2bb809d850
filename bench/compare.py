"""billbot beside a wechatpy echo bot and a WeRoBot bot, on the same traffic, in one command.

    .venv/bin/python bench/compare.py [--customers 1500] [--concurrency 32]
        [--load-processes auto] [--servers echo,WeRoBot,billbot] [--database-url URL]

Three servers, one process each, one after the other on 127.0.0.1:

- ``echo``: a stateless wechatpy echo bot on aiohttp (bench/baseline_server.py) — the
  floor: the WeChat protocol and nothing else;
- ``WeRoBot``: what a merchant writes with the Python WeChat framework people pick
  (bench/werobot_app.py): SQLite sessions, a little state per customer, served by gunicorn
  with its defaults — one sync worker. Its SQLiteStorage commits every session write with
  SQLite's defaults (rollback journal, synced to disk), as shipped. Installed into
  bench/.venv-werobot on first use (reused after); if that fails (no network), its row is
  skipped and the reason printed;
- ``billbot``: ``python -m bot demo`` on a fresh SQLite file (or ``--database-url``).

Every customer runs billbot's real dialogue (你好, 同意, the demo order number, its amount), so
billbot does its whole work down to the contact card; the others answer the same messages in
their own way. Traffic is safe mode (signed and AES-encrypted), thousands of customers with
unique MsgIds, the same customers, texts and MsgIds for every server. It is built before each
server's run (not timed) because servers refuse timestamps older than five minutes, so one
run must also finish within that. The load generator (bench/loadgen.py) runs as separate
processes, reading that file: each customer's messages go one at a time, the next after the
previous reply, with ``--concurrency`` connections in flight overall. A short warm-up is not
counted. Every reply must be HTTP 200 and valid signed, encrypted text that fits the server
(the echo of the message; WeRoBot's running count; billbot's card at the end of each
dialogue); anything else is counted as an error and printed.

Measured on a 2-core machine, the load generator and the server share the cores (and with
anything else running), so these figures compare servers with each other; they are no
capacity plan. The load generator is Python (aiohttp), not wrk: wrk cannot keep one
customer's messages in order, one at a time. One load process may saturate before the echo
bot does, or two may take the cores from it: by default the echo bot runs with one and with
two, and the number that gives it the better figure is used for every server (its best run is
the one shown). The ``server CPU`` and ``load CPU`` columns say who was busy; ``CPU us/msg``
is the server's CPU time per answered message, which other work on the machine disturbs
least (it still counts what contention for caches and cores costs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT))

from bot.channels.wechat_oa import ChannelError, OAClientCodec  # noqa: E402
from bot.clock import SystemClock  # noqa: E402
from bot.config import Settings, WeChatCredentials  # noqa: E402
from bot.demo import DEMO_DIALOGUE  # noqa: E402

DIALOGUE = DEMO_DIALOGUE
STEPS = ("hello", "agree", "order no", "amount")  # DIALOGUE's messages, for column heads
SERVERS = ("echo", "WeRoBot", "billbot")  # run in this order, one at a time
WARMUP_CUSTOMERS = 64
WEROBOT_VENV = BENCH / ".venv-werobot"
WEROBOT_REQUIREMENTS = ("werobot==1.13.1", "cryptography>=42", "gunicorn==27.0.1")
START_TIMEOUT = 90.0  # seconds for a server to listen (billbot migrates and seeds first)


@dataclass(frozen=True)
class Customer:
    openid: str
    messages: tuple[tuple[str, int], ...]  # (text, MsgId)


def plan_customers(prefix: str, count: int, first_msg_id: int) -> list[Customer]:
    """Who says what: 28-character OpenIDs like WeChat's, MsgIds unique across the run."""
    return [
        Customer(
            openid=f"{prefix}{i:0{28 - len(prefix)}d}",
            messages=tuple(
                (text, first_msg_id + i * len(DIALOGUE) + n) for n, text in enumerate(DIALOGUE)
            ),
        )
        for i in range(count)
    ]


def write_traffic(
    path: Path, codec: OAClientCodec, warmup: list[Customer], measured: list[Customer]
) -> None:
    """Signs and encrypts every message now, so the timestamps are fresh for this run."""

    def sealed(customer: Customer) -> list[list[str]]:
        calls = []
        for text, msg_id in customer.messages:
            query, body = codec.build_text(customer.openid, text, msg_id)
            calls.append([urlencode(query), body.decode()])
        return calls

    traffic = {
        "path": "/wechat",
        "warmup": [sealed(c) for c in warmup],
        "measured": [sealed(c) for c in measured],
    }
    path.write_text(json.dumps(traffic, ensure_ascii=False))


# --- checking replies --------------------------------------------------------------------

ReplyCheck = Callable[[int, str, str], str | None]  # (message index, sent, reply) -> problem


def check_echo(index: int, sent: str, reply: str) -> str | None:
    return None if reply == sent else "reply is not the echo of the message"


def check_werobot(index: int, sent: str, reply: str) -> str | None:
    expected = f"收到第{index + 1}条：{sent}"
    return None if reply == expected else "reply does not carry the session's message count"


def check_billbot(index: int, sent: str, reply: str) -> str | None:
    if not reply:
        return "empty reply"
    if index == len(DIALOGUE) - 1 and "/card/" not in reply:
        return "no contact card at the end of the dialogue"
    return None


def verify_replies(
    codec: OAClientCodec, customers: list[Customer], replies: list[list[str]], check: ReplyCheck
) -> Counter[str]:
    """Problems found in the bodies: each must be signed, encrypted text the check accepts."""
    problems: Counter[str] = Counter()
    for customer, bodies in zip(customers, replies, strict=True):
        for index, ((sent, _), body) in enumerate(zip(customer.messages, bodies, strict=True)):
            if not body:
                continue  # the call itself failed: already counted by the load generator
            try:
                text = codec.read_reply(body.encode())
            except ChannelError as exc:
                problems[f"reply is not valid encrypted text: {exc.reason}"] += 1
                continue
            problem = check(index, sent, text)
            if problem:
                problems[problem] += 1
    return problems


# --- servers -----------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    command: list[str]
    env: dict[str, str]
    check: ReplyCheck
    cwd: Path = BENCH


@dataclass(frozen=True)
class LoadPart:
    """What one load process reports (see bench/loadgen.py); per customer, in its order."""

    started: float
    finished: float
    cpu: float
    errors: dict[str, int]
    latencies: list[list[float | None]]
    replies: list[list[str]]

    @classmethod
    def read(cls, path: Path) -> LoadPart:
        return cls(**json.loads(path.read_text()))


@dataclass
class Outcome:
    name: str
    load_processes: int = 0
    elapsed: float = 0.0
    by_step: list[list[float]] = field(default_factory=list)  # seconds, per DIALOGUE message
    errors: Counter[str] = field(default_factory=Counter)
    server_cpu: float = 0.0  # CPU seconds of the server's processes during the run
    load_cpu: float = 0.0  # CPU seconds of the load generators during the run
    skipped: str = ""
    log_tail: str = ""  # the end of the server's output, kept when something failed

    @property
    def ok(self) -> int:
        return sum(len(step) for step in self.by_step)

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    def percentile(self, q: int, step: int | None = None) -> float:
        """The q-th percentile in milliseconds, of all calls or of one dialogue step."""
        latencies = [x for s in self.by_step for x in s] if step is None else self.by_step[step]
        if len(latencies) < 2:
            return 0.0
        return statistics.quantiles(latencies, n=100)[q - 1] * 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(server: Server, port: int, log: Path) -> subprocess.Popen[bytes]:
    """Starts the server with its output in ``log`` and waits until it accepts connections."""
    command = [part.replace("{port}", str(port)) for part in server.command]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, cwd=server.cwd, env=server.env, stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited before listening:\n{tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            time.sleep(0.2)
    stop_server(proc)
    raise RuntimeError(f"{server.name} did not listen within {START_TIMEOUT:.0f} s:\n{tail(log)}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def tail(log: Path, lines: int = 15) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its descendants (gunicorn's worker is a child)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            stat = Path(f"/proc/{current}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue  # gone, or not Linux: CPU figures are a hint, not a result
    return total


def run_load(
    url: str, traffic: Path, work: Path, processes: int, connections: int, server_pid: int
) -> tuple[list[LoadPart], float]:
    """Runs the load processes: warm-up, then all start together; their results and server CPU."""
    procs, outs = [], []
    for part in range(processes):
        share = connections // processes + (1 if part < connections % processes else 0)
        out = work / f"load-{part}.json"
        outs.append(out)
        command = [sys.executable, str(BENCH / "loadgen.py"), str(traffic), "--url", url]
        command += ["--connections", str(share), "--part", str(part), "--parts", str(processes)]
        procs.append(
            subprocess.Popen(
                [*command, "--out", str(out)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    try:
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("a load generator failed during the warm-up (see above)")
        cpu_before = cpu_seconds(server_pid)
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            if proc.wait() != 0:
                raise RuntimeError("a load generator failed (see above)")
        server_cpu = cpu_seconds(server_pid) - cpu_before
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return [LoadPart.read(out) for out in outs], server_cpu


def measure(
    server: Server,
    processes: int,
    args: argparse.Namespace,
    codec: OAClientCodec,
    warmup: list[Customer],
    measured: list[Customer],
    work: Path,
) -> Outcome:
    port = free_port()
    outcome = Outcome(server.name, load_processes=processes)
    log = work / f"{server.name}-{processes}.log"
    proc = start_server(server, port, log)
    try:
        traffic = work / f"traffic-{server.name}.json"
        write_traffic(traffic, codec, warmup, measured)
        results, outcome.server_cpu = run_load(
            f"http://127.0.0.1:{port}",
            traffic,
            work,
            processes,
            args.concurrency,
            proc.pid,
        )
    finally:
        stop_server(proc)
    latencies: list[list[float | None]] = [[] for _ in measured]
    replies: list[list[str]] = [[] for _ in measured]
    for part, result in enumerate(results):
        outcome.errors.update(result.errors)
        outcome.load_cpu += result.cpu
        mine = range(part, len(measured), processes)  # the customers this process played
        for index, times, bodies in zip(mine, result.latencies, result.replies, strict=True):
            latencies[index], replies[index] = times, bodies
    outcome.by_step = [
        [x for times in latencies if (x := times[step]) is not None]
        for step in range(len(DIALOGUE))
    ]
    outcome.elapsed = max(r.finished for r in results) - min(r.started for r in results)
    outcome.errors.update(verify_replies(codec, measured, replies, server.check))
    if outcome.errors:
        outcome.log_tail = tail(log)
    return outcome


def ensure_werobot() -> tuple[Path | None, str]:
    """WeRoBot and gunicorn in their own virtualenv (made once, then reused); else why not."""
    python, gunicorn = WEROBOT_VENV / "bin/python", WEROBOT_VENV / "bin/gunicorn"
    stamp = WEROBOT_VENV / ".bench-installed"
    wanted = " ".join(WEROBOT_REQUIREMENTS)
    if gunicorn.exists() and stamp.exists() and stamp.read_text() == wanted:
        return gunicorn, ""
    print(f"Installing {wanted} into {WEROBOT_VENV.relative_to(ROOT)} …", flush=True)
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(WEROBOT_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run(
            [*pip, "--retries", "1", "--timeout", "20", *WEROBOT_REQUIREMENTS],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
    except subprocess.CalledProcessError as exc:
        last = (exc.stderr or exc.stdout or "").strip().splitlines()[-1:]
        return None, f"pip install {wanted} failed: {' '.join(last) or exc}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"could not install {wanted}: {exc}"
    stamp.write_text(wanted)
    return gunicorn, ""


def build_server(
    name: str, args: argparse.Namespace, creds: WeChatCredentials, work: Path
) -> tuple[Server | None, str]:
    """How to start the server called ``name``; None and the reason if it cannot be had."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("BILLBOT_", "WECHAT_"))}
    keys = {
        "BENCH_TOKEN": creds.token.reveal(),
        "BENCH_AES_KEY": creds.aes_key.reveal(),
        "BENCH_APP_ID": creds.app_id,
    }
    if name == "echo":
        echo = [sys.executable, str(BENCH / "baseline_server.py"), "echo", "--port", "{port}"]
        return Server(name, echo, {**base, **keys}, check_echo), ""
    if name == "WeRoBot":
        gunicorn, why_not = ensure_werobot()
        if gunicorn is None:
            return None, why_not
        one_sync_worker = ["--workers", "1", "--worker-class", "sync", "--no-control-socket"]
        return Server(
            name,
            [str(gunicorn), *one_sync_worker, "--bind", "127.0.0.1:{port}", "werobot_app:app"],
            {**base, **keys, "BENCH_SESSION_DB": str(work / "werobot-sessions.sqlite3")},
            check_werobot,
        ), ""
    database = args.database_url or f"sqlite+aiosqlite:///{work}/billbot.sqlite3"
    return Server(
        name,
        [sys.executable, "-m", "bot", "demo", "--port", "{port}", "--workers", str(args.workers)],
        {**base, "PYTHONPATH": str(ROOT), "BILLBOT_DATABASE_URL": database},
        check_billbot,
        cwd=work,
    ), ""


def print_report(outcomes: list[Outcome], processes: int, args: argparse.Namespace) -> None:
    database = "SQLite" if not args.database_url else args.database_url.split(":", 1)[0]
    print(
        f"\n{args.customers} customers x {len(DIALOGUE)} messages per server, safe mode,"
        f" {args.concurrency} connections, {processes} load process(es),"
        f" billbot on {database}, {args.workers} worker(s)"
    )
    header = f"{'server':10} {'msgs/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
    print(header + f" {'time s':>7} {'server CPU':>11} {'load CPU':>9} {'CPU us/msg':>11}")
    for o in outcomes:
        if o.skipped:
            print(f"{o.name:10} skipped: {o.skipped}")
            continue
        errors = sum(o.errors.values())
        print(
            f"{o.name:10} {o.rate:8.0f} {o.percentile(50):8.1f} {o.percentile(99):8.1f}"
            f" {errors:7d} {o.elapsed:7.1f} {o.server_cpu / o.elapsed:11.0%}"
            f" {o.load_cpu / o.elapsed:9.0%} {o.server_cpu / max(o.ok, 1) * 1e6:11.0f}"
        )
    by_name = {o.name: o for o in outcomes if not o.skipped and o.ok}
    print(f"\n{'p50/p99 ms':10}" + "".join(f" {step:>12}" for step in STEPS))
    for o in by_name.values():
        steps = (
            f"{o.percentile(50, n):.0f}/{o.percentile(99, n):.0f}" for n in range(len(DIALOGUE))
        )
        print(f"{o.name:10}" + "".join(f" {step:>12}" for step in steps))
    print()
    billbot = by_name.get("billbot")
    for base in ("echo", "WeRoBot"):
        other = by_name.get(base)
        if billbot is None or other is None:
            continue
        print(
            f"billbot / {base}: throughput x{billbot.rate / other.rate:.3f},"
            f" p50 x{billbot.percentile(50) / other.percentile(50):.1f},"
            f" p99 x{billbot.percentile(99) / other.percentile(99):.1f}"
        )
    for o in outcomes:
        for problem, count in o.errors.most_common():
            print(f"{o.name} error x{count}: {problem}")
        if o.log_tail:
            print(f"{o.name}'s output ended with:\n{o.log_tail}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--customers", type=int, default=1500, help="per server, each sending the 4 messages"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="connections in flight")
    parser.add_argument(
        "--load-processes",
        default="auto",
        help="load generator processes; auto (default): the echo bot runs with 1 and with 2,"
        " and the number that gives it the higher figure is used for every server",
    )
    parser.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help=f"which to run, comma-separated (default: {','.join(SERVERS)})",
    )
    parser.add_argument(
        "--database-url",
        default="",
        help="billbot's database (default: a fresh SQLite file); e.g. a PostgreSQL database"
        " of its own: postgresql+asyncpg://postgres@127.0.0.1:5432/billbot_bench",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="billbot's server processes (billbot demo --workers N); more than one needs"
        " PostgreSQL (--database-url)",
    )
    args = parser.parse_args()
    if args.workers > 1 and not args.database_url:
        parser.error("--workers above 1 needs --database-url (PostgreSQL)")
    auto = args.load_processes == "auto"
    processes = 1 if auto else int(args.load_processes)
    if processes < 1 or args.concurrency < max(processes, 2 if auto else 1):
        parser.error("need at least one load process and a connection for each")
    wanted = args.servers.split(",")
    if not wanted or set(wanted) - set(SERVERS):
        parser.error(f"--servers takes names from {', '.join(SERVERS)}")

    creds = Settings.from_env({}).wechat
    codec = OAClientCodec(creds, SystemClock(), "safe")
    run = f"{int(time.time()) % 10**8:08d}"  # fresh customers every run, whatever the database
    first_msg_id = int(time.time() * 1000) * 1000
    warmup = plan_customers(f"oWarm{run}", WARMUP_CUSTOMERS, first_msg_id)
    measured = plan_customers(
        f"oBench{run}", args.customers, first_msg_id + WARMUP_CUSTOMERS * len(DIALOGUE)
    )

    work = Path(tempfile.mkdtemp(prefix="billbot-compare-"))
    try:
        outcomes = []
        for name in SERVERS:
            if name not in wanted:
                continue
            server, why_not = build_server(name, args, creds, work)
            if server is None:
                outcomes.append(Outcome(name, skipped=why_not))
                print(f"{name} skipped: {why_not}", flush=True)
                continue
            try:
                if name == "echo" and auto:
                    tries = []
                    for n in (1, 2):
                        print(f"echo: running with {n} load process(es) …", flush=True)
                        tries.append(measure(server, n, args, codec, warmup, measured, work))
                    best = max(tries, key=lambda o: o.rate)
                    processes = best.load_processes
                    figures = ", ".join(f"{o.load_processes}: {o.rate:.0f} msgs/s" for o in tries)
                    print(f"echo by load processes: {figures}; using {processes}", flush=True)
                    outcomes.append(best)
                    continue
                print(f"{name}: running …", flush=True)
                outcomes.append(measure(server, processes, args, codec, warmup, measured, work))
            except RuntimeError as exc:
                print(f"{name} failed: {exc}", file=sys.stderr, flush=True)
                outcomes.append(Outcome(name, skipped="failed (its log is printed above)"))
        print_report(outcomes, processes, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if any(o.errors or o.skipped.startswith("failed") for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
