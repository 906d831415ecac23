"""A fresh device syncing a big account: time and peak memory of the SDK's first sync.

    .venv/bin/python bench/sync.py                      # 100 conversations x 1,000 messages
    .venv/bin/python bench/sync.py --conversations 10 --messages 200   # quick check

What is measured: a *new* :class:`chinwag.client.Client` (empty store directory) in its own
process, from ``authenticate()`` to ``wait_until_synced()`` with ``SyncPolicy.all()``:
nonce, identity token, session, the conversation list, every message page (500 a page,
4 conversations at a time) and the bulk inserts into the device's SQLite store. Peak RSS
is that process's (``resource.getrusage`` high-water mark, cross-checked by psutil
samples); the server runs in another process (``chinwag serve`` on SQLite) and is not
counted.

Seeding is not measured: conversations and their first message go through the REST API
(so the server's own rules create them), then the remaining messages are bulk-inserted
straight into the server's SQLite tables with the server stopped, positions dense, exactly
as ``send_message`` would have stored them.

Results: ``bench/results/sync.md`` (table) and ``bench/results/sync.png`` (progress and RSS
over time).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import REPO, ServerProcess, machine_info

RESULTS = Path(__file__).resolve().parent / "results"
CHINWAG = Path(sys.executable).with_name("chinwag")


def create_app(database_url: str) -> str:
    out = subprocess.run(
        [str(CHINWAG), "apps", "create", "sync bench", "--json", "--database-url", database_url],
        check=True,
        capture_output=True,
    )
    body = json.loads(out.stdout)
    return str(body["app_id"])


async def session_for(http: httpx.AsyncClient, app_id: str, user_id: str) -> str:
    nonce = (await http.post("/v1/nonces", json={"app_id": app_id})).json()["nonce"]
    token = (
        await http.post(
            "/v1/dev/identity_tokens", json={"app_id": app_id, "user_id": user_id, "nonce": nonce}
        )
    ).json()["identity_token"]
    created = await http.post("/v1/sessions", json={"app_id": app_id, "identity_token": token})
    created.raise_for_status()
    return str(created.json()["session_token"])


async def seed_rest(url: str, app_id: str, conversations: int) -> list[str]:
    """Conversations and their first message, through the API."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        token = await session_for(http, app_id, "reader")
        headers = {"Authorization": f"Bearer {token}"}
        ids = []
        for i in range(conversations):
            conv = await http.post(
                "/v1/conversations",
                json={"participants": ["reader", f"peer-{i}"], "metadata": {"title": f"#{i}"}},
                headers=headers,
            )
            conv.raise_for_status()
            cid = conv.json()["id"]
            sent = await http.post(
                f"/v1/conversations/{cid}/messages",
                json={"id": str(uuid.uuid4()), "parts": [{"mime_type": "text/plain", "body": "1"}]},
                headers=headers,
            )
            sent.raise_for_status()
            ids.append(cid)
        return ids


def seed_bulk(
    db_path: Path, app_id: str, conversation_ids: list[str], per_conversation: int
) -> None:
    """The other messages, straight into the server's tables (server stopped)."""
    conn = sqlite3.connect(db_path)
    pks = dict(conn.execute("SELECT user_id, pk FROM users WHERE app_id = ?", (app_id,)))
    now = time.time()
    with conn:
        for i, cid in enumerate(conversation_ids):
            senders = (pks["reader"], pks[f"peer-{i}"])
            rows = []
            for position in range(2, per_conversation + 1):
                body = f"message {position} of conversation {i}: " + "lorem ipsum " * 4
                parts = orjson.dumps([{"mime_type": "text/plain", "body": body}]).decode()
                rows.append(
                    (str(uuid.uuid4()), app_id, cid, position, senders[position % 2], parts,
                     len(body), now + position * 1e-3)
                )  # fmt: skip
            conn.executemany(
                "INSERT INTO messages (id, app_id, conversation_id, position, sender_pk, parts,"
                " size, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            last = rows[-1]
            conn.execute(
                "UPDATE conversations SET last_position = ?, last_message_id = ?,"
                " last_message_at = ? WHERE id = ?",
                (last[3], last[0], last[7], cid),
            )
    conn.close()


async def measure(url: str, app_id: str) -> dict[str, Any]:
    """Runs in a fresh process: one new device's first sync."""
    from chinwag.client import Client, SyncProgress

    samples: list[tuple[float, int, float]] = []
    proc = psutil.Process()
    started = time.perf_counter()

    async def provider(nonce: str, needs_refresh: bool) -> str:
        async with httpx.AsyncClient(base_url=url) as http:
            answer = await http.post(
                "/v1/dev/identity_tokens",
                json={"app_id": app_id, "user_id": "reader", "nonce": nonce},
            )
            return str(answer.json()["identity_token"])

    last_print = 0.0

    def on_progress(p: SyncProgress) -> None:
        nonlocal last_print
        t = time.perf_counter() - started
        samples.append((t, p.messages, proc.memory_info().rss / 2**20))
        if t - last_print > 0.25 or p.fraction >= 1.0:
            last_print = t
            print(
                f"\r  {p.messages:>7}/{p.messages_total} messages  "
                f"{p.conversations}/{p.conversations_total} conversations  {t:5.1f} s",
                end="",
                file=sys.stderr,
                flush=True,
            )

    with tempfile.TemporaryDirectory() as store_dir:
        client = Client(url, app_id, store_dir=store_dir, identity_token_provider=provider)
        client.on("sync_progress", on_progress)
        rss_before = proc.memory_info().rss / 2**20
        async with client:
            started = time.perf_counter()
            await client.authenticate()
            await client.wait_until_synced()
            elapsed = time.perf_counter() - started
            stored = await client._need_store().count_messages()
            conversations = len(await client.conversations())
        print(file=sys.stderr)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "seconds": elapsed,
        "messages": stored,
        "conversations": conversations,
        "peak_rss_mib": peak_kib / 1024,
        "rss_before_mib": rss_before,
        "psutil_peak_sample_mib": max((s[2] for s in samples), default=rss_before),
        "samples": samples,
    }


def write_results(result: dict[str, Any], args: argparse.Namespace, seed_seconds: float) -> None:
    RESULTS.mkdir(exist_ok=True)
    info = machine_info()
    rate = result["messages"] / result["seconds"]
    ok_time = "yes" if result["seconds"] < 10 else "NO"
    ok_mem = "yes" if result["peak_rss_mib"] < 200 else "NO"
    lines = [
        "# First sync of a fresh device",
        "",
        f"Command: `.venv/bin/python bench/sync.py --conversations {args.conversations}"
        f" --messages {args.messages}`",
        "",
        "| conversations | messages synced | time (s) | messages/s | peak RSS (MiB) | "
        "RSS before sync (MiB) | < 10 s | < 200 MB |",
        "|---:|---:|---:|---:|---:|---:|:-:|:-:|",
        f"| {result['conversations']} | {result['messages']:,} | {result['seconds']:.2f} | "
        f"{rate:,.0f} | {result['peak_rss_mib']:.0f} | {result['rss_before_mib']:.0f} | "
        f"{ok_time} | {ok_mem} |",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()) + ".",
        f"Seeding (not measured) took {seed_seconds:.1f} s.",
        "",
    ]
    (RESULTS / "sync.md").write_text("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s[0] for s in result["samples"]]
    fig, left = plt.subplots(figsize=(8, 4.5))
    left.plot(t, [s[1] for s in result["samples"]], color="tab:blue", label="messages stored")
    left.set_xlabel("seconds since authenticate()")
    left.set_ylabel("messages stored", color="tab:blue")
    right = left.twinx()
    right.plot(t, [s[2] for s in result["samples"]], color="tab:red", label="RSS (MiB)")
    right.set_ylabel("client RSS (MiB)", color="tab:red")
    right.set_ylim(0, max(200, max((s[2] for s in result["samples"]), default=0) * 1.1))
    left.set_title(
        f"chinwag SDK first sync: {result['messages']:,} messages in "
        f"{result['conversations']} conversations, {result['seconds']:.1f} s"
    )
    fig.tight_layout()
    fig.savefig(RESULTS / "sync.png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--messages", type=int, default=1000, help="per conversation")
    parser.add_argument("--measure", nargs=2, metavar=("URL", "APP_ID"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(asyncio.run(measure(*args.measure))))
        return
    with tempfile.TemporaryDirectory() as work:
        db_path = Path(work) / "server.db"
        database_url = f"sqlite+aiosqlite:///{db_path}"
        seed_started = time.perf_counter()
        print("seeding ...", file=sys.stderr)
        app_id = create_app(database_url)
        # Seeding is not measured: 100 conversations from one session would meet the
        # per-session limits (docs/protocol.md, Rate limits).
        with ServerProcess(database_url, env={"CHINWAG_RATE_LIMITS": "false"}) as server:
            ids = asyncio.run(seed_rest(server.url, app_id, args.conversations))
        seed_bulk(db_path, app_id, ids, args.messages)
        seed_seconds = time.perf_counter() - seed_started
        with ServerProcess(database_url) as server:
            print("measuring a fresh device's first sync ...", file=sys.stderr)
            child = subprocess.run(
                [sys.executable, __file__, "--measure", server.url, app_id],
                check=True,
                stdout=subprocess.PIPE,
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO / "src")},
            )
        result = json.loads(child.stdout)
    write_results(result, args, seed_seconds)
    print(
        f"{result['messages']:,} messages in {result['conversations']} conversations: "
        f"{result['seconds']:.2f} s, peak RSS {result['peak_rss_mib']:.0f} MiB "
        f"-> {RESULTS / 'sync.md'}, {RESULTS / 'sync.png'}"
    )


if __name__ == "__main__":
    main()
