"""Where a send's time goes on PostgreSQL: statements, commits and CPU per send, in-process.

Run from the repository root against an empty database::

    createdb -h 127.0.0.1 -U postgres chinwag_sends
    .venv/bin/python bench/pg_sends.py postgresql+asyncpg://postgres@127.0.0.1/chinwag_sends \
        --lanes 4 --sends 1280 --concurrency 32

It signs in ``2 x concurrency`` users and opens one 1:1 conversation per pair through the
server's handlers, then ``concurrency`` tasks each send their share of ``--sends`` through
``send_message`` (no sockets, no HTTP: the database path alone). Printed: sends/s; this
process's CPU per send; the CPU of every ``postgres`` process on the machine per send
(other users of the same server included, so an upper bound); statements per send that went
through SQLAlchemy's ``execute`` (the rest run on asyncpg directly: ``prepared_pg.py``);
round trips per send (those plus every query asyncpg ran itself, seen through its public
``add_query_logger``: BEGIN, COMMIT and pre-pings included); and sends per commit, which is
1 without group commit (``--lanes 0``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import event

from chinwag.core.keys import Alg, sign_identity_token
from chinwag.server.context import open_services
from chinwag.server.handlers import apps as app_handlers
from chinwag.server.handlers.auth import Authenticated, create_session, new_nonce
from chinwag.server.handlers.conversation_create import create_conversation
from chinwag.server.handlers.messages import send_message
from chinwag.server.services import Services
from chinwag.server.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _load import postgres_cpu

PARTS = [{"mime_type": "text/plain", "body": "hello"}]


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def pairs(services: Services, count: int) -> tuple[list[Authenticated], list[str]]:
    app, _ = await app_handlers.create_app(services, "pg sends bench")
    key = await app_handlers.add_secret(services, app.id)
    callers = []
    for i in range(2 * count):
        nonce = new_nonce(services, app.id).value
        claims = {"sub": f"u{i}", "nce": nonce, "iat": int(services.now())}
        token = sign_identity_token(claims, kid=key.record.kid, alg=Alg.HS256, secret=key.secret)
        session = await create_session(services, app.id, token)
        callers.append(Authenticated(session=session.session, user=session.user))
    conversations = []
    for i in range(0, 2 * count, 2):
        other = [callers[i + 1].user.user_id]
        made, _ = await create_conversation(
            services, callers[i], participants=other, distinct=True, metadata=None
        )
        conversations.append(str(made["id"]))
    return callers, conversations


async def main(args: argparse.Namespace) -> None:
    settings = Settings(
        database_url=args.database_url,
        auth_rate_per_second=0,
        rate_limits=False,
        pg_write_lanes=args.lanes,
    )
    async with open_services(settings) as services:
        counts = {"statements": 0, "commits": 0, "asyncpg": 0}

        trace: list[str] = []

        def statement(*call: Any) -> None:
            counts["statements"] += 1
            if args.trace:
                trace.append("sqlalchemy: " + " ".join(str(call[2]).split())[:160])

        def commit(*_: Any) -> None:
            counts["commits"] += 1

        def on_asyncpg(record: Any) -> None:
            counts["asyncpg"] += 1
            if args.trace:
                trace.append("asyncpg:    " + " ".join(str(record.query).split())[:160])

        def log_queries(dbapi_connection: Any, *_: Any) -> None:
            raw = dbapi_connection.driver_connection
            if id(raw) not in logged:
                logged[id(raw)] = raw
                raw.add_query_logger(on_asyncpg)

        logged: dict[int, Any] = {}
        event.listen(services.db.engine.sync_engine, "before_cursor_execute", statement)
        event.listen(services.db.engine.sync_engine, "commit", commit)
        event.listen(services.db.engine.sync_engine, "checkout", log_queries)
        # After the listeners: write lanes check their connections out once, in the setup.
        callers, conversations = await pairs(services, args.concurrency)
        each = args.sends // args.concurrency

        async def sender(k: int) -> None:
            for n in range(each):
                caller = callers[2 * k + n % 2]
                await send_message(services, caller, conversations[k], str(uuid.uuid4()), PARTS)

        counts.update(statements=0, commits=0, asyncpg=0)
        trace.clear()
        pg_before, cpu_before, started = postgres_cpu(), own_cpu(), time.perf_counter()
        await asyncio.gather(*(sender(k) for k in range(args.concurrency)))
        wall = time.perf_counter() - started
        sent = each * args.concurrency
        server = (own_cpu() - cpu_before) / sent * 1e6
        database = (postgres_cpu() - pg_before) / sent * 1e6
        round_trips = (counts["statements"] + counts["asyncpg"]) / sent
        replanned = await _replanned(list(logged.values())) if args.plans else []
    for line in trace:
        print(line)
    print(
        f"lanes {args.lanes}: {sent} sends, {sent / wall:.0f}/s; this process {server:.0f} µs "
        f"CPU/send; postgres processes {database:.0f} µs CPU/send; "
        f"{counts['statements'] / sent:.1f} statements/send through SQLAlchemy; "
        f"{round_trips:.1f} round trips/send; "
        f"{sent / max(1, counts['commits']):.1f} sends/commit; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    for line in replanned:
        print(line)


async def _replanned(connections: list[Any]) -> list[str]:
    """Prepared statements that PostgreSQL planned afresh more often than it reused a plan
    (``pg_prepared_statements`` is per connection): each is a planning per execution."""
    found = ["statements planned afresh more often than not (custom > generic plans):"]
    for raw in connections:
        if raw.is_closed() or raw.is_in_transaction():
            continue
        for generic, custom, sql in await raw.fetch(
            "SELECT generic_plans, custom_plans, statement FROM pg_prepared_statements"
            " WHERE custom_plans > generic_plans AND custom_plans > 5"
        ):
            found.append(f"  {generic} generic / {custom} custom: {' '.join(sql.split())[:140]}")
    return found if len(found) > 1 else [found[0] + " none"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("database_url")
    parser.add_argument("--lanes", type=int, default=4, help="pg_write_lanes; 0: no batching")
    parser.add_argument("--sends", type=int, default=1280)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--trace",
        action="store_true",
        help="print every round trip (try --sends 2 --concurrency 1)",
    )
    parser.add_argument(
        "--plans", action="store_true", help="list the statements PostgreSQL kept replanning"
    )
    asyncio.run(main(parser.parse_args()))
