"""Attack family 9: the largest pages of the largest messages, asked at full speed, as
message pages and as event pages.

Documented (docs/protocol.md "Limits" and "Rate limits"): a page of messages holds at most
``limit`` (500) messages and stops before the one that would take its bodies past 1 MiB, a
page of events stops at 1 MiB of event JSON, and what a user is served is charged to its
read budget (``read_kib``: 4 MiB a second per session, 8 per user), refused with 429 once
spent; a user's reads take turns, paced at that rate, so readers at once wait rather than
read their second's budget back to back.

Measured on one SQLite node, eight readers of one user: before the byte bound a page was
500 x 60 KB = 30 MB read and held at once. With it, and before the budget, the request
limit let ~50 pages a second through, each ~18 ms of CPU (SQLite walked every body's
overflow pages to reach the columns stored after it, fixed by migration 0010): the server
held a core and a legitimate pair's p50 was ~1 s. With both, ~12 pages a second pass.
Event pages were worse: SQLite's window over the page copied every payload into a
temporary table, ~80 ms a page, and the pair's p50 was ~1.9 s (p99 4 s).
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import connect

from tests.abuse.conftest import Figures, LegitChat, Target, User

BODY = "x" * 60_000  # under the 64 KiB a message may carry
MESSAGES = 500  # a whole page's worth, the most ``limit`` allows
READERS = 8
ATTACK_SECONDS = 4.0
PAGE_BYTES = 1024 * 1024
USER_BUDGET = 8 * 1024 * 1024  # read_kib per user and second, by default
CONVERSATIONS = 100  # a whole page of them, the most ``limit`` allows


async def _fill(http: httpx.AsyncClient, writers: list[User], conversation_id: str) -> None:
    """MESSAGES large messages, sent as fast as the message rate limit lets them in."""
    path = f"/v1/conversations/{conversation_id}/messages"
    ids = iter([str(uuid.uuid4()) for _ in range(MESSAGES)])

    async def send(writer: User) -> None:
        for message_id in ids:
            body = {"id": message_id, "parts": [{"mime_type": "text/plain", "body": BODY}]}
            while True:
                sent = await http.post(path, json=body, headers=writer.headers)
                if sent.status_code != 429:
                    break
                await asyncio.sleep(float(sent.json()["error"]["data"]["retry_after"]))
            assert sent.status_code == 201, sent.text

    await asyncio.gather(*(send(w) for w in writers for _ in range(2)))


Check = Callable[[dict[str, Any]], int]
"""Asserts what a served page must be; returns the bytes the bound counts."""


def _message_page(page: dict[str, Any]) -> int:
    positions = [m["position"] for m in page["messages"]]
    assert positions == list(range(1, len(positions) + 1))
    assert page["has_more"] is True
    return sum(len(p["body"]) for m in page["messages"] for p in m["parts"])


def _conversation_page(page: dict[str, Any]) -> int:
    assert len(page["conversations"]) == CONVERSATIONS  # small ones: all fit in one page
    assert page["next_cursor"] is None
    return len(orjson.dumps(page["conversations"]))


def _event_page(page: dict[str, Any]) -> int:
    cursors = [e["cursor"] for e in page["events"]]
    assert cursors == list(range(1, len(cursors) + 1))
    assert page["has_more"] is True
    return sum(len(orjson.dumps(e["event"])) for e in page["events"])


Setup = Callable[[httpx.AsyncClient, list[User]], Awaitable[str]]
"""Fills what the attack reads, as the attacker's sessions; returns the page's URL."""


async def _attack(
    target: Target,
    http: httpx.AsyncClient,
    chat: LegitChat,
    figures: Figures,
    setup: Setup,
    check: Check,
    *,
    full: int,
) -> None:
    """Eight readers of one user (four sessions) ask for the page over and over."""
    sessions = [await target.sign_in(http, "mallory") for _ in range(READERS // 2)]
    url = await setup(http, sessions)
    statuses: dict[int, int] = {}
    biggest = total = 0

    async def read(reader: User) -> None:
        nonlocal biggest, total
        async with httpx.AsyncClient(base_url=target.url, timeout=60) as own:
            start = time.monotonic()
            while time.monotonic() - start < ATTACK_SECONDS:
                got = await own.get(url, headers=reader.headers)
                statuses[got.status_code] = statuses.get(got.status_code, 0) + 1
                if got.status_code == 429:
                    assert got.json()["error"]["id"] == "rate_limited"
                    continue
                assert got.status_code == 200, got.text[:300]
                served = check(got.json())
                assert served <= PAGE_BYTES
                biggest = max(biggest, served)
                total += served

    async with chat.during():
        started = time.monotonic()
        await asyncio.gather(*(read(sessions[n % len(sessions)]) for n in range(READERS)))
        windows = math.ceil(time.monotonic() - started) + 1
    figures.attacker_sent = sum(statuses.values())
    figures.refused("429", statuses.get(429, 0))
    assert statuses.get(200, 0) > 0
    # The read budget bit (refused or paced), not only the request limit (~50 pages a
    # second): a second's budget per window the attack touched, and a page per reader
    # that began within budget.
    assert total <= windows * USER_BUDGET + READERS * PAGE_BYTES, (total, windows, statuses)
    assert biggest >= full  # the pages were as full as the test meant them to be
    chat.assert_unharmed()


def _large_messages(target: Target, path: str) -> Setup:
    async def setup(http: httpx.AsyncClient, sessions: list[User]) -> str:
        conversation_id = await target.conversation(http, sessions[0], ["mallory-alt"])
        await _fill(http, sessions, conversation_id)
        return path.format(conversation_id=conversation_id)

    return setup


ALMOST_FULL = PAGE_BYTES - len(BODY) - 1024


async def test_pages_of_the_largest_messages_at_full_speed(
    target: Target, http: httpx.AsyncClient, chat: LegitChat, figures: Figures
) -> None:
    path = f"/v1/conversations/{{conversation_id}}/messages?after=0&limit={MESSAGES}"
    setup = _large_messages(target, path)
    await _attack(target, http, chat, figures, setup, _message_page, full=ALMOST_FULL)


async def test_event_pages_of_the_largest_messages_at_full_speed(
    target: Target, http: httpx.AsyncClient, chat: LegitChat, figures: Figures
) -> None:
    setup = _large_messages(target, "/v1/events?after=0&limit=1000")
    await _attack(target, http, chat, figures, setup, _event_page, full=ALMOST_FULL)


async def test_full_conversation_lists_at_full_speed(
    target: Target, http: httpx.AsyncClient, chat: LegitChat, figures: Figures
) -> None:
    """A page of 100 small conversations is small (~50 KB) but was ~75 ms of CPU: eight
    readers got 55 pages in 4 s and the pair's p50 was 1.7 s (p99 3.8 s). Its statements
    prepared, a page is ~13 ms, and by bytes alone a user could still ask for over a
    hundred a second: each conversation counts 8 KiB of the read budget besides."""

    async def setup(http: httpx.AsyncClient, sessions: list[User]) -> str:
        for n in range(CONVERSATIONS):
            owner = sessions[n % len(sessions)]
            while True:
                made = await http.post(
                    "/v1/conversations",
                    json={"participants": [f"mallory-{n}"]},
                    headers=owner.headers,
                )
                if made.status_code != 429:
                    break
                await asyncio.sleep(float(made.json()["error"]["data"]["retry_after"]))
            assert made.status_code == 201, made.text
        return f"/v1/conversations?limit={CONVERSATIONS}"

    await _attack(target, http, chat, figures, setup, _conversation_page, full=10_000)


async def test_sockets_reopened_to_replay_the_stream_at_full_speed(
    target: Target, http: httpx.AsyncClient, chat: LegitChat, figures: Figures
) -> None:
    """A socket opened at ``after=0`` replays the stream: it asks for nothing, so there is
    nothing to refuse, but its replay pages were read unlimited, in the queue live
    deliveries are read through. Eight readers reopening sockets and reading 20 frames of
    60 KB events each opened 42-57 in 4 s and put the pair's p50 at 1.4-1.9 s. A replay
    now waits for its user's read budget (``ReplayPacer``), and a user's pages take turns:
    paced alone, the eight woke together each second and read 8 MiB back to back, the
    pair's p99 201-260 ms (241-650 on busier runs); in paced turns 18-25 ms."""
    sessions = [await target.sign_in(http, "mallory") for _ in range(READERS // 2)]
    await _large_messages(target, "")(http, sessions)
    opened = 0
    frames = 0

    async def replay(reader: User) -> None:
        nonlocal opened, frames
        url = f"{target.ws_url}/v1/websocket?after=0"
        start = time.monotonic()
        while time.monotonic() - start < ATTACK_SECONDS:
            async with connect(url, additional_headers=reader.headers, max_size=None) as ws:
                opened += 1
                hello = orjson.loads(await ws.recv())
                assert hello["type"] == "hello"
                for _ in range(20):  # the first of the replay, as fast as it comes
                    try:
                        await asyncio.wait_for(ws.recv(), ATTACK_SECONDS)
                    except TimeoutError:
                        break  # paced: this socket waits for the budget
                    frames += 1

    async with chat.during():
        await asyncio.gather(*(replay(sessions[n % len(sessions)]) for n in range(READERS)))
    figures.attacker_sent = opened
    assert frames > 0
    chat.assert_unharmed()
