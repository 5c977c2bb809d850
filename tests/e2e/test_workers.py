"""`billbot serve` as several real server processes on one PostgreSQL database (issue #9):
what one process guarantees still holds when WeChat's callbacks and agents' clicks land on
different processes, because the guarantees live in the database (unique keys, row locks,
version checks, the token lease, the delivery record), never in a process's memory.

Three processes, each on its own port, serve the module's tests (each test has customers
of its own), so a test chooses which worker gets which request; the last test runs
`serve --workers 2` on one shared port. The fake WeChat API and a gated order backend run in
the test process. Nothing sleeps for a fixed time: the tests wait for conditions — a lookup
held at the order backend, a transaction waiting for a lock in PostgreSQL, a line in a
worker's log — in short polls under a total timeout.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.channels.wechat_oa import OAClientCodec
from bot.clock import SystemClock
from bot.config import DEMO_APP_ID, DEMO_APP_SECRET, Settings
from bot.console.auth import AgentDirectory
from bot.demo import seed_demo
from bot.flows.base import Step
from bot.texts import Texts
from examples.order_backend import load_orders, make_app
from storage.crypto import configure as configure_keyring
from storage.db import create_engine, migrate, session_factory
from storage.models import AccessToken, ProcessedMessage
from storage.records import HandoffRecord, HandoffStatus, Owner
from storage.repositories import ConversationRepository, HandoffRepository, TranscriptRepository
from tests.conftest import POSTGRES_URL, SKIP_PG, reset_postgres
from tests.e2e.test_server_process import free_port
from tests.fakes.wechat_api import FAKE_STATE, FakeWeChatState, fake_wechat_app

pytestmark = [SKIP_PG, pytest.mark.asyncio(loop_scope="module")]

ZH = Texts("zh")
ORDER = "DD20250503123456"
MASKED = "****3456"
PASSWORD = "a long enough password"
POLL = 0.02  # seconds between looks at a condition
WAIT = 20.0  # seconds a condition may take before the test fails

Sessions = async_sessionmaker[AsyncSession]


async def until(check: Callable[[], Awaitable[bool]], what: str, within: float = WAIT) -> None:
    """Waits, in short polls, until ``check`` is true; fails saying ``what`` never happened."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + within
    while not await check():
        if loop.time() > give_up:
            raise AssertionError(f"gave up after {within:g} s waiting for {what}")
        await asyncio.sleep(POLL)


# -- the processes ------------------------------------------------------------------------------


def alive_in_group(pgid: int) -> bool:
    """Whether any process of this process group still runs (zombies do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        state, group = fields[0], int(fields[2])
        if group == pgid and state not in ("Z", "X"):
            return True
    return False


class Worker:
    """A `billbot serve` process group on its own port: the server, or with ``--workers N``
    the parent and its N children sharing the port."""

    def __init__(self, name: str, workdir: Path, env: dict[str, str]) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.env = {**env, "BILLBOT_PORT": str(self.port), "BILLBOT_PUBLIC_URL": self.url}
        self.log_path = workdir / f"{name}.log"
        self.proc: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None

    async def start(self, args: Sequence[str] = ()) -> None:
        self._log = self.log_path.open("wb")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "serve",
            *args,
            cwd=self.workdir,
            env=self.env,
            stdout=self._log,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as one, children too
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def ready(self, http: aiohttp.ClientSession) -> None:
        async def answers() -> bool:
            assert self.proc is not None
            if self.proc.returncode is not None:
                raise AssertionError(f"{self.name} exited:\n{self.log()}")
            try:
                async with http.get(f"{self.url}/healthz") as resp:
                    return resp.status == 200
            except aiohttp.ClientError:
                return False

        await until(answers, f"{self.name} to answer /healthz", within=60)

    async def stop(self) -> None:
        """Kills the whole group at once (a graceful stop is not what these tests are about),
        and waits until none of its processes runs, so the next test starts clean."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        with suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)

        async def gone() -> bool:
            return not alive_in_group(pgid)

        await until(gone, f"{self.name} to stop", within=15)
        await self.proc.wait()
        if self._log is not None:
            self._log.close()


class OrderGate:
    """In front of the example order backend: while closed, lookups wait (counted) until it
    opens, so a test can hold one worker's turn in the middle of its transaction."""

    def __init__(self) -> None:
        self.waiting = 0
        self._open = asyncio.Event()
        self._open.set()

    def close(self) -> None:
        self._open.clear()

    def open(self) -> None:
        self._open.set()

    @web.middleware
    async def middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        self.waiting += 1
        try:
            await self._open.wait()
        finally:
            self.waiting -= 1
        return await handler(request)


@dataclass
class Stack:
    """What the workers talk to: the database, the fake WeChat API, the order backend."""

    sessions: Sessions
    wechat: FakeWeChatState
    wechat_url: str
    orders: OrderGate
    orders_url: str
    workdir: Path
    http: aiohttp.ClientSession

    def settings(self, **extra: str) -> dict[str, str]:
        """A worker's environment: this database and these fakes, plus ``extra``."""
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith(("BILLBOT_", "WECHAT_"))},
            "BILLBOT_DATABASE_URL": POSTGRES_URL,
            "WECHAT_API_BASE": self.wechat_url,
            "BILLBOT_ORDER_API_URL": self.orders_url,
            "BILLBOT_ACCESS_LOG": "off",
            **extra,
        }

    async def start(self, name: str, env: dict[str, str], args: Sequence[str] = ()) -> Worker:
        worker = Worker(name, self.workdir, env)
        await worker.start(args)
        return worker


@asynccontextmanager
async def local_server(app: web.Application) -> AsyncIterator[TestServer]:
    server = TestServer(app)
    await server.start_server(access_log=None)  # the fakes' request lines hold secrets
    try:
        yield server
    finally:
        await server.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """One database and one set of fakes for the module; tests keep apart by customer."""
    workdir = tmp_path_factory.mktemp("workers")
    # the workers' keys (the default settings'), set before the per-test fixture would
    configure_keyring([k.reveal() for k in Settings.from_env({}).secret_keys])
    await reset_postgres(POSTGRES_URL)
    engine = create_engine(POSTGRES_URL)
    await migrate(engine)
    sessions = session_factory(engine)
    await seed_demo(sessions, SystemClock().now())
    csv = workdir / "orders.csv"
    csv.write_text(f"order_no,amount,store,contact\n{ORDER},128.50,旗舰店,alice\n")
    gate = OrderGate()
    backend = make_app(load_orders(csv))
    backend.middlewares.append(gate.middleware)
    async with (
        # real time: the workers judge tokens and the 48-hour window by their own clocks
        local_server(fake_wechat_app(SystemClock(), DEMO_APP_ID, DEMO_APP_SECRET)) as wechat,
        local_server(backend) as orders,
        aiohttp.ClientSession() as http,
    ):
        yield Stack(
            sessions=sessions,
            wechat=wechat.app[FAKE_STATE],
            wechat_url=str(wechat.make_url("")).rstrip("/"),
            orders=gate,
            orders_url=str(orders.make_url("/orders")),
            workdir=workdir,
            http=http,
        )
    await engine.dispose()


@dataclass(frozen=True)
class Workers:
    one: Worker
    two: Worker
    hasty: Worker  # gives a turn half a second before answering "success"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def workers(stack: Stack) -> AsyncIterator[Workers]:
    """Three `billbot serve` processes, each on its own port, so a test picks the worker."""
    started: list[Worker] = []
    try:
        for name, extra in (
            ("worker-1", {}),
            ("worker-2", {}),
            ("worker-hasty", {"BILLBOT_REPLY_DEADLINE_SECONDS": "0.5"}),
        ):
            started.append(await stack.start(name, stack.settings(**extra)))
        await asyncio.gather(*(w.ready(stack.http) for w in started))
        yield Workers(*started)
    finally:
        await asyncio.gather(*(w.stop() for w in started))


@pytest.fixture(autouse=True)
def gates_opened(stack: Stack) -> Iterator[None]:
    """A test that failed half way leaves nothing held for the next one."""
    yield
    stack.orders.open()
    stack.wechat.release_token_requests()
    stack.wechat.token_gate = None


# -- the people ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Callback:
    msg_id: int
    query: dict[str, str]
    body: bytes


class Customer:
    """A customer on WeChat; each message is a signed, encrypted callback to a chosen worker."""

    def __init__(self, http: aiohttp.ClientSession, openid: str, first_msg_id: int) -> None:
        self.http = http
        self.openid = openid
        self.codec = OAClientCodec(Settings.from_env({}).wechat, SystemClock())
        self._next_id = first_msg_id  # MsgIds are unique across customers, as WeChat's are

    def message(self, words: str) -> Callback:
        self._next_id += 1
        return Callback(self._next_id, *self.codec.build_text(self.openid, words, self._next_id))

    async def post(self, worker: Worker, callback: Callback) -> str:
        async with self.http.post(
            f"{worker.url}/wechat", params=callback.query, data=callback.body
        ) as resp:
            payload = await resp.read()
            assert resp.status == 200, payload
        return self.codec.read_reply(payload)

    async def say(self, worker: Worker, words: str) -> str:
        return await self.post(worker, self.message(words))

    async def queue_up(self, worker: Worker) -> None:
        """Agrees, then asks for a person: the conversation waits in the handoff queue."""
        for words in ("你好", "同意", "转人工"):
            await self.say(worker, words)


class Agent:
    """An agent's browser: its own cookies, the CSRF token; logs in on any worker."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""
        self.id = 0

    async def log_in(self, sessions: Sessions, worker: Worker) -> Agent:
        """Created as `billbot agents add` does, logged in, one-time password replaced."""
        _, one_time = await AgentDirectory(sessions, SystemClock()).create(self.name)
        async with self.http.post(
            f"{worker.url}/api/login", json={"name": self.name, "password": one_time}
        ) as resp:
            assert resp.status == 200, await resp.text()
            body = await resp.json()
            self.csrf, self.id = body["csrf_token"], body["agent"]["id"]
        status, _ = await self.post(
            worker, "/api/password", {"old_password": one_time, "new_password": PASSWORD}
        )
        assert status == 200
        return self

    async def post(self, worker: Worker, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.http.post(
            f"{worker.url}{path}", json=body or {}, headers={"X-CSRF-Token": self.csrf}
        ) as resp:
            return resp.status, await resp.json()

    async def close(self) -> None:
        await self.http.close()


@pytest_asyncio.fixture(loop_scope="module")
async def agents() -> AsyncIterator[Callable[[str], Agent]]:
    opened: list[Agent] = []

    def agent(name: str) -> Agent:
        opened.append(Agent(name))
        return opened[-1]

    yield agent
    for opened_agent in opened:
        await opened_agent.close()


# -- what the database says ---------------------------------------------------------------------


async def lock_waiters(sessions: Sessions) -> int:
    """Transactions of this database waiting for a lock (a row, a key another holds)."""
    async with sessions() as s:
        waiting = await s.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return int(waiting or 0)


async def transcript(sessions: Sessions, openid: str) -> list[tuple[str, str, str]]:
    """The customer's conversation, line by line: (direction, sender, text)."""
    async with sessions() as s:
        conv = await ConversationRepository(s).get("wechat", openid)
        assert conv is not None
        lines = await TranscriptRepository(s).lines(conv.id)
        return [(line.direction, line.sender, line.text) for line in lines]


async def said(sessions: Sessions, openid: str) -> list[str]:
    lines = await transcript(sessions, openid)
    return [words for direction, _, words in lines if direction == "in"]


async def open_handoff(sessions: Sessions, openid: str) -> HandoffRecord:
    async with sessions() as s:
        conv = await ConversationRepository(s).get("wechat", openid)
        assert conv is not None
        handoff = await HandoffRepository(s).open_for(conv.id)
    assert handoff is not None
    return handoff


async def state_of(sessions: Sessions, openid: str) -> str:
    async with sessions() as s:
        conv = await ConversationRepository(s).get("wechat", openid)
    assert conv is not None
    return conv.state


async def deliveries(sessions: Sessions, callback: Callback) -> list[ProcessedMessage]:
    """The delivery records of this callback's MsgId."""
    async with sessions() as s:
        rows = await s.scalars(
            select(ProcessedMessage).where(
                ProcessedMessage.dedup_key == f"wechat:msg:{callback.msg_id}"
            )
        )
        return list(rows)


def listening(port: int) -> int:
    """How many sockets listen on this local port (one per process under SO_REUSEPORT)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


# -- the guarantees -----------------------------------------------------------------------------


async def test_one_msg_id_delivered_to_two_workers_at_once_runs_one_turn(
    stack: Stack, workers: Workers
) -> None:
    one, two = workers.one, workers.two
    customer = Customer(stack.http, "oWorkersSameMsgId00000000001", 1_000)
    await customer.say(one, "你好")
    await customer.say(two, "同意")

    stack.orders.close()
    callback = customer.message(ORDER)
    first = asyncio.ensure_future(customer.post(one, callback))

    async def one_is_looking_up() -> bool:
        return stack.orders.waiting == 1

    await until(one_is_looking_up, "worker 1's turn to look the order up")
    retry = asyncio.ensure_future(customer.post(two, callback))  # WeChat's retry, elsewhere

    async def two_waits_for_the_claim() -> bool:
        return await lock_waiters(stack.sessions) >= 1

    await until(two_waits_for_the_claim, "worker 2 to wait for worker 1's claim of the MsgId")
    stack.orders.open()

    replies = list(await asyncio.gather(first, retry))
    assert replies == [ZH.say("ask_amount", order=MASKED)] * 2  # the stored reply, twice
    assert len(await deliveries(stack.sessions, callback)) == 1
    assert (await said(stack.sessions, customer.openid)).count(ORDER) == 1


async def test_one_customers_messages_are_processed_in_the_order_sent_across_workers(
    stack: Stack, workers: Workers
) -> None:
    one, two = workers.one, workers.two

    # back to back, each to the other worker after the previous reply
    steady = Customer(stack.http, "oWorkersInOrder0000000000001", 2_000)
    assert await steady.say(one, "你好") == ZH.say("consent_notice", fields=ZH.say("fields_amount"))
    assert ZH.say("ask_order") in await steady.say(two, "同意")
    assert await steady.say(one, ORDER) == ZH.say("ask_amount", order=MASKED)
    assert "wx_ab****89" in await steady.say(two, "128.5")
    assert await said(stack.sessions, steady.openid) == ["你好", "同意", ORDER, "128.5"]
    assert await state_of(stack.sessions, steady.openid) == Step.CARD_SENT

    # a burst: the amount reaches worker 2 while worker 1 still works on the order number,
    # then a request for a person reaches worker 1 while both wait
    burst = Customer(stack.http, "oWorkersInOrder0000000000002", 3_000)
    await burst.say(two, "你好")
    await burst.say(one, "同意")
    stack.orders.close()
    order_no = asyncio.ensure_future(burst.say(one, ORDER))

    async def one_is_looking_up() -> bool:
        return stack.orders.waiting == 1

    await until(one_is_looking_up, "worker 1's turn to look the order up")
    amount = asyncio.ensure_future(burst.say(two, "128.5"))

    async def two_waits_for_the_conversation() -> bool:
        return await lock_waiters(stack.sessions) >= 1

    await until(two_waits_for_the_conversation, "worker 2 to wait for the conversation's row")
    person = asyncio.ensure_future(burst.say(one, "转人工"))
    stack.orders.open()
    assert await order_no == ZH.say("ask_amount", order=MASKED)
    assert "wx_ab****89" in await amount  # checked against the order found just before
    assert await person  # answered by the bot, which still owned the conversation
    assert await said(stack.sessions, burst.openid) == ["你好", "同意", ORDER, "128.5", "转人工"]
    assert await state_of(stack.sessions, burst.openid) == Step.HANDOFF


async def test_a_handoff_claimed_by_two_agents_on_two_workers_has_one_owner(
    stack: Stack, workers: Workers, agents: Callable[[str], Agent]
) -> None:
    one, two = workers.one, workers.two
    alice = await agents("alice").log_in(stack.sessions, one)
    bob = await agents("bob").log_in(stack.sessions, two)
    for n in range(3):  # three races, three customers
        customer = Customer(stack.http, f"oWorkersClaim000000000000000{n}", 4_000 + 100 * n)
        await customer.queue_up(one if n % 2 else two)
        handoff = await open_handoff(stack.sessions, customer.openid)
        assert handoff.status is HandoffStatus.WAITING

        path = f"/api/handoffs/{handoff.id}/claim"
        (a_status, a_body), (b_status, b_body) = await asyncio.gather(
            alice.post(one, path), bob.post(two, path)
        )
        assert sorted([a_status, b_status]) == [200, 409], (a_body, b_body)
        winner = "alice" if a_status == 200 else "bob"
        assert (a_body if a_status == 200 else b_body)["item"]["claimed_by"] == winner
        assert (await open_handoff(stack.sessions, customer.openid)).status is HandoffStatus.CLAIMED
        async with stack.sessions() as s:
            conv = await ConversationRepository(s).get("wechat", customer.openid)
        assert conv is not None
        assert conv.owner == Owner.agent(alice.id if winner == "alice" else bob.id)


async def test_workers_needing_a_token_at_once_fetch_one(
    stack: Stack, workers: Workers, agents: Callable[[str], Agent]
) -> None:
    one, two = workers.one, workers.two
    carol = await agents("carol").log_in(stack.sessions, one)
    dave = await agents("dave").log_in(stack.sessions, two)
    held: dict[str, int] = {}
    openids: dict[str, str] = {}
    for agent, worker, n in ((carol, one, 1), (dave, two, 2)):
        customer = Customer(stack.http, f"oWorkersToken000000000000000{n}", 5_000 + 100 * n)
        await customer.queue_up(worker)
        stack.wechat.customer_wrote(customer.openid)
        handoff = await open_handoff(stack.sessions, customer.openid)
        status, _ = await agent.post(worker, f"/api/handoffs/{handoff.id}/claim")
        assert status == 200
        held[agent.name], openids[agent.name] = handoff.id, customer.openid

    async with stack.sessions.begin() as s:  # no token yet, whatever ran before
        await s.execute(delete(AccessToken))
    fetched, sent, logged = stack.wechat.token_requests, len(stack.wechat.sent), len(two.log())
    stack.wechat.hold_token_requests()  # the first refresher's request waits at WeChat
    first = asyncio.ensure_future(
        carol.post(one, f"/api/handoffs/{held['carol']}/reply", {"text": "您好，我是小王。"})
    )

    async def one_fetches() -> bool:
        return stack.wechat.token_requests == fetched + 1

    await until(one_fetches, "worker 1 to ask WeChat for a token")
    second = asyncio.ensure_future(
        dave.post(two, f"/api/handoffs/{held['dave']}/reply", {"text": "您好，我是小李。"})
    )

    async def two_waits() -> bool:
        return "being refreshed by another process" in two.log()[logged:]

    await until(two_waits, "worker 2 to wait for worker 1's refresh")
    stack.wechat.release_token_requests()
    answers = await asyncio.gather(first, second)
    assert [status for status, _ in answers] == [200, 200], answers
    assert stack.wechat.token_requests == fetched + 1  # one token for both processes
    assert sorted(stack.wechat.sent[sent:]) == sorted(
        [(openids["carol"], "您好，我是小王。"), (openids["dave"], "您好，我是小李。")]
    )


async def test_a_retry_of_a_late_reply_on_another_worker_is_not_answered_twice(
    stack: Stack, workers: Workers
) -> None:
    # worker 1 gives a turn half a second; worker 2 the usual four
    one, two = workers.hasty, workers.two
    customer = Customer(stack.http, "oWorkersLateReply00000000001", 6_000)
    await customer.say(two, "你好")
    await customer.say(two, "同意")
    stack.wechat.customer_wrote(customer.openid)

    sent = len(stack.wechat.sent)
    stack.orders.close()
    callback = customer.message(ORDER)
    assert await customer.post(one, callback) == ""  # "success": the turn is still running

    async def one_is_looking_up() -> bool:
        return stack.orders.waiting == 1

    await until(one_is_looking_up, "worker 1's turn to be held at the order backend")
    retry = asyncio.ensure_future(customer.post(two, callback))  # WeChat's retry, 5 s later

    async def two_waits_for_the_claim() -> bool:
        return await lock_waiters(stack.sessions) >= 1

    await until(two_waits_for_the_claim, "worker 2 to wait for worker 1's claim of the MsgId")
    stack.orders.open()
    assert await retry == ""  # the record says the reply goes out through the API

    async def sent_late() -> bool:
        return len(stack.wechat.sent) == sent + 1

    await until(sent_late, "worker 1 to send the late reply through the message API")
    assert await customer.post(two, callback) == ""  # WeChat's last retry: nothing again
    assert stack.wechat.sent[sent:] == [(customer.openid, ZH.say("ask_amount", order=MASKED))]
    [delivery] = await deliveries(stack.sessions, callback)
    assert delivery.answered_late_at is not None
    lines = await transcript(stack.sessions, customer.openid)
    assert ("out", "bot-api", ZH.say("ask_amount", order=MASKED)) in lines
    assert "wx_ab****89" in await customer.say(one, "128.5")  # and the dialogue goes on


def metric(exposition: str, name: str, labels: str = "") -> float:
    """One sample of a Prometheus exposition (0 if absent)."""
    found = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", exposition, re.M)
    return float(found[1]) if found else 0.0


@pytest_asyncio.fixture(loop_scope="module")
async def shared_port(stack: Stack) -> AsyncIterator[Worker]:
    """`billbot serve --workers 2`: a parent and two processes listening on one port."""
    server = await stack.start("workers-2", stack.settings(), args=["--workers", "2"])
    try:
        await server.ready(stack.http)

        async def both_listen() -> bool:
            return listening(server.port) == 2

        await until(both_listen, "both processes to listen on the port")
        yield server
    finally:
        await server.stop()


async def test_serve_with_two_workers_shares_one_port_and_processes_each_msg_id_once(
    stack: Stack, shared_port: Worker
) -> None:
    server = shared_port
    notice = ZH.say("consent_notice", fields=ZH.say("fields_amount"))
    # every message twice at once (WeChat's retry), each on a new connection: the kernel
    # spreads connections over the processes listening on the port
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as fresh:
        customers = [
            Customer(fresh, f"oWorkersShared00000000000{n:03d}", 10 * n) for n in range(24)
        ]
        first_words = [c.message("你好") for c in customers]
        replies = await asyncio.gather(
            *(c.post(server, m) for c, m in zip(customers, first_words, strict=True) for _ in "ab")
        )
        assert replies == [notice] * 48

        # each process counts what it answered (its time spent tells it apart); scrape on
        # new connections until both processes have been heard from
        seen: dict[float, tuple[float, float]] = {}

        async def both_answered() -> bool:
            async with fresh.get(f"{server.url}/metrics") as resp:
                body = await resp.text()
            spent = metric(body, "billbot_turn_seconds_sum", '{channel="wechat"}')
            seen[spent] = (
                metric(body, "billbot_deliveries_total", '{channel="wechat",outcome="ok"}'),
                metric(body, "billbot_deliveries_total", '{channel="wechat",outcome="duplicate"}'),
            )
            return len(seen) >= 2

        await until(both_answered, "a second process to answer /metrics")
    assert all(ok + dup > 0 for ok, dup in seen.values())  # both answered callbacks
    # and between them all of them: each MsgId processed once, its retry from the record
    assert sum(ok for ok, _ in seen.values()) == 24
    assert sum(dup for _, dup in seen.values()) == 24
    recorded = [await deliveries(stack.sessions, m) for m in first_words]
    assert all(len(records) == 1 for records in recorded)
