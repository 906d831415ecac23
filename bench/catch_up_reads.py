"""What a socket's read after a doorbell costs, alone and batched, on PostgreSQL, in-process.

Run from the repository root against an empty database::

    createdb -h 127.0.0.1 -U postgres chinwag_reads
    .venv/bin/python bench/catch_up_reads.py \\
        postgresql+asyncpg://postgres@127.0.0.1/chinwag_reads

It signs in ``2 x max(--readers)`` users, opens a 1:1 conversation per pair and sends one
message in each (so every stream holds a few events). Then, for each number of readers
N in ``--readers``, it runs rounds in which N sockets' reads are asked for at once, as a
doorbell naming N users sets them off (``storage/read_batching.py``), ``--pages`` pages
in all, so that CPU clocks of 10 ms resolve a page's share:

- ``alone``: each read as before batching, ``Database.quick_read`` of one page;
- ``batched``: through ``Services.page_reads``, which coalesces them.

Printed and written to ``results/catch_up_reads.md`` (+ ``.png``, ``.json``): per page
read, wall time of a round over N, this process's CPU, and the CPU of every ``postgres``
process on the machine (an upper bound: other users of that server count too).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any

from chinwag.server.context import open_services
from chinwag.server.handlers.messages import send_message
from chinwag.server.services import Services
from chinwag.server.settings import Settings
from chinwag.server.storage import events as event_store

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _load import machine_info, postgres_cpu
from pg_sends import PARTS, pairs

RESULTS = Path(__file__).resolve().parent / "results"


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _round(services: Services, users: list[int], *, batched: bool) -> None:
    if batched:
        reads = [services.page_reads.page(pk, after=0, limit=500) for pk in users]
    else:
        reads = [
            services.db.quick_read(
                partial(event_store.read_stream_page, user_pk=pk, after=0, limit=500)
            )
            for pk in users
        ]
    pages = await asyncio.gather(*reads)
    assert all(page.events for page in pages)


async def measure(
    services: Services, users: list[int], pages: int, batched: bool
) -> dict[str, float]:
    rounds = -(-pages // len(users))
    for _ in range(10):  # warm: statements prepared, pool filled
        await _round(services, users, batched=batched)
    cpu, pg, started = own_cpu(), postgres_cpu(), time.perf_counter()
    for _ in range(rounds):
        await _round(services, users, batched=batched)
    pages = rounds * len(users)
    return {
        "wall_us": (time.perf_counter() - started) / pages * 1e6,
        "chinwag_cpu_us": (own_cpu() - cpu) / pages * 1e6,
        "postgres_cpu_us": (postgres_cpu() - pg) / pages * 1e6,
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    readers = [int(n) for n in args.readers.split(",")]
    settings = Settings(database_url=args.database_url, auth_rate_per_second=0, rate_limits=False)
    rows: list[dict[str, Any]] = []
    async with open_services(settings) as services:
        callers, conversations = await pairs(services, max(readers))
        for k, conversation in enumerate(conversations):
            await send_message(services, callers[2 * k], conversation, str(uuid.uuid4()), PARTS)
        receivers = [callers[2 * k + 1].user.pk for k in range(len(conversations))]
        for n in readers:
            for batched in (False, True):
                figures = await measure(services, receivers[:n], args.pages, batched)
                row = {"readers": n, "way": "batched" if batched else "alone", **figures}
                rows.append(row)
                print(
                    f"{n:4d} readers, {row['way']:7s}: per page {figures['wall_us']:6.0f} µs "
                    f"wall, {figures['chinwag_cpu_us']:5.0f} µs chinwag CPU, "
                    f"{figures['postgres_cpu_us']:5.0f} µs postgres CPU",
                    flush=True,
                )
    return {"machine": machine_info(), "pages": args.pages, "rows": rows}


def report(result: dict[str, Any], stem: Path) -> None:
    lines = [
        "# Catch-up reads: alone and batched (PostgreSQL, in-process)",
        "",
        f"Machine: speed probe {result['machine']['speed_probe_ms']} ms, "
        f"{result['machine']['date']}; {result['pages']} pages read per row.",
        "",
        "| readers at once | way | wall per page (µs) | chinwag CPU per page (µs) "
        "| postgres CPU per page (µs) |",
        "|---:|---|---:|---:|---:|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['readers']} | {row['way']} | {row['wall_us']:.0f} | "
            f"{row['chinwag_cpu_us']:.0f} | {row['postgres_cpu_us']:.0f} |"
        )
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for way, style in (("alone", "o--"), ("batched", "s-")):
        picked = [row for row in result["rows"] if row["way"] == way]
        xs = [row["readers"] for row in picked]
        axes[0].plot(xs, [row["chinwag_cpu_us"] for row in picked], style, label=way)
        axes[1].plot(xs, [row["postgres_cpu_us"] for row in picked], style, label=way)
    for axis, title in zip(axes, ("chinwag CPU per page", "postgres CPU per page"), strict=True):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("sockets reading at once")
        axis.set_ylabel("µs")
        axis.set_title(title)
        axis.legend()
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"), dpi=100)
    print(
        f"wrote {stem.with_suffix('.md')}, {stem.with_suffix('.png')}, {stem.with_suffix('.json')}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("database_url")
    parser.add_argument("--readers", default="1,2,8,32,128")
    parser.add_argument("--pages", type=int, default=3000, help="pages read per row")
    parser.add_argument("--out", default=str(RESULTS / "catch_up_reads"))
    arguments = parser.parse_args()
    report(asyncio.run(main(arguments)), Path(arguments.out))
