"""Live delivery over WebSockets: 1:1 throughput and latency, big-room fan-out, idle memory.

Run from the repository root::

    .venv/bin/python bench/fanout.py                                # everything (~3 min)
    .venv/bin/python bench/fanout.py --rates 500,1000 --step-seconds 5 --fanout-reps 5
    .venv/bin/python bench/fanout.py --database-url postgresql+asyncpg://postgres@127.0.0.1/x

What it does, in order:

1. **Setup (not timed).** A fresh SQLite database in a temporary directory (or
   ``--database-url``). Through the server's own handlers, before the server starts: one
   app with an HS256 secret; 2 x ``--devices`` users, each with one session (nonce, signed
   identity token, ``create_session``); ``--devices / 2`` distinct 1:1 conversations among
   the first half ("pair" users); one conversation holding all of the second half
   ("group" users, 1,000 by default = ``max_participants``).
2. **Server.** ONE ``chinwag serve --no-dev-app`` subprocess (uvloop, httptools, websockets
   sans-I/O), auth rate limit off, log level warning, RLIMIT_NOFILE raised (inherited and
   set again in a ``preexec_fn``). ``--profile out.html`` runs it under pyinstrument.
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
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _load import CHINWAG, ServerProcess, loadavg, machine_info, percentile
from _ws_load import Device, raise_nofile_limit, worker_main

__all__ = ["main"]

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_RATE = 2000
TARGET_P99_MS = 50.0
TARGET_FANOUT_MS = 250.0
TARGET_KIB_PER_CONN = 30.0


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


async def _setup(database_url: str, devices: int) -> Fixture:
    from chinwag.core.keys import Alg, sign_identity_token
    from chinwag.server.context import open_services
    from chinwag.server.handlers import apps as app_handlers
    from chinwag.server.handlers.auth import Authenticated, create_session, new_nonce
    from chinwag.server.handlers.conversations import create_conversation
    from chinwag.server.settings import Settings

    started = time.monotonic()
    settings = Settings(database_url=database_url, auth_rate_per_second=0)
    async with open_services(settings) as services:
        app, _ = await app_handlers.create_app(services, "fanout bench")
        key = await app_handlers.add_secret(services, app.id)
        callers: list[Authenticated] = []
        tokens: list[str] = []
        for i in range(2 * devices):
            user_id = f"{'p' if i < devices else 'g'}{i}"
            claims = {
                "sub": user_id,
                "nce": new_nonce(services, app.id).value,
                "iat": int(services.now()),
            }
            token = sign_identity_token(
                claims, kid=key.record.kid, alg=Alg.HS256, secret=key.secret
            )
            session = await create_session(services, app.id, token)
            callers.append(Authenticated(session=session.session, user=session.user))
            tokens.append(session.token)
            if (i + 1) % 500 == 0:
                log(f"setup: {i + 1}/{2 * devices} sessions")
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
        group_callers = callers[devices:]
        conv, _ = await create_conversation(
            services,
            group_callers[0],
            participants=[c.user.user_id for c in group_callers],
            distinct=False,
            metadata={"title": "everyone"},
        )
        group = [Device(devices + i, tokens[devices + i], str(conv["id"])) for i in range(devices)]
        log(f"setup: one {len(conv['participants'])}-member conversation")
    return Fixture(pairs, group, str(conv["id"]), time.monotonic() - started)


# --------------------------------------------------------------------------- server


def _raise_limit_in_child() -> None:
    raise_nofile_limit()


@dataclass
class FanoutServer(ServerProcess):
    """``ServerProcess`` with a raised fd limit (and, via ``python_args``, a profiler)."""

    preexec_fn: Callable[[], None] | None = _raise_limit_in_child

    def process(self) -> psutil.Process:
        """The Python process serving (the profiler wrapper execs nothing: it is that one)."""
        return psutil.Process(self.pid)

    def rss(self) -> int:
        return int(self.process().memory_info().rss)

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


# --------------------------------------------------------------------------- clients


class Clients:
    """The client processes, driven synchronously over pipes."""

    def __init__(self, count: int, port: int) -> None:
        ctx = mp.get_context("spawn")
        self.pipes: list[Pipe] = []
        self.procs: list[Any] = []
        for _ in range(count):
            ours, theirs = ctx.Pipe()
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
        return [devices[i::n] for i in range(n)]

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


def _settled_rss(server: FanoutServer, seconds: float = 2.0) -> int:
    """Median of a few RSS samples after letting the server settle."""
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.25)
        samples.append(server.rss())
    return int(statistics.median(samples[-4:]))


def phase_memory(server: FanoutServer, clients: Clients, fx: Fixture) -> dict[str, Any]:
    log("(c) memory: warm-up sockets")
    warm = fx.pairs[:20]
    clients.call("connect", [{"devices": d} for d in clients.split(warm)])
    time.sleep(0.5)
    clients.call("close")
    time.sleep(0.5)
    base = _settled_rss(server)
    rows: list[dict[str, Any]] = [{"sockets": 0, "rss": base, "load": loadavg()}]
    opened = 0
    for name, devices in (("pair", fx.pairs), ("group", fx.group)):
        t0 = time.monotonic()
        cpu0 = sum(server.thread_cpu())
        results = clients.call("connect", [{"devices": d} for d in clients.split(devices)])
        took = time.monotonic() - t0
        connected = sum(r["connected"] for r in results)
        failures = [f for r in results for f in r["failures"]]
        if failures:
            log(f"(c) connect failures: {failures[:3]}")
        opened += connected
        rss = _settled_rss(server)
        rows.append(
            {
                "sockets": opened,
                "rss": rss,
                "per_socket": (rss - base) / opened,
                "connect_seconds": took,
                "connect_per_second": connected / took,
                "server_cpu_ms_per_connect": (sum(server.thread_cpu()) - cpu0) * 1e3 / connected,
                "load": loadavg(),
                "group": name,
            }
        )
        log(
            f"(c) {opened} sockets: RSS {rss / 2**20:.1f} MiB, "
            f"{(rss - base) / opened / 1024:.1f} KiB/socket (connected {connected / took:.0f}/s)"
        )
    return {"rows": rows, "fds": server.process().num_fds()}


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
    server: FanoutServer,
    clients: Clients,
    fx: Fixture,
    step: int,
    rate: float,
    seconds: float,
    drain: float,
) -> dict[str, Any]:
    load_before = loadavg()
    n = len(clients.pipes)
    shares = clients.split(fx.pairs)
    start_at = time.monotonic() + 0.3
    cpu_clients0 = clients.cpu()
    cpu_server0 = server.thread_cpu()
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
    cpu_server1 = server.thread_cpu()
    cpu_clients1 = clients.cpu()
    wall = time.monotonic() - wall0 - 0.3
    collected = clients.call("collect", {"step": step})
    delivered = sorted(x for c in collected for x in c["delivered"])
    acked = sorted(x for c in collected for x in c["acked"])
    last = max(c["last_delivery"] for c in collected)
    busy = max(1e-9, last - start_at) if delivered else wall
    main_cpu = cpu_server1[0] - cpu_server0[0]
    other_cpu = cpu_server1[1] - cpu_server0[1]
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
        "client_cpu": [(b - a) / wall for a, b in zip(cpu_clients0, cpu_clients1, strict=True)],
        "load_before": load_before,
        "load_after": loadavg(),
    }


def phase_load(
    server: FanoutServer,
    clients: Clients,
    fx: Fixture,
    rates: list[int],
    seconds: float,
    drain: float,
    all_steps: bool,
) -> dict[str, Any]:
    log("(a) warm-up: 200 msg/s for 3 s")
    _step(server, clients, fx, 0, 200, 3.0, drain)
    steps: list[dict[str, Any]] = []
    for i, rate in enumerate(rates, start=1):
        log(f"(a) step {i}/{len(rates)}: {rate} msg/s offered for {seconds:.0f} s")
        row = _step(server, clients, fx, i, rate, seconds, drain)
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
            f"{row['server_cpu']:.2f} (main {row['server_main_cpu']:.2f}), clients "
            + "/".join(f"{c:.2f}" for c in row["client_cpu"])
            + f"; load {row['load_after'][0]}"
        )
        overloaded = row["delivered"] < 0.9 * row["sent"] or row["p99_ms"] > 3000.0
        if overloaded and not all_steps:
            log("(a) overloaded; not offering more")
            break
    sustained = [s["offered"] for s in steps if s["sustained"]]
    return {"steps": steps, "max_sustained": max(sustained) if sustained else None}


# --------------------------------------------------------------------------- output


def _fmt_load(load: Any) -> str:
    return " / ".join(f"{x:.2f}" for x in load)


def write_markdown(path: Path, run: dict[str, Any]) -> None:
    mem, fan, load = run["memory"], run["fanout"], run["load"]
    info = run["machine"]
    lines = [
        "# Live delivery over WebSockets (`bench/fanout.py`)",
        "",
        f"Command: `{run['command']}`",
        "",
        f"Machine: {info['cores_logical']} logical cores ({info['cpu']}, "
        f"{info['cpu_mhz']} MHz), {info['memory_gib']} GiB, Python {info['python']}, "
        f"SQLite {info['sqlite']}, {info['platform']}; {info['date']}. "
        f"Database: `{run['database']}`. Load average at start: {_fmt_load(info['loadavg'])}, "
        f"at end: {_fmt_load(run['load_end'])} (other engineers' test suites share the cores).",
        "",
        f"Server code: {run['server_code']}.",
        "",
        f"One `chinwag serve` process; {run['clients']} client process(es) "
        f"(`bench/_ws_load.py`); setup (not timed) took {run['setup_seconds']:.0f} s.",
        "",
        "## (a) 1:1 conversations: send → the other device's `message.created`",
        "",
        f"{run['devices']} devices ({run['devices'] // 2} pairs, one device each) plus "
        f"{run['devices']} idle group devices; open-loop `message.send` over the sockets, "
        f"{run['step_seconds']:.0f} s per step. Latency percentiles are over every "
        'delivered message of the step; "ack" is send → the sender\'s own response.',
        "",
        "| offered msg/s | sent/s | delivered | delivered msg/s | p50 ms | p90 ms | p99 ms "
        "| max ms | ack p50 / p99 ms | server CPU (main + other threads) | server CPU ms/msg "
        "| client CPU | load (1 min) | sustained |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for s in load["steps"]:
        lines.append(
            f"| {s['offered']:,} | {s['send_rate']:,.0f} | {s['delivered']:,}/{s['sent']:,} "
            f"| {s['delivered_rate']:,.0f} | {s['p50_ms']:.1f} | {s['p90_ms']:.1f} "
            f"| {s['p99_ms']:.1f} | {s['max_ms']:.0f} "
            f"| {s['ack_p50_ms']:.1f} / {s['ack_p99_ms']:.1f} "
            f"| {s['server_cpu']:.2f} ({s['server_main_cpu']:.2f} + {s['server_other_cpu']:.2f}) "
            f"| {s['server_cpu_ms_per_msg']:.2f} "
            f"| {' / '.join(f'{c:.2f}' for c in s['client_cpu'])} "
            f"| {s['load_after'][0]:.2f} | {'yes' if s['sustained'] else 'no'} |"
        )
    lines += [
        "",
        f"Highest sustained offered rate: **{load['max_sustained'] or 'none'} msg/s** "
        "(sustained = at least 99 % delivered, send schedule kept, p99 under 1 s). "
        "CPU figures are cores (1.00 = one core busy for the step's wall time, drain "
        "included).",
        "",
        f"## (b) Fan-out to a {fan['members']:,}-member conversation",
        "",
        "One group device sends; time until the last of the conversation's devices (the "
        "sender's own included) has the event. Run 0 is a warm-up and is not counted.",
        "",
        "| run | devices | first ms | median device ms | last device ms | load (1 min) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in fan["runs"]:
        lines.append(
            f"| {r['k']}{' (warm-up)' if r['warmup'] else ''} | {r['devices']:,} "
            f"| {r['first_ms']:.1f} | {r['median_ms']:.1f} | {r['last_ms']:.1f} "
            f"| {r['load'][0]:.2f} |"
        )
    lines += [
        "",
        f"Last device: median **{fan['median_last_ms']:.0f} ms**, max {fan['max_last_ms']:.0f} ms"
        f", min {fan['min_last_ms']:.0f} ms.",
        "",
        "## (c) Server memory per idle authenticated WebSocket",
        "",
        "| sockets open | server RSS MiB | KiB per socket | connects/s | server CPU ms/connect "
        "| load (1 min) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in mem["rows"]:
        per = f"{r['per_socket'] / 1024:.1f}" if "per_socket" in r else "—"
        rate = f"{r['connect_per_second']:.0f}" if "connect_per_second" in r else "—"
        cpu = f"{r['server_cpu_ms_per_connect']:.2f}" if "server_cpu_ms_per_connect" in r else "—"
        lines.append(
            f"| {r['sockets']:,} | {r['rss'] / 2**20:.1f} | {per} | {rate} | {cpu} "
            f"| {r['load'][0]:.2f} |"
        )
    lines += [
        "",
        "Baseline (0 sockets) is measured after 20 sockets were opened and closed, so imports "
        f"and caches are warm. Server file descriptors with every socket open: {mem['fds']:,}.",
        "",
        "## Targets",
        "",
        "| target | result | met |",
        "|---|---|:---:|",
    ]
    for target, result, met in run["targets"]:
        lines.append(f"| {target} | {result} | {'yes' if met else '**no**'} |")
    path.write_text("\n".join(lines) + "\n")


def write_plot(path: Path, run: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(16, 4.8))
    steps = run["load"]["steps"]
    rates = [s["offered"] for s in steps]
    for key, label in (("p50_ms", "p50"), ("p90_ms", "p90"), ("p99_ms", "p99"), ("max_ms", "max")):
        ax1.plot(rates, [max(0.1, s[key]) for s in steps], marker="o", label=label)
    ax1.axhline(TARGET_P99_MS, color="red", linestyle="--", linewidth=1, label="p99 target")
    ax1.axvline(TARGET_RATE, color="grey", linestyle=":", linewidth=1)
    ax1.set_yscale("log")
    ax1.set_xlabel("offered messages/s (aggregate)")
    ax1.set_ylabel("send → other device (ms)")
    ax1.set_title(f"(a) 1:1 latency, {run['devices']} devices")
    twin = ax1.twinx()
    twin.plot(rates, [s["delivered_rate"] for s in steps], color="black", linestyle="--",
              marker="x", label="delivered/s")  # fmt: skip
    twin.set_ylabel("delivered messages/s")
    lines1, labels1 = ax1.get_legend_handles_labels()
    lines2, labels2 = twin.get_legend_handles_labels()
    ax1.legend(lines1 + lines2, labels1 + labels2, fontsize=8, loc="upper left")

    runs = [r for r in run["fanout"]["runs"] if not r["warmup"]]
    ks = [r["k"] for r in runs]
    ax2.plot(ks, [r["last_ms"] for r in runs], marker="o", label="last device")
    ax2.plot(ks, [r["median_ms"] for r in runs], marker="o", label="median device")
    ax2.plot(ks, [r["first_ms"] for r in runs], marker="o", label="first device")
    ax2.axhline(TARGET_FANOUT_MS, color="red", linestyle="--", linewidth=1, label="target")
    ax2.set_ylim(bottom=0)
    ax2.set_xlabel("repetition")
    ax2.set_ylabel("ms after send")
    ax2.set_title(f"(b) fan-out to {run['fanout']['members']:,} devices")
    ax2.legend(fontsize=8)

    rows = [r for r in run["memory"]["rows"] if "per_socket" in r]
    ax3.bar([f"{r['sockets']:,}" for r in rows], [r["per_socket"] / 1024 for r in rows])
    ax3.axhline(TARGET_KIB_PER_CONN, color="red", linestyle="--", linewidth=1, label="target")
    ax3.set_xlabel("idle sockets open")
    ax3.set_ylabel("server RSS increase per socket (KiB)")
    ax3.set_title("(c) memory per idle connection")
    ax3.legend(fontsize=8)
    fig.suptitle(
        f"chinwag live delivery — one server process, {run['machine']['cores_logical']} cores, "
        f"load ~{run['machine']['loadavg'][0]:.1f}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _targets(run: dict[str, Any]) -> list[tuple[str, str, bool]]:
    steps = {s["offered"]: s for s in run["load"]["steps"]}
    at = steps.get(TARGET_RATE)
    if at is None:
        rate_result, rate_met = f"{TARGET_RATE} msg/s not reached (stopped earlier)", False
    else:
        rate_met = bool(at["sustained"]) and at["p99_ms"] < TARGET_P99_MS
        rate_result = f"{at['delivered_rate']:,.0f} msg/s delivered, p99 {at['p99_ms']:.1f} ms" + (
            "" if at["sustained"] else " (not sustained)"
        )
    fan = run["fanout"]
    rows = [r for r in run["memory"]["rows"] if "per_socket" in r]
    worst = max(r["per_socket"] for r in rows) / 1024
    return [
        (f"{TARGET_RATE:,} msg/s, p99 < {TARGET_P99_MS:.0f} ms", rate_result, rate_met),
        (
            f"1,000-member fan-out < {TARGET_FANOUT_MS:.0f} ms (median of the runs)",
            f"median {fan['median_last_ms']:.0f} ms, max {fan['max_last_ms']:.0f} ms",
            fan["median_last_ms"] < TARGET_FANOUT_MS,
        ),
        (
            f"< {TARGET_KIB_PER_CONN:.0f} KiB per idle connection",
            ", ".join(f"{r['per_socket'] / 1024:.1f} KiB at {r['sockets']:,}" for r in rows),
            worst < TARGET_KIB_PER_CONN,
        ),
    ]


# --------------------------------------------------------------------------- main


def _code_state() -> str:
    """The commit the server ran from, and any uncommitted server files (shared tree)."""

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=CHINWAG.parent.parent.parent, text=True,
                             capture_output=True, check=False)  # fmt: skip
        return out.stdout.strip()

    dirty = git("status", "--short", "--", "src").splitlines()
    head = git("rev-parse", "--short", "HEAD")
    return head + (f" + uncommitted: {', '.join(d.split()[-1] for d in dirty)}" if dirty else "")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=1000, help="pair devices = group size")
    parser.add_argument("--rates", default="50,100,200,500,1000,1500,2000,2500")
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--drain-seconds", type=float, default=20.0)
    parser.add_argument("--all-steps", action="store_true", help="keep stepping when overloaded")
    parser.add_argument("--fanout-reps", type=int, default=10)
    parser.add_argument("--clients", type=int, default=1, help="client processes")
    parser.add_argument("--database-url", help="default: SQLite in a temporary directory")
    parser.add_argument("--profile", type=Path, help="run the server under pyinstrument")
    parser.add_argument("--out", type=Path, default=RESULTS / "fanout", help="results stem")
    args = parser.parse_args(argv)
    if args.devices % 2 or not 2 <= args.devices <= 1000:
        parser.error("--devices must be even, 2..1000 (the group conversation's maximum)")
    rates = [int(r) for r in args.rates.split(",") if r]

    limit = raise_nofile_limit()
    log(f"RLIMIT_NOFILE {limit}; load average {loadavg()}")
    info = machine_info()
    with tempfile.TemporaryDirectory(prefix="chinwag-fanout-") as tmp:
        database_url = args.database_url or f"sqlite+aiosqlite:///{tmp}/fanout.db"
        fx = asyncio.run(_setup(database_url, args.devices))
        log(f"setup done in {fx.seconds:.0f} s")
        python_args: tuple[str, ...] = ()
        if args.profile:
            python_args = ("-m", "pyinstrument", "-o", str(args.profile))
            if args.profile.suffix == ".txt":
                python_args += ("-r", "text")
        server = FanoutServer(
            database_url=database_url,
            env={"CHINWAG_AUTH_RATE_PER_SECOND": "0"},
            log_path=Path(tmp) / "server.log",
            python_args=python_args,
            start_timeout=60,
        )
        with server:
            log(f"server pid {server.pid} on port {server.port}; "
                f"its RLIMIT_NOFILE {server.process().rlimit(psutil.RLIMIT_NOFILE)}")  # fmt: skip
            clients = Clients(args.clients, server.port)
            try:
                memory = phase_memory(server, clients, fx)
                fanout = phase_fanout(clients, fx, args.fanout_reps)
                load = phase_load(
                    server, clients, fx, rates, args.step_seconds, args.drain_seconds,
                    args.all_steps,
                )  # fmt: skip
            finally:
                clients.close()
            errors = (Path(tmp) / "server.log").read_text()[-2000:]
        if "Traceback" in errors or "ERROR" in errors:
            log(f"server log tail:\n{errors}")
    run: dict[str, Any] = {
        "server_code": _code_state(),
        "command": shlex.join([".venv/bin/python", "bench/fanout.py", *(argv or sys.argv[1:])]),
        "machine": info,
        "load_end": loadavg(),
        "database": "SQLite (temporary file)" if not args.database_url else args.database_url,
        "clients": args.clients,
        "devices": args.devices,
        "step_seconds": args.step_seconds,
        "setup_seconds": fx.seconds,
        "memory": memory,
        "fanout": fanout,
        "load": load,
    }
    run["targets"] = _targets(run)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    md, png, raw = (args.out.with_suffix(s) for s in (".md", ".png", ".json"))
    write_markdown(md, run)
    write_plot(png, run)
    raw.write_bytes(orjson.dumps(run, option=orjson.OPT_INDENT_2))
    for target, result, met in run["targets"]:
        log(f"target {target}: {result} -> {'met' if met else 'NOT met'}")
    log(f"wrote {md}, {png}, {raw}")


if __name__ == "__main__":
    main()
