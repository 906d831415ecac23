"""Message throughput with 5 webhooks and a push gateway registered, against without.

Run from the repository root::

    .venv/bin/python bench/webhooks.py                       # ~2 min
    .venv/bin/python bench/webhooks.py --reps 5 --seconds 10 --connections 32

What it does:

1. **Setup (not timed).** Two fresh SQLite databases in a temporary directory, filled
   through the server's own handlers: one app (HS256), ``--pairs`` x 2 users with one
   session each, one 1:1 conversation per pair. The *hooks* database also gets 5 webhook
   endpoints subscribed to every event type and a push gateway, all pointing at a receiver
   process on loopback that answers 200 at once, and a push token for every session (no
   device has a socket, so every message owes its recipient a push).
2. **Runs.** For each of ``--reps`` rounds, in alternating order (base, hooks, hooks,
   base, …: drift on a shared machine falls on both alike): one ``chinwag serve``
   subprocess on that database; ``--connections`` keep-alive HTTP/1.1 connections each
   send 1:1 messages over REST back to back (closed loop) for ``--seconds`` after a 2 s
   warm-up; the completed sends per second and the server's CPU per message are recorded.
   With hooks, the delivery workers run in the same server process as the sends.
3. **Afterwards** the hooks database is read: deliveries delivered, pending and failed,
   and push notifications still queued, so the table shows the workers kept up.

Results: ``bench/results/webhooks.md``, ``webhooks.json``, ``webhooks.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _load import HttpConnection, ServerProcess, machine_info

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_RATIO = 0.90
MODES = ("base", "enqueue", "hooks")
"""base: no webhooks; enqueue: 5 webhooks + push gateway registered, delivery workers off
(what the outbox costs the send path); hooks: the same with the workers on, in the server
process that also serves the sends."""


def log(message: str) -> None:
    sys.stderr.write(f"[webhooks {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


@dataclass
class Pair:
    token: str
    conversation_id: str


# --------------------------------------------------------------------------- receiver


def _receiver_main(port: int, pipe: Pipe) -> None:
    """Answers every POST with 200 and counts them; reports the count when asked."""
    count = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                at = head.lower().find(b"content-length:")
                length = int(head[at + 15 : head.index(b"\r\n", at)]) if at >= 0 else 0
                await reader.readexactly(length)
                count += 1
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", port)
        pipe.send("ready")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, pipe.recv)
        pipe.send(count)
        server.close()

    asyncio.run(main())


# --------------------------------------------------------------------------- setup


async def _setup(database_url: str, pairs: int, hook_url: str | None) -> list[Pair]:
    from chinwag.core.keys import Alg, sign_identity_token
    from chinwag.core.webhook_events import WebhookEventType
    from chinwag.server.context import open_services
    from chinwag.server.handlers import apps as app_handlers
    from chinwag.server.handlers import push as push_handlers
    from chinwag.server.handlers import webhooks as webhook_handlers
    from chinwag.server.handlers.auth import Authenticated, create_session, new_nonce
    from chinwag.server.handlers.conversation_create import create_conversation
    from chinwag.server.settings import Settings
    from chinwag.server.storage import push as push_store

    settings = Settings(
        database_url=database_url, auth_rate_per_second=0, dev_allow_http_loopback=True
    )
    async with open_services(settings) as services:
        app, _ = await app_handlers.create_app(services, "webhooks bench")
        key = await app_handlers.add_secret(services, app.id)
        callers: list[Authenticated] = []
        tokens: list[str] = []
        for i in range(2 * pairs):
            claims = {"sub": f"u{i}", "nce": new_nonce(services, app.id).value,
                      "iat": int(services.now())}  # fmt: skip
            token = sign_identity_token(
                claims, kid=key.record.kid, alg=Alg.HS256, secret=key.secret
            )
            session = await create_session(services, app.id, token)
            callers.append(Authenticated(session=session.session, user=session.user))
            tokens.append(session.token)
        found: list[Pair] = []
        for i in range(0, 2 * pairs, 2):
            conv, _ = await create_conversation(
                services, callers[i], participants=[callers[i + 1].user.user_id],
                distinct=True, metadata=None,
            )  # fmt: skip
            found += [Pair(tokens[i], str(conv["id"])), Pair(tokens[i + 1], str(conv["id"]))]
        if hook_url is not None:
            every = [t.value for t in WebhookEventType]
            for n in range(5):
                fields = {"url": f"{hook_url}/{n}", "event_types": every, "description": "",
                          "enabled": True}  # fmt: skip
                await webhook_handlers.create_endpoint(services, None, app.id, fields, "bench")
            await push_handlers.put_gateway(
                services, None, app.id,
                {"url": f"{hook_url}/push", "include_body": True, "enabled": True}, "bench",
            )  # fmt: skip
            async with services.db.transaction() as tx:
                for n, caller in enumerate(callers):
                    await push_store.register_token(
                        tx.conn, session_id=caller.session.id, app_id=app.id,
                        user_pk=caller.user.pk, kind="fcm", token=f"device-{n}", now=services.now(),
                    )  # fmt: skip
    return found


# --------------------------------------------------------------------------- load


async def _sender(port: int, pair: Pair, stop_at: float, counts: list[int]) -> None:
    auth = f"Authorization: Bearer {pair.token}\r\n".encode()
    path = f"/v1/conversations/{pair.conversation_id}/messages"
    async with HttpConnection("127.0.0.1", port) as http:
        while time.monotonic() < stop_at:
            body = {"id": str(uuid.uuid4()), "parts": [{"mime_type": "text/plain", "body": "hi"}]}
            status, payload = await http.request("POST", path, orjson.dumps(body), headers=auth)
            if status != 201:
                raise RuntimeError(f"send answered {status}: {payload[:200]!r}")
            counts[0] += 1


async def _load(port: int, pairs: list[Pair], connections: int, seconds: float) -> int:
    chosen = pairs[:connections]
    warm = [0]
    await asyncio.gather(*(_sender(port, p, time.monotonic() + 2, warm) for p in chosen))
    counts = [0]
    stop_at = time.monotonic() + seconds
    await asyncio.gather(*(_sender(port, p, stop_at, counts) for p in chosen))
    return counts[0]


def _run(
    database: Path, pairs: list[Pair], args: argparse.Namespace, *, workers: bool
) -> dict[str, float]:
    env = {"CHINWAG_RATE_LIMITS": "false", "CHINWAG_DEV_ALLOW_HTTP_LOOPBACK": "true",
           "CHINWAG_PUSH_DELAY": "0", "CHINWAG_AUTH_RATE_PER_SECOND": "0",
           "CHINWAG_WEBHOOK_WORKERS": "true" if workers else "false"}  # fmt: skip
    with ServerProcess(f"sqlite+aiosqlite:///{database}", env=env) as server:
        cpu_before = server.cpu_seconds()
        sent = asyncio.run(_load(server.port, pairs, args.connections, args.seconds))
        cpu = server.cpu_seconds() - cpu_before
        time.sleep(args.drain)  # let the workers finish what this run queued
    return {"rate": sent / args.seconds, "sent": sent, "cpu_ms_per_msg": 1000 * cpu / max(sent, 1)}


def _outbox(database: Path) -> dict[str, int]:
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT status, count(*) FROM webhook_deliveries GROUP BY status")
        found = {f"deliveries_{status}": int(n) for status, n in rows}
        found["push_queued"] = int(db.execute("SELECT count(*) FROM push_jobs").fetchone()[0])
    return found


# --------------------------------------------------------------------------- report


def _write(results: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "webhooks.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    base, hooks = results["base_median"], results["hooks_median"]
    lines = [
        "# Message throughput with 5 webhooks and a push gateway",
        "",
        f"Command: `{results['command']}`",
        "",
        "msg/s (server CPU ms per message). *without*: no webhooks; *enqueued only*: 5 "
        "webhooks and a push gateway registered, every recipient has a push token, delivery "
        "workers off (the outbox's cost to the send path); *delivered in-process*: the same "
        "with the workers on in the server process that serves the sends.",
        "",
        "| round | without | enqueued only | delivered in-process |",
        "|---|---|---|---|",
    ]
    rows = zip(results["base"], results["enqueue"], results["hooks"], strict=True)
    for n, cells in enumerate(rows, 1):
        lines.append(
            f"| {n} | " + " | ".join(f"{c['rate']:.0f} ({c['cpu_ms_per_msg']:.2f})" for c in cells)
            + " |"
        )  # fmt: skip
    enqueue = results["enqueue_median"]
    lines += [
        f"| **median** | **{base:.0f}** | **{enqueue:.0f}** | **{hooks:.0f}** |",
        "",
        f"Enqueued only: **{100 * enqueue / base:.1f} %** of the throughput without; "
        f"delivered in-process: **{100 * hooks / base:.1f} %** "
        f"(target >= {100 * TARGET_RATIO:.0f} %).",
        "",
        f"Receiver got {results['received']} posts; outbox afterwards: {results['outbox']}.",
        "",
        f"Machine: `{results['machine']}`",
    ]
    (RESULTS / "webhooks.md").write_text("\n".join(lines) + "\n")
    _plot(results)


def _plot(results: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = range(1, len(results["base"]) + 1)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(rounds, [r["rate"] for r in results["base"]], "o-", label="no webhooks")
    ax.plot(
        rounds,
        [r["rate"] for r in results["enqueue"]],
        "^-",
        label="5 webhooks + push, enqueued only",
    )
    ax.plot(
        rounds,
        [r["rate"] for r in results["hooks"]],
        "s-",
        label="5 webhooks + push, delivered in-process",
    )
    ax.axhline(TARGET_RATIO * results["base_median"], color="grey", linestyle=":",
               label="90 % of the median without")  # fmt: skip
    ax.set_xlabel("round")
    ax.set_ylabel("1:1 messages per second (REST, closed loop)")
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "webhooks.png", dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--drain", type=float, default=3.0)
    args = parser.parse_args()
    from _load import free_port

    port = free_port()
    ours, theirs = mp.Pipe()
    receiver = mp.get_context("spawn").Process(target=_receiver_main, args=(port, theirs))
    receiver.start()
    assert ours.recv() == "ready"
    with tempfile.TemporaryDirectory() as tmp:
        databases = {mode: Path(tmp) / f"{mode}.db" for mode in MODES}
        pairs = {
            mode: asyncio.run(_setup(f"sqlite+aiosqlite:///{db}", args.pairs,
                                     f"http://127.0.0.1:{port}/hook" if mode != "base" else None))
            for mode, db in databases.items()
        }  # fmt: skip
        runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
        for n in range(args.reps):
            order = MODES if n % 2 == 0 else MODES[::-1]
            for mode in order:
                run = _run(databases[mode], pairs[mode], args, workers=mode != "enqueue")
                runs[mode].append(run)
                log(f"round {n + 1} {mode}: {run['rate']:.0f} msg/s")
        outbox = _outbox(databases["hooks"])
    ours.send("report")
    received = ours.recv()
    receiver.join(timeout=10)
    results = {
        "command": "python bench/webhooks.py " + " ".join(sys.argv[1:]),
        "base": runs["base"],
        "hooks": runs["hooks"],
        "enqueue": runs["enqueue"],
        "enqueue_median": statistics.median(r["rate"] for r in runs["enqueue"]),
        "base_median": statistics.median(r["rate"] for r in runs["base"]),
        "hooks_median": statistics.median(r["rate"] for r in runs["hooks"]),
        "received": received,
        "outbox": outbox,
        "machine": machine_info(),
    }
    _write(results)
    log(f"with/without = {results['hooks_median'] / results['base_median']:.3f}")


if __name__ == "__main__":
    main()
