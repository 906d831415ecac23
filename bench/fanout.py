"""Live delivery over WebSockets: 1:1 throughput and latency, big-room fan-out, idle memory.

Run from the repository root::

    .venv/bin/python bench/fanout.py                                # everything (~3 min)
    .venv/bin/python bench/fanout.py --rates 500,1000 --step-seconds 5 --fanout-reps 5
    .venv/bin/python bench/fanout.py --database-url postgresql+asyncpg://postgres@127.0.0.1/x
    .venv/bin/python bench/fanout.py --idle 10000 --rates 500,1000 --fanout-reps 0
    .venv/bin/python bench/fanout.py --nodes 2 --broker-url redis://127.0.0.1:6379/0 \
        --database-url postgresql+asyncpg://postgres@127.0.0.1/x --fanout-reps 0

Options beyond the defaults (issue #10):

- ``--idle N``: N more users with one session each, whose sockets authenticate and then
  only answer pings; opened last in (c) (so (c) is measured at ``2 x --devices + N``) and
  held open through (b) and (a). Judged against issue #10's targets (1,000 msg/s at
  p99 < 100 ms, < 25 KiB per idle socket) unless ``--target-*`` says otherwise.
- ``--nodes N`` (with a PostgreSQL ``--database-url`` and a ``redis://`` ``--broker-url``):
  N ``chinwag serve`` processes on the one database; client process ``w`` talks to node
  ``w % N`` and holds the devices whose index is ``w`` modulo the client count, so device
  ``i`` is on node ``i % N`` and the two devices of each pair are on different nodes: every
  1:1 message crosses the doorbell. Server CPU is reported per node, RSS summed.
- ``--broker-url`` / ``--broker-prefix``: the servers' ``CHINWAG_BROKER_URL`` and
  ``CHINWAG_BROKER_PREFIX`` (default ``chinwag-bench-<pid>``, apart from anyone else using
  that Redis). ``bench/doorbell.py`` compares ``memory://`` with ``redis://`` on one node.
- ``--gc-log``: the servers log their generation-2 (and any > 5 ms) garbage collections
  through ``bench/_gc_probe/sitecustomize.py``; each step reports its full collections.
  Per step, the table also has each event-loop thread's wait for a CPU (schedstat) and
  the kernel's share of the server CPU; before (a), the server CPU at rest.

What it does, in order:

1. **Setup (not timed).** A fresh SQLite database in a temporary directory (or
   ``--database-url``). Through the server's own handlers, before the server starts: one
   app with an HS256 secret; 2 x ``--devices`` (+ ``--idle``) users, each with one session
   (nonce, signed identity token, ``create_session``; 64 at a time, progress on stderr);
   ``--devices / 2`` distinct 1:1 conversations among the first half ("pair" users); one
   conversation holding all of the second half ("group" users, 1,000 by default =
   ``max_participants``).
2. **Server.** ONE (or ``--nodes``) ``chinwag serve --no-dev-app`` subprocess (uvloop,
   httptools, websockets sans-I/O), auth rate limit off, log level warning, RLIMIT_NOFILE
   raised (inherited and set again in a ``preexec_fn``). ``--profile out.html`` runs it
   under pyinstrument.
3. **Clients.** ``--clients`` processes (``bench/_ws_load.py``), each a uvloop holding its
   share of the sockets as bare ``asyncio.Protocol`` objects; frames are classified by
   prefix and a body marker, never fully parsed. Their CPU time is measured per phase.
4. **(c) Memory per idle connection.** Server RSS (psutil) after a warm-up, after opening
   the pair devices' sockets (N), and after also opening the group devices' (2N); the
   increase divided by the sockets opened. All sockets then stay open for (b) and (a).
5. **(b) Fan-out.** A group device sends one message into the 1,000-member conversation;
   the time until the last of the 1,000 devices (the sender's own included) has the
   ``message.created`` event. One warm-up, then ``--fanout-reps`` repetitions.
6. **(a) 1:1 load.** Steps of offered aggregate rate (``--rates``), ``--step-seconds``
   each: every pair device in turn sends ``message.send`` over its socket, open loop, with
   ``time.monotonic()`` in the body; latency is until the *other* user's device receives
   ``message.created``. After each step the run waits (bounded) for every delivery, then
   reports p50/p90/p99/max, the delivered rate, the server's CPU (main thread and others)
   and the clients' CPU. Stepping stops after the first step that is clearly overloaded.

Results: ``bench/results/fanout.md`` (tables, machine info, load averages),
``fanout.json`` (raw figures) and ``fanout.png``. Everything is on 127.0.0.1, bounded in
time, and stops by itself. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fanout_report import Targets, targets, write_markdown, write_plot
from _load import PostgresProbe, ServerProcess, loadavg, machine_info, percentile
from _ws_load import Device, raise_nofile_limit, worker_main

__all__ = ["main"]

RESULTS = Path(__file__).resolve().parent / "results"


def log(message: str) -> None:
    sys.stderr.write(f"[fanout {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------- setup


@dataclass
class Fixture:
    pairs: list[Device]
    group: list[Device]
    group_conversation: str
    seconds: float
    idle: list[Device] = field(default_factory=list)


SESSION_BATCH = 64
"""Sessions created concurrently during setup (SQLite serialises them on its one held
connection but skips the per-call round trips; PostgreSQL runs them on its pool)."""


async def _sessions(
    services: Any, app_id: str, key: Any, user_ids: list[str]
) -> tuple[list[Any], list[str]]:
    """One session per user id, ``SESSION_BATCH`` at a time, with progress on stderr."""
    from chinwag.core.keys import Alg, sign_identity_token
    from chinwag.server.handlers.auth import Authenticated, create_session, new_nonce

    async def one(user_id: str) -> tuple[Any, str]:
        claims = {
            "sub": user_id,
            "nce": new_nonce(services, app_id).value,
            "iat": int(services.now()),
        }
        token = sign_identity_token(claims, kid=key.record.kid, alg=Alg.HS256, secret=key.secret)
        session = await create_session(services, app_id, token)
        return Authenticated(session=session.session, user=session.user), session.token

    callers: list[Any] = []
    tokens: list[str] = []
    started = time.monotonic()
    last_report = started
    for at in range(0, len(user_ids), SESSION_BATCH):
        done = await asyncio.gather(*(one(u) for u in user_ids[at : at + SESSION_BATCH]))
        callers += [c for c, _ in done]
        tokens += [t for _, t in done]
        now = time.monotonic()
        if now - last_report >= 2.0 or len(tokens) == len(user_ids):
            last_report = now
            rate = len(tokens) / max(1e-9, now - started)
            log(
                f"setup: {len(tokens):,}/{len(user_ids):,} sessions ({rate:.0f}/s, "
                f"ETA {(len(user_ids) - len(tokens)) / max(rate, 1e-9):.0f} s)"
            )
    return callers, tokens


async def _setup(database_url: str, devices: int, idle: int = 0) -> Fixture:
    from chinwag.server.context import open_services
    from chinwag.server.handlers import apps as app_handlers
    from chinwag.server.handlers.conversation_create import create_conversation
    from chinwag.server.settings import Settings

    started = time.monotonic()
    settings = Settings(database_url=database_url, auth_rate_per_second=0)
    async with open_services(settings) as services:
        app, _ = await app_handlers.create_app(services, "fanout bench")
        key = await app_handlers.add_secret(services, app.id)
        user_ids = [f"{'p' if i < devices else 'g'}{i}" for i in range(2 * devices)]
        user_ids += [f"i{2 * devices + i}" for i in range(idle)]
        callers, tokens = await _sessions(services, app.id, key, user_ids)
        pairs = [Device(i, tokens[i]) for i in range(devices)]
        for i in range(0, devices, 2):
            conv, _ = await create_conversation(
                services,
                callers[i],
                participants=[callers[i + 1].user.user_id],
                distinct=True,
                metadata=None,
            )
            pairs[i].conversation_id = pairs[i + 1].conversation_id = str(conv["id"])
        log(f"setup: {devices // 2} 1:1 conversations")
        group_callers = callers[devices : 2 * devices]
        conv, _ = await create_conversation(
            services,
            group_callers[0],
            participants=[c.user.user_id for c in group_callers],
            distinct=False,
            metadata={"title": "everyone"},
        )
        group = [Device(devices + i, tokens[devices + i], str(conv["id"])) for i in range(devices)]
        log(f"setup: one {len(conv['participants'])}-member conversation")
        idle_devices = [Device(i, tokens[i]) for i in range(2 * devices, 2 * devices + idle)]
        if services.db.is_postgres:
            # Planner statistics for the tables setup just filled: without them the first
            # steps ran on plans made for empty tables until autovacuum's ANALYZE (within a
            # minute or so), and two runs of one commit differed by 40 %.
            from sqlalchemy import text

            async with services.db.engine.begin() as conn:
                await conn.execute(text("ANALYZE"))
            log("setup: ANALYZE")
    return Fixture(pairs, group, str(conv["id"]), time.monotonic() - started, idle_devices)


# --------------------------------------------------------------------------- server


def _raise_limit_in_child() -> None:
    raise_nofile_limit()


@dataclass
class FanoutServer(ServerProcess):
    """``ServerProcess`` with a raised fd limit (and, via ``python_args``, a profiler)."""

    preexec_fn: Callable[[], None] | None = _raise_limit_in_child
    gc_log: Path | None = None
    """Where ``bench/_gc_probe`` appends this server's slow collections (``--gc-log``)."""

    def collections(self, since: float, until: float) -> list[tuple[int, float]]:
        """(generation, ms) of the logged collections that started in [since, until)."""
        if self.gc_log is None or not self.gc_log.exists():
            return []
        found = []
        for line in self.gc_log.read_text().splitlines():
            start, generation, ms, _ = line.split()
            if since <= float(start) < until:
                found.append((int(generation), float(ms)))
        return found

    def process(self) -> psutil.Process:
        """The Python process serving (the profiler wrapper execs nothing: it is that one)."""
        return psutil.Process(self.pid)

    def rss(self) -> int:
        return int(self.process().memory_info().rss)

    def run_wait(self) -> float:
        """Seconds the main (event-loop) thread has been ready to run but waiting for a CPU
        (``/proc/<pid>/schedstat``): the shared machine's share of a slow p99."""
        try:
            with open(f"/proc/{self.pid}/schedstat") as schedstat:
                return int(schedstat.read().split()[1]) / 1e9
        except (OSError, IndexError, ValueError):  # no schedstats on this kernel
            return 0.0

    def thread_cpu(self) -> tuple[float, float]:
        """(main thread, all other threads) user+system CPU seconds so far."""
        main = other = 0.0
        for thread in self.process().threads():
            spent = thread.user_time + thread.system_time
            if thread.id == self.pid:
                main += spent
            else:
                other += spent
        return main, other

    def system_cpu(self) -> float:
        """Kernel-mode CPU seconds so far (socket calls and wake-ups: the round trips)."""
        return float(self.process().cpu_times().system)


# --------------------------------------------------------------------------- clients


class Clients:
    """The client processes, driven synchronously over pipes.

    Client process ``w`` talks to node ``w % len(ports)`` and holds the devices whose index
    is ``w`` modulo the number of processes; with as many processes as nodes (or a multiple),
    device ``i`` is on node ``i % nodes``, so the two devices of a pair (``2k``, ``2k + 1``)
    are on different nodes.
    """

    def __init__(self, count: int, ports: list[int]) -> None:
        if count % len(ports):
            raise ValueError(f"{count} client processes cannot be split over {len(ports)} nodes")
        ctx = mp.get_context("spawn")
        self.pipes: list[Pipe] = []
        self.procs: list[Any] = []
        for w in range(count):
            ours, theirs = ctx.Pipe()
            port = ports[w % len(ports)]
            proc = ctx.Process(target=worker_main, args=(theirs, "127.0.0.1", port), daemon=True)
            proc.start()
            self.pipes.append(ours)
            self.procs.append(proc)

    def call(self, command: str, args: list[dict[str, Any]] | dict[str, Any] | None = None,
             timeout: float = 120.0) -> list[Any]:  # fmt: skip
        per = args if isinstance(args, list) else [args or {}] * len(self.pipes)
        for pipe, arg in zip(self.pipes, per, strict=True):
            pipe.send((command, arg))
        results = []
        deadline = time.monotonic() + timeout
        for pipe in self.pipes:
            if not pipe.poll(max(0.1, deadline - time.monotonic())):
                raise TimeoutError(f"client process did not answer {command!r} in {timeout}s")
            results.append(pipe.recv())
        return results

    def split(self, devices: list[Device]) -> list[list[Device]]:
        n = len(self.pipes)
        return [[d for d in devices if d.index % n == w] for w in range(n)]

    def cpu(self) -> list[float]:
        return [float(x) for x in self.call("cpu")]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call("close", timeout=10)
        with contextlib.suppress(Exception):
            self.call("exit", timeout=5)
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()


# --------------------------------------------------------------------------- phases


def _settled_rss(servers: list[FanoutServer], seconds: float = 2.0) -> int:
    """Median of a few samples of the servers' summed RSS after letting them settle."""
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.25)
        samples.append(sum(server.rss() for server in servers))
    return int(statistics.median(samples[-4:]))


def _cpu(servers: list[FanoutServer]) -> list[tuple[float, float]]:
    return [server.thread_cpu() for server in servers]


def phase_memory(servers: list[FanoutServer], clients: Clients, fx: Fixture) -> dict[str, Any]:
    log("(c) memory: warm-up sockets")
    warm = fx.pairs[:20]
    clients.call("connect", [{"devices": d} for d in clients.split(warm)])
    time.sleep(0.5)
    clients.call("close")
    time.sleep(0.5)
    base = _settled_rss(servers)
    rows: list[dict[str, Any]] = [{"sockets": 0, "rss": base, "load": loadavg()}]
    opened = 0
    for name, devices in (("pair", fx.pairs), ("group", fx.group), ("idle", fx.idle)):
        if not devices:
            continue
        t0 = time.monotonic()
        cpu0 = sum(sum(c) for c in _cpu(servers))
        results = clients.call("connect", [{"devices": d} for d in clients.split(devices)])
        took = time.monotonic() - t0
        connected = sum(r["connected"] for r in results)
        failures = [f for r in results for f in r["failures"]]
        if failures:
            log(f"(c) connect failures: {failures[:3]}")
        opened += connected
        rss = _settled_rss(servers, 4.0 if len(devices) > 2000 else 2.0)
        rows.append(
            {
                "sockets": opened,
                "rss": rss,
                "per_socket": (rss - base) / opened,
                "connect_seconds": took,
                "connect_per_second": connected / took,
                "server_cpu_ms_per_connect": (sum(sum(c) for c in _cpu(servers)) - cpu0)
                * 1e3
                / max(1, connected),
                "connected": connected,
                "failed": len(devices) - connected,
                "load": loadavg(),
                "group": name,
            }
        )
        log(
            f"(c) {opened} sockets: RSS {rss / 2**20:.1f} MiB, "
            f"{(rss - base) / opened / 1024:.1f} KiB/socket (connected {connected / took:.0f}/s)"
        )
    return {"rows": rows, "fds": sum(server.process().num_fds() for server in servers)}


def phase_fanout(clients: Clients, fx: Fixture, reps: int) -> dict[str, Any]:
    sender = fx.group[0].index
    members = len(fx.group)
    runs: list[dict[str, Any]] = []
    for k in range(reps + 1):
        load = loadavg()
        sent = [t for t in clients.call("fanout", {"k": k, "sender": sender,
                                                   "conversation_id": fx.group_conversation})
                if t is not None]  # fmt: skip
        t0 = sent[0]
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if sum(clients.call("fanout_count", {"k": k})) >= members:
                break
            time.sleep(0.05)
        times = sorted(t for ts in clients.call("fanout_times", {"k": k}) for t in ts)
        if not times:
            raise RuntimeError(f"fan-out {k}: nothing delivered")
        run = {
            "k": k,
            "devices": len(times),
            "first_ms": (times[0] - t0) * 1e3,
            "median_ms": (times[len(times) // 2] - t0) * 1e3,
            "last_ms": (times[-1] - t0) * 1e3,
            "load": load,
            "warmup": k == 0,
        }
        runs.append(run)
        log(
            f"(b) fan-out {k}{' (warm-up)' if k == 0 else ''}: {len(times)}/{members} devices, "
            f"first {run['first_ms']:.1f} ms, median {run['median_ms']:.1f} ms, "
            f"last {run['last_ms']:.1f} ms"
        )
        time.sleep(0.5)
    counted = [r for r in runs if not r["warmup"]]
    lasts = sorted(r["last_ms"] for r in counted)
    return {
        "members": members,
        "runs": runs,
        "median_last_ms": statistics.median(lasts),
        "max_last_ms": max(lasts),
        "min_last_ms": min(lasts),
    }


def _step(
    servers: list[FanoutServer],
    clients: Clients,
    fx: Fixture,
    step: int,
    rate: float,
    seconds: float,
    drain: float,
    pg: PostgresProbe | None = None,
) -> dict[str, Any]:
    load_before = loadavg()
    pg0 = pg.sample() if pg is not None else None
    n = len(clients.pipes)
    shares = clients.split(fx.pairs)
    start_at = time.monotonic() + 0.3
    cpu_clients0 = clients.cpu()
    cpu_nodes0 = _cpu(servers)
    wait0 = [server.run_wait() for server in servers]
    sys0 = sum(server.system_cpu() for server in servers)
    wall0 = time.monotonic()
    results = clients.call(
        "load",
        [
            {
                "step": step,
                "rate": rate / n,
                "seconds": seconds,
                "start_at": start_at,
                "indices": [d.index for d in share],
            }
            for share in shares
        ],
        timeout=seconds + 60,
    )
    sent = sum(r["sent"] for r in results)
    deadline = time.monotonic() + drain
    counts: list[dict[str, int]] = []
    while time.monotonic() < deadline:
        counts = clients.call("counts", {"step": step})
        if sum(c["delivered"] for c in counts) >= sent and sum(c["acked"] for c in counts) >= sent:
            break
        time.sleep(0.1)
    cpu_nodes1 = _cpu(servers)
    pg1 = pg.sample() if pg is not None else None
    wait1 = [server.run_wait() for server in servers]
    sys1 = sum(server.system_cpu() for server in servers)
    cpu_clients1 = clients.cpu()
    wall = time.monotonic() - wall0 - 0.3
    gcs = [g for server in servers for g in server.collections(start_at, time.monotonic())]
    full = [ms for generation, ms in gcs if generation == 2]
    collected = clients.call("collect", {"step": step})
    delivered = sorted(x for c in collected for x in c["delivered"])
    acked = sorted(x for c in collected for x in c["acked"])
    last = max(c["last_delivery"] for c in collected)
    busy = max(1e-9, last - start_at) if delivered else wall
    main_cpu = sum(b[0] - a[0] for a, b in zip(cpu_nodes0, cpu_nodes1, strict=True))
    other_cpu = sum(b[1] - a[1] for a, b in zip(cpu_nodes0, cpu_nodes1, strict=True))
    return {
        "step": step,
        "offered": rate,
        "seconds": seconds,
        "sent": sent,
        "send_rate": sent / max(r["seconds"] for r in results),
        "schedule_lag_max_ms": max(r["schedule_lag_max"] for r in results) * 1e3,
        "delivered": len(delivered),
        "acked": len(acked),
        "errors": max((c["errors"] for c in counts), default=0),
        "closed": max((c["closed"] for c in counts), default=0),
        "delivered_rate": len(delivered) / busy,
        "drain_seconds": max(0.0, last - start_at - seconds) if delivered else None,
        "p50_ms": percentile(delivered, 50) * 1e3,
        "p90_ms": percentile(delivered, 90) * 1e3,
        "p99_ms": percentile(delivered, 99) * 1e3,
        "max_ms": (delivered[-1] if delivered else 0.0) * 1e3,
        "ack_p50_ms": percentile(acked, 50) * 1e3,
        "ack_p99_ms": percentile(acked, 99) * 1e3,
        "server_cpu": (main_cpu + other_cpu) / wall,
        "server_main_cpu": main_cpu / wall,
        "server_other_cpu": other_cpu / wall,
        "server_cpu_ms_per_msg": (main_cpu + other_cpu) * 1e3 / max(1, sent),
        "server_system_share": (sys1 - sys0) / max(1e-9, main_cpu + other_cpu),
        "gc_full": len(full),
        "gc_full_max_ms": max(full, default=0.0),
        "gc_slow_ms": sum(ms for _, ms in gcs),
        "node_wait": [(b - a) / wall for a, b in zip(wait0, wait1, strict=True)],
        "node_cpu": [(sum(b) - sum(a)) / wall for a, b in zip(cpu_nodes0, cpu_nodes1, strict=True)],
        "client_cpu": [(b - a) / wall for a, b in zip(cpu_clients0, cpu_clients1, strict=True)],
        **(
            {
                "pg_xacts_per_msg": (pg1[0] - pg0[0]) / max(1, sent),
                "pg_cpu_ms_per_msg": (pg1[1] - pg0[1]) * 1e3 / max(1, sent),
            }
            if pg0 is not None and pg1 is not None
            else {}
        ),
        "load_before": load_before,
        "load_after": loadavg(),
    }


def phase_load(
    servers: list[FanoutServer],
    clients: Clients,
    fx: Fixture,
    rates: list[int],
    seconds: float,
    drain: float,
    all_steps: bool,
    pg: PostgresProbe | None = None,
) -> dict[str, Any]:
    cpu0, wall0 = _cpu(servers), time.monotonic()
    time.sleep(3.0)
    rest = [
        (sum(b) - sum(a)) / (time.monotonic() - wall0)
        for a, b in zip(cpu0, _cpu(servers), strict=True)
    ]
    log("(a) server CPU at rest (no messages): " + " / ".join(f"{c:.2f}" for c in rest))
    warm = min(200, rates[0])  # a warm-up beyond the first step would only queue a backlog
    log(f"(a) warm-up: {warm} msg/s for 3 s")
    _step(servers, clients, fx, 0, warm, 3.0, drain)
    steps: list[dict[str, Any]] = []
    for i, rate in enumerate(rates, start=1):
        log(f"(a) step {i}/{len(rates)}: {rate} msg/s offered for {seconds:.0f} s")
        row = _step(servers, clients, fx, i, rate, seconds, drain, pg)
        row["sustained"] = (
            row["delivered"] >= 0.99 * row["sent"]
            and row["send_rate"] >= 0.95 * rate
            and row["p99_ms"] < 1000.0
        )
        steps.append(row)
        log(
            f"(a)   sent {row['sent']} ({row['send_rate']:.0f}/s), delivered {row['delivered']} "
            f"({row['delivered_rate']:.0f}/s), p50 {row['p50_ms']:.1f} ms, "
            f"p99 {row['p99_ms']:.1f} ms, max {row['max_ms']:.0f} ms; server CPU "
            f"{row['server_cpu']:.2f} (main {row['server_main_cpu']:.2f}"
            + (
                f"; nodes {' / '.join(f'{c:.2f}' for c in row['node_cpu'])}"
                if len(servers) > 1
                else ""
            )
            + f"; {row['server_system_share']:.0%} in the kernel)"
            + f", loop waiting for CPU {max(row['node_wait']):.0%}"
            + (
                f", full GCs {row['gc_full']} (longest {row['gc_full_max_ms']:.0f} ms)"
                if any(s.gc_log for s in servers)
                else ""
            )
            + (
                f", PostgreSQL {row['pg_xacts_per_msg']:.2f} transactions and "
                f"{row['pg_cpu_ms_per_msg']:.2f} ms CPU per message"
                if "pg_xacts_per_msg" in row
                else ""
            )
            + ", clients "
            + "/".join(f"{c:.2f}" for c in row["client_cpu"])
            + f"; load {row['load_after'][0]}"
        )
        overloaded = row["delivered"] < 0.9 * row["sent"] or row["p99_ms"] > 3000.0
        if overloaded and not all_steps:
            log("(a) overloaded; not offering more")
            break
    sustained = [s["offered"] for s in steps if s["sustained"]]
    return {"steps": steps, "max_sustained": max(sustained) if sustained else None, "rest": rest}


# --------------------------------------------------------------------------- main


def _code_state() -> str:
    """The commit the server ran from, and any uncommitted server files (shared tree):
    of the tree ``chinwag`` is imported from, so a run with ``PYTHONPATH`` pointing at
    another worktree names that worktree's commit (the servers inherit the path)."""
    import chinwag

    repo = Path(chinwag.__file__).resolve().parents[2]

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=repo, text=True,
                             capture_output=True, check=False)  # fmt: skip
        return out.stdout.strip()

    dirty = git("status", "--short", "--", "src").splitlines()
    head = git("log", "-1", "--format=%h", "--", "src")  # the last commit that changed src/
    return head + (f" + uncommitted: {', '.join(d.split()[-1] for d in dirty)}" if dirty else "")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=1000, help="pair devices = group size")
    parser.add_argument(
        "--idle",
        type=int,
        default=0,
        help="extra idle authenticated sockets held open during (a) and (b); "
        "(c) is measured with them too; sets issue #10's targets",
    )
    parser.add_argument("--rates", default="50,100,200,500,1000,1500,2000,2500")
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--drain-seconds", type=float, default=20.0)
    parser.add_argument("--all-steps", action="store_true", help="keep stepping when overloaded")
    parser.add_argument("--fanout-reps", type=int, default=10, help="0: skip (b)")
    parser.add_argument(
        "--clients",
        type=int,
        default=0,
        help="client processes (default: one per node, two with --idle)",
    )
    parser.add_argument("--database-url", help="default: SQLite in a temporary directory")
    parser.add_argument(
        "--nodes",
        type=int,
        default=1,
        help="chinwag serve processes on one database (needs --database-url "
        "on PostgreSQL and a redis:// --broker-url)",
    )
    parser.add_argument(
        "--broker-url",
        default="memory://",
        help="the servers' CHINWAG_BROKER_URL, e.g. redis://127.0.0.1:6379/0",
    )
    parser.add_argument(
        "--broker-prefix", default=None, help="CHINWAG_BROKER_PREFIX (default: chinwag-bench-<pid>)"
    )
    parser.add_argument(
        "--rate-limit-url",
        help="CHINWAG_RATE_LIMIT_URL (default: the server's, i.e. the broker's Redis if any)",
    )
    parser.add_argument("--target-rate", type=int, help="judge (a) at this offered rate")
    parser.add_argument("--target-p99-ms", type=float, help="… against this p99")
    parser.add_argument("--profile", type=Path, help="run the server under pyinstrument")
    parser.add_argument(
        "--gc-log",
        action="store_true",
        help="log the servers' slow garbage collections (bench/_gc_probe) and report them per step",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "fanout", help="results stem")
    args = parser.parse_args(argv)
    if args.devices % 2 or not 2 <= args.devices <= 1000:
        parser.error("--devices must be even, 2..1000 (the group conversation's maximum)")
    if args.nodes > 1 and not (args.database_url or "").startswith("postgresql"):
        parser.error("--nodes > 1 needs --database-url postgresql+asyncpg://… (one database)")
    if args.nodes > 1 and not args.broker_url.startswith("redis"):
        parser.error("--nodes > 1 needs --broker-url redis://… (the nodes' doorbell)")
    if args.profile and args.nodes > 1:
        parser.error("--profile runs one node only")
    if not args.clients:
        args.clients = args.nodes * (2 if args.idle else 1)
    if args.clients % args.nodes:
        parser.error("--clients must be a multiple of --nodes (each talks to one node)")
    args.broker_prefix = args.broker_prefix or f"chinwag-bench-{mp.current_process().pid}"
    return args


def _goal(args: argparse.Namespace) -> Targets:
    base = Targets.issue_10() if args.idle else Targets()
    return Targets(
        rate=args.target_rate or base.rate,
        p99_ms=args.target_p99_ms or base.p99_ms,
        fanout_ms=base.fanout_ms,
        kib_per_socket=base.kib_per_socket,
    )


def max_connections(args: argparse.Namespace) -> int:
    """The server's default (10,000), or every socket of the run plus 100 if that is more."""
    return max(10_000, 2 * args.devices + args.idle + 100)


def _servers(
    args: argparse.Namespace, stack: contextlib.ExitStack, database_url: str, tmp: str
) -> list[FanoutServer]:
    """Start the nodes one after the other (each migrates nothing: setup did)."""
    python_args: tuple[str, ...] = ()
    if args.profile:
        python_args = ("-m", "pyinstrument", "-o", str(args.profile))
        if args.profile.suffix == ".txt":
            python_args += ("-r", "text")
    servers = []
    env = {
        "CHINWAG_AUTH_RATE_PER_SECOND": "0",
        "CHINWAG_BROKER_URL": args.broker_url,
        "CHINWAG_BROKER_PREFIX": args.broker_prefix,
        # max_connections (10,000 by default) would refuse --idle 10000's last 2,000 sockets
        # with 503: raise it to what the run opens, plus room for HTTP.
        "CHINWAG_MAX_CONNECTIONS": str(max_connections(args)),
    }
    if args.rate_limit_url:
        env["CHINWAG_RATE_LIMIT_URL"] = args.rate_limit_url
    if args.gc_log:
        probe = str(Path(__file__).resolve().parent / "_gc_probe")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [probe, os.environ.get("PYTHONPATH")]))
    for n in range(args.nodes):
        node_env = dict(env)
        if args.gc_log:
            node_env["CHINWAG_BENCH_GC_LOG"] = str(Path(tmp) / f"gc-{n}.log")
        server = FanoutServer(
            database_url=database_url,
            env=node_env,
            gc_log=Path(node_env["CHINWAG_BENCH_GC_LOG"]) if args.gc_log else None,
            log_path=Path(tmp) / f"server-{n}.log",
            python_args=python_args,
            start_timeout=60,
        )
        stack.enter_context(server)
        log(f"node {n + 1}: pid {server.pid} on port {server.port}; "
            f"RLIMIT_NOFILE {server.process().rlimit(psutil.RLIMIT_NOFILE)}")  # fmt: skip
        servers.append(server)
    return servers


def run(args: argparse.Namespace, command: list[str]) -> dict[str, Any]:
    """Set up, start the nodes and the clients, run (c), (b) and (a); the figures as a dict."""
    rates = [int(r) for r in args.rates.split(",") if r]
    limit = raise_nofile_limit()
    log(f"RLIMIT_NOFILE {limit}; load average {loadavg()}")
    info = machine_info()
    with tempfile.TemporaryDirectory(prefix="chinwag-fanout-") as tmp:
        database_url = args.database_url or f"sqlite+aiosqlite:///{tmp}/fanout.db"
        fx = asyncio.run(_setup(database_url, args.devices, args.idle))
        log(f"setup done in {fx.seconds:.0f} s")
        with contextlib.ExitStack() as stack:
            servers = _servers(args, stack, database_url, tmp)
            clients = Clients(args.clients, [s.port for s in servers])
            try:
                memory = phase_memory(servers, clients, fx)
                fanout = phase_fanout(clients, fx, args.fanout_reps) if args.fanout_reps else None
                probe = PostgresProbe(database_url) if args.database_url else None
                load = phase_load(
                    servers, clients, fx, rates, args.step_seconds, args.drain_seconds,
                    args.all_steps, probe,
                )  # fmt: skip
            finally:
                clients.close()
        for n in range(args.nodes):
            errors = (Path(tmp) / f"server-{n}.log").read_text()[-2000:]
            if "Traceback" in errors or "ERROR" in errors:
                log(f"node {n + 1} log tail:\n{errors}")
    goal = _goal(args)
    result: dict[str, Any] = {
        "server_code": _code_state(),
        "command": shlex.join([".venv/bin/python", "bench/fanout.py", *command]),
        "machine": info,
        "load_end": loadavg(),
        "database": "SQLite (temporary file)" if not args.database_url else args.database_url,
        "nodes": args.nodes,
        "broker_url": args.broker_url,
        "rate_limit_url": args.rate_limit_url,
        "clients": args.clients,
        "devices": args.devices,
        "idle": args.idle,
        "max_connections": max_connections(args),
        "step_seconds": args.step_seconds,
        "setup_seconds": fx.seconds,
        "memory": memory,
        "fanout": fanout,
        "load": load,
        "target_values": goal.__dict__,
    }
    result["targets"] = targets(result, goal)
    return result


def write(result: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    md, png, raw = (out.with_suffix(s) for s in (".md", ".png", ".json"))
    write_markdown(md, result)
    write_plot(png, result)
    raw.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    for target, figure, met in result["targets"]:
        log(f"target {target}: {figure} -> {'met' if met else 'NOT met'}")
    log(f"wrote {md}, {png}, {raw}")


def main(argv: list[str] | None = None) -> None:
    command = sys.argv[1:] if argv is None else argv
    args = parse_args(command)
    write(run(args, command), args.out)


if __name__ == "__main__":
    main()
