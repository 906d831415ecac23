"""SQLite durability: group-committed writes with synchronous=FULL vs NORMAL, in process.

Why in process: the cost of FULL is one fsync per transaction, an I/O wait rather than
CPU, and on a shared machine the HTTP benchmarks (``auth.py``, ``fanout.py``) are
dominated by CPU contention. Here ``--writers`` tasks each write one small row per
``Database.write`` (group commit, as message sends and sign-ins do) for ``--seconds``;
reported: writes/s, transactions/s (fsyncs with FULL), per-write latency percentiles, the
``-wal`` file's high-water mark and the disk growth per write.

    .venv/bin/python bench/durability.py --writers 32 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import threading
import time

from sqlalchemy import bindparam, insert

from chinwag.server.storage.database import Database, Transaction
from chinwag.server.storage.prepared import Prepared, raw_sqlite
from chinwag.server.storage.schema import server_secrets

_INSERT = Prepared(insert(server_secrets).values(name=bindparam("name"), value=bindparam("value")))


def _size(path: str) -> int:
    return sum(os.stat(p).st_size for p in (path, f"{path}-wal") if os.path.exists(p))


async def measure(mode: str, writers: int, seconds: float, row_bytes: int) -> str:
    with tempfile.TemporaryDirectory(prefix="chinwag-durability-") as tmp:
        path = f"{tmp}/d.db"
        db = Database(f"sqlite+aiosqlite:///{path}", synchronous=mode)  # type: ignore[arg-type]
        await db.migrate()
        latencies: list[float] = []
        commits = [0]
        value = os.urandom(row_bytes)
        high, stop = [0], threading.Event()

        def sample() -> None:
            while not stop.wait(0.005):
                if os.path.exists(f"{path}-wal"):
                    high[0] = max(high[0], os.stat(f"{path}-wal").st_size)

        async def job(tx: Transaction, key: str) -> None:
            await _INSERT.rowcount(tx.conn, {"name": key, "value": value})

        async def writer(n: int, until: float) -> None:
            i = 0
            while time.monotonic() < until:
                started = time.perf_counter()
                await db.write(lambda tx, k=f"{n}-{i}": job(tx, k))
                latencies.append(time.perf_counter() - started)
                i += 1

        async with db.read() as conn:  # count transactions: each commit runs "COMMIT"
            raw = raw_sqlite(conn)
            assert raw is not None
            raw.set_trace_callback(
                lambda sql: commits.__setitem__(0, commits[0] + (sql == "COMMIT"))
            )
        before = _size(path)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        cpu, wall = time.process_time(), time.monotonic()
        await asyncio.gather(*(writer(n, wall + seconds) for n in range(writers)))
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        stop.set()
        sampler.join()
        grown = _size(path) - before
        await db.close()
    latencies.sort()
    n = len(latencies)
    return (
        f"| {mode} | {n / wall:,.0f} | {commits[0] / wall:,.0f} | {n / max(commits[0], 1):.1f} "
        f"| {latencies[n // 2] * 1e3:.1f} | {latencies[int(n * 0.99)] * 1e3:.1f} "
        f"| {cpu / n * 1e6:.0f} | {high[0] / 2**20:.1f} | {grown / n:.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--writers", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--row-bytes", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2, help="NORMAL, FULL alternated")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}; {args.writers} writers, {args.row_bytes} B rows")
    print("| mode | writes/s | commits/s | writes/commit | p50 ms | p99 ms | CPU µs/write "
          "| WAL high MiB | disk B/write |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for _ in range(args.rounds):
        for mode in ("NORMAL", "FULL"):
            print(
                asyncio.run(measure(mode, args.writers, args.seconds, args.row_bytes)), flush=True
            )
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
