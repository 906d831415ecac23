"""Big conversations: what one message costs as a conversation grows (issue #13).

Run from the repository root::

    .venv/bin/python bench/bigconv.py                                 # N = 2, 20, 200, 1000
    .venv/bin/python bench/bigconv.py --members 1000,2 --step-seconds 3 --out bench/results/x
    .venv/bin/python bench/bigconv.py --database-url postgresql+asyncpg://postgres@127.0.0.1/x
                                      # (creates x_n2, x_n20, … afresh)

For each conversation size N, on a fresh database:

1. **Setup (not timed).** One app, N users (signed identity tokens through the server's own
   handlers), one conversation holding all of them.
2. **Server.** ONE ``chinwag serve`` subprocess (``bench/_load.py``); min(N, 200) of the
   members connect by WebSocket from one client process (``bench/_ws_load.py``).
3. **Load.** Steps of offered rate (``--rates``), ``--step-seconds`` each, open loop: by time t,
   ``rate * t`` messages have been POSTed over REST (``POST /v1/conversations/{id}/messages``,
   from 8 members in turn, up to 64 keep-alive connections), whatever the answers. Latency is
   from the scheduled send until each connected device has the ``message.created`` event.
   A step is *sustained* when every device got every message and p99 < 100 ms; stepping stops
   after two steps in a row that are not (one alone is often a neighbour's burst on a shared
   machine).
4. **Figures.** Server CPU per message (psutil, over the step); stored bytes per message (the
   database's size before and after all steps: SQLite pages in use, PostgreSQL
   ``pg_database_size``); the SQLite WAL file's high-water mark (sampled every 20 ms).

Results: ``bench/results/bigconv.{md,json,png}``. Everything is on 127.0.0.1, bounded in
time, and stops by itself. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import HttpConnection, loadavg, machine_info, percentile
from _ws_load import Device, raise_nofile_limit
from fanout import Clients, FanoutServer, _code_state, log

RESULTS = Path(__file__).resolve().parent / "results"
CONNECTED_MAX = 200
SENDERS = 8
P99_LIMIT_MS = 100.0


async def _setup(database_url: str, members: int) -> tuple[list[Device], str]:
    from chinwag.core.keys import Alg, sign_identity_token
    from chinwag.server.context import open_services
    from chinwag.server.handlers import apps as app_handlers
    from chinwag.server.handlers.auth import Authenticated, create_session, new_nonce
    from chinwag.server.handlers.conversation_create import create_conversation
    from chinwag.server.settings import Settings

    settings = Settings(database_url=database_url, auth_rate_per_second=0)
    async with open_services(settings) as services:
        app, _ = await app_handlers.create_app(services, "bigconv bench")
        key = await app_handlers.add_secret(services, app.id)
        devices: list[Device] = []
        callers: list[Authenticated] = []
        for i in range(members):
            claims = {"sub": f"m{i}", "nce": new_nonce(services, app.id).value,
                      "iat": int(services.now())}  # fmt: skip
            token = sign_identity_token(claims, kid=key.record.kid, alg=Alg.HS256,
                                        secret=key.secret)  # fmt: skip
            session = await create_session(services, app.id, token)
            callers.append(Authenticated(session=session.session, user=session.user))
            devices.append(Device(i, session.token))
        conv, _ = await create_conversation(
            services, callers[0], participants=[c.user.user_id for c in callers[1:]],
            distinct=False, metadata={"title": "big"},
        )  # fmt: skip
    for device in devices:
        device.conversation_id = str(conv["id"])
    return devices, str(conv["id"])


async def _fresh_postgres(base_url: str, members: int) -> str:
    """A new, empty PostgreSQL database per size, named after ``base_url``'s and N."""
    import asyncpg

    root, name = base_url.rsplit("/", 1)
    fresh = f"{name}_n{members}"
    conn = await asyncpg.connect(root.replace("postgresql+asyncpg", "postgresql") + "/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{fresh}"')
        await conn.execute(f'CREATE DATABASE "{fresh}"')
    finally:
        await conn.close()
    return f"{root}/{fresh}"


class StoreProbe:
    """Stored bytes, and the SQLite WAL's high-water mark sampled on a thread."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.path = database_url.split("///", 1)[1] if database_url.startswith("sqlite") else None
        self.wal_max = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def stored_bytes(self) -> int:
        if self.path is None:
            return asyncio.run(self._pg_size())
        with sqlite3.connect(self.path) as db:
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            free = db.execute("PRAGMA freelist_count").fetchone()[0]
            size = db.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)

    async def _pg_size(self) -> int:
        import asyncpg

        dsn = self.url.replace("postgresql+asyncpg", "postgresql")
        conn = await asyncpg.connect(dsn)
        try:
            return int(await conn.fetchval("SELECT pg_database_size(current_database())"))
        finally:
            await conn.close()

    def _sample(self) -> None:
        wal = Path(f"{self.path}-wal")
        while not self._stop.wait(0.02):
            if wal.exists():
                self.wal_max = max(self.wal_max, wal.stat().st_size)

    def __enter__(self) -> StoreProbe:
        if self.path is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


async def _rest_load(port: int, senders: list[Device], conv: str, step: int, rate: float,
                     seconds: float) -> dict[str, Any]:  # fmt: skip
    """Open loop over REST; returns answer latencies and counts."""
    pool: asyncio.Queue[HttpConnection] = asyncio.Queue()
    for _ in range(64):
        conn = HttpConnection("127.0.0.1", port)
        await conn.connect()
        pool.put_nowait(conn)
    acked: list[float] = []
    errors: list[int] = []

    async def send(k: int, due: float) -> None:
        device = senders[k % len(senders)]
        body = orjson.dumps({"id": str(uuid.uuid4()), "parts": [
            {"mime_type": "text/plain", "body": f"L{step}|{due:.6f}|-1"}]})  # fmt: skip
        conn = await pool.get()
        try:
            status, _ = await conn.request(
                "POST", f"/v1/conversations/{conv}/messages", body,
                headers=b"Authorization: Bearer %s\r\n" % device.token.encode(),
            )  # fmt: skip
        finally:
            pool.put_nowait(conn)
        (acked.append(time.monotonic() - due) if status == 201 else errors.append(status))

    tasks: list[asyncio.Task[None]] = []
    begun = time.monotonic()
    while (elapsed := time.monotonic() - begun) < seconds:
        for k in range(len(tasks), int(elapsed * rate) + 1):
            tasks.append(asyncio.create_task(send(k, begun + k / rate)))
        await asyncio.sleep(0.002)
    await asyncio.wait(tasks, timeout=30)
    while not pool.empty():
        await pool.get_nowait().close()
    return {"sent": len(tasks), "acked": sorted(acked), "errors": errors[:5],
            "failed": len(errors)}  # fmt: skip


def _step(server: FanoutServer, clients: Clients, devices: list[Device], conv: str,
          step: int, rate: float, seconds: float, connected: int) -> dict[str, Any]:  # fmt: skip
    cpu0 = server.cpu_seconds()
    sent = asyncio.run(_rest_load(server.port, devices[:SENDERS], conv, step, rate, seconds))
    expected = sent["sent"] * connected
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if sum(c["delivered"] for c in clients.call("counts", {"step": step})) >= expected:
            break
        time.sleep(0.1)
    cpu = server.cpu_seconds() - cpu0
    got = clients.call("collect", {"step": step})
    lat = sorted(x for g in got for x in g["delivered"])
    row = {
        "rate": rate, "sent": sent["sent"], "answered": len(sent["acked"]),
        "failed": sent["failed"], "deliveries": len(lat), "expected": expected,
        "p50_ms": percentile(lat, 0.5) * 1e3 if lat else None,
        "p99_ms": percentile(lat, 0.99) * 1e3 if lat else None,
        "answer_p99_ms": percentile(sent["acked"], 0.99) * 1e3 if sent["acked"] else None,
        "cpu_ms_per_message": cpu * 1e3 / max(1, sent["sent"]), "load": loadavg(),
    }  # fmt: skip
    row["sustained"] = bool(
        lat and len(lat) >= expected and not sent["failed"] and row["p99_ms"] < P99_LIMIT_MS
    )
    log(
        f"N step {rate:g}/s: {len(lat)}/{expected} deliveries, p99 {row['p99_ms'] or 0:.1f} ms, "
        f"CPU {row['cpu_ms_per_message']:.2f} ms/msg, {'ok' if row['sustained'] else 'NOT ok'}"
    )
    return row


def run_size(members: int, rates: list[float], seconds: float, database_url: str | None,
             tmp: str, profile: Path | None = None) -> dict[str, Any]:  # fmt: skip
    url = f"sqlite+aiosqlite:///{tmp}/bigconv-{members}.db"
    if database_url:
        url = asyncio.run(_fresh_postgres(database_url, members))
    t0 = time.monotonic()
    devices, conv = asyncio.run(_setup(url, members))
    log(f"N={members}: setup {time.monotonic() - t0:.0f} s")
    connected = min(members, CONNECTED_MAX)
    env = {"CHINWAG_AUTH_RATE_PER_SECOND": "0", "CHINWAG_RATE_LIMITS": "false"}
    server = FanoutServer(database_url=url, env=env, log_path=Path(tmp) / f"server-{members}.log",
                          start_timeout=60)  # fmt: skip
    if profile is not None:
        server.python_args = ("-m", "pyinstrument", "-r", "text", "-o", f"{profile}-{members}.txt")
    steps: list[dict[str, Any]] = []
    with server, StoreProbe(url) as probe:
        clients = Clients(1, [server.port])
        try:
            clients.call("connect", [{"devices": devices[:connected]}])
            before = probe.stored_bytes()
            for i, rate in enumerate(rates):
                steps.append(_step(server, clients, devices, conv, i, rate, seconds, connected))
                if len(steps) >= 2 and not any(s["sustained"] for s in steps[-2:]):
                    break  # two failed steps in a row: one alone may be a neighbour's burst
            after = probe.stored_bytes()
        finally:
            clients.close()
    messages = sum(s["answered"] for s in steps)
    ok = [s["rate"] for s in steps if s["sustained"]]
    return {
        "members": members, "connected": connected, "steps": steps,
        "sustained_rate": max(ok) if ok else 0,
        "cpu_ms_per_message": min(s["cpu_ms_per_message"] for s in steps if s["sustained"])
        if ok else steps[0]["cpu_ms_per_message"],
        "stored_bytes_per_message": (after - before) / max(1, messages),
        "wal_max_bytes": probe.wal_max if probe.path else None,
    }  # fmt: skip


def write_markdown(path: Path, run: dict[str, Any]) -> None:
    lines = [
        "# Big conversations (bench/bigconv.py)", "",
        f"`{run['command']}` — {run['database']}, code {run['server_code']}, "
        f"{run['machine']['cores_logical']} cores, load {run['machine']['loadavg']} → "
        f"{run['load_end']}, {run['step_seconds']:g} s per step.", "",
        "| members | connected | sustained msg/s at p99 < 100 ms | server CPU per message "
        "(lowest sustained step) | stored bytes per message | WAL high-water |",
        "|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for size in run["sizes"]:
        wal = f"{size['wal_max_bytes'] / 2**20:.1f} MiB" if size["wal_max_bytes"] else "—"
        lines.append(f"| {size['members']} | {size['connected']} | {size['sustained_rate']:g} | "
                     f"{size['cpu_ms_per_message']:.2f} ms | "
                     f"{size['stored_bytes_per_message']:.0f} | {wal} |")  # fmt: skip
    lines += ["", "Steps:", "", "| members | offered/s | sent | deliveries | p50 ms | p99 ms "
              "| answer p99 ms | CPU ms/msg | ok |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for size in run["sizes"]:
        for s in size["steps"]:
            lines.append(
                f"| {size['members']} | {s['rate']:g} | {s['sent']} | {s['deliveries']}/"
                f"{s['expected']} | {s['p50_ms'] or 0:.1f} | {s['p99_ms'] or 0:.1f} | "
                f"{s['answer_p99_ms'] or 0:.1f} | {s['cpu_ms_per_message']:.2f} | "
                f"{'yes' if s['sustained'] else 'no'} |")  # fmt: skip
    path.write_text("\n".join(lines) + "\n")


def write_plot(path: Path, run: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for size in run["sizes"]:
        rates = [s["rate"] for s in size["steps"]]
        ax1.plot(rates, [s["p99_ms"] or 0 for s in size["steps"]], marker="o",
                 label=f"N={size['members']}")  # fmt: skip
        ax2.plot(rates, [s["cpu_ms_per_message"] for s in size["steps"]], marker="o",
                 label=f"N={size['members']}")  # fmt: skip
    ax1.axhline(P99_LIMIT_MS, color="grey", linestyle="--")
    for ax, label in ((ax1, "delivery p99 (ms)"), (ax2, "server CPU per message (ms)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("offered msg/s")
        ax.set_ylabel(label)
        ax.legend()
    fig.suptitle(f"One conversation of N members, min(N, 200) connected — {run['database']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", default="2,20,200,1000")
    parser.add_argument("--rates", default="5,10,20,50,100,200,300,400,600,800")
    parser.add_argument("--step-seconds", type=float, default=5.0)
    parser.add_argument("--database-url", help="default: SQLite in a temporary directory")
    parser.add_argument("--profile", type=Path, help="pyinstrument text report stem, per N")
    parser.add_argument("--out", type=Path, default=RESULTS / "bigconv", help="results stem")
    args = parser.parse_args(argv)
    raise_nofile_limit()
    info = machine_info()
    sizes = []
    for members in (int(m) for m in args.members.split(",")):
        with tempfile.TemporaryDirectory(prefix="chinwag-bigconv-") as tmp:
            rates = [float(r) for r in args.rates.split(",")]
            sizes.append(run_size(members, rates, args.step_seconds, args.database_url, tmp,
                                  args.profile))  # fmt: skip
    run = {
        "server_code": _code_state(), "machine": info, "load_end": loadavg(),
        "command": shlex.join([".venv/bin/python", "bench/bigconv.py", *(argv or sys.argv[1:])]),
        "database": "PostgreSQL" if args.database_url else "SQLite (temporary file)",
        "step_seconds": args.step_seconds, "sizes": sizes,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_markdown(args.out.with_suffix(".md"), run)
    write_plot(args.out.with_suffix(".png"), run)
    args.out.with_suffix(".json").write_bytes(orjson.dumps(run, option=orjson.OPT_INDENT_2))
    log(f"wrote {args.out}.{{md,png,json}}")


if __name__ == "__main__":
    main()
