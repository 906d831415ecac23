"""Attack family 7: bursts of writes from one client, refused by the rate limits (429).

The documented per-session rates (docs/protocol.md "Rate limits"): 100 messages/s and
1000/min, 10 conversations/s and 60/min, 2000 participants named a minute, 20 typing
changes/s; a refused request still counts, so hammering stays refused.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid

import httpx

from tests.abuse.attacker import Socket, tally
from tests.abuse.conftest import ALSO_ON_POSTGRES, Figures, LegitChat, Target


def allowed(rate_per_second: int, seconds: float) -> int:
    """The most a fixed, clock-aligned 1 s window lets through in ``seconds``."""
    return rate_per_second * (math.ceil(seconds) + 1)


def minutes(started: float, ended: float) -> int:
    """How many clock-aligned minute windows the wall-clock span touches: a per-minute
    limit lets its amount through in each (the same clock as the server's)."""
    return int(ended // 60) - int(started // 60) + 1


@ALSO_ON_POSTGRES
async def test_5000_message_sends_in_a_burst_on_one_socket(
    target: Target, http: httpx.AsyncClient, chat: LegitChat, figures: Figures
) -> None:
    mallory = await target.sign_in(http, "mallory")
    conversation_id = await target.conversation(http, mallory, ["bob"])
    socket = await Socket.open(target, mallory)
    async with chat.during():
        start, wall = time.monotonic(), time.time()
        for n in range(5000):
            parts = [{"mime_type": "text/plain", "body": f"spam {n}"}]
            data = {"conversation_id": conversation_id, "id": str(uuid.uuid4()), "parts": parts}
            await socket.send("message.send", data)
        counts = tally(figures, await socket.answered())
        elapsed = time.monotonic() - start
    await socket.close()
    per_minute = 1000 * minutes(wall, time.time())
    assert set(counts) == {"ok", "rate_limited"}, counts
    assert counts["ok"] <= min(allowed(100, elapsed), per_minute), (counts, elapsed)
    assert counts["rate_limited"] >= 5000 - counts["ok"]
    refused = next(r for r in socket.responses if not r["ok"])
    assert 0 < refused["error"]["data"]["retry_after"] <= 60
    chat.assert_unharmed()


async def test_300_conversation_creations(
    target: Target, http: httpx.AsyncClient, chat: LegitChat, figures: Figures
) -> None:
    mallory = await target.sign_in(http, "mallory")
    statuses: list[int] = []
    async with chat.during():
        start, wall = time.monotonic(), time.time()
        for n in range(300):  # one client: the next request as soon as the last is answered
            body = {"participants": [f"victim-{n}"]}
            made = await http.post("/v1/conversations", json=body, headers=mallory.headers)
            statuses.append(made.status_code)
            if made.status_code == 429:
                assert made.json()["error"]["id"] == "rate_limited"
                assert int(made.headers["Retry-After"]) >= 1
        elapsed = time.monotonic() - start
    per_minute = 60 * minutes(wall, time.time())
    figures.attacker_sent = len(statuses)
    figures.refused(429, statuses.count(429))
    assert set(statuses) == {201, 429}
    assert statuses.count(201) <= min(allowed(10, elapsed), per_minute), (statuses, elapsed)
    chat.assert_unharmed()


async def test_posts_naming_999_new_users(
    target: Target, http: httpx.AsyncClient, chat: LegitChat, figures: Figures
) -> None:
    mallory = await target.sign_in(http, "mallory")
    statuses: list[int] = []
    async with chat.during():
        wall = time.time()
        for round_ in range(5):
            body = {"participants": [f"made-up-{round_}-{n}" for n in range(999)]}
            made = await http.post("/v1/conversations", json=body, headers=mallory.headers)
            statuses.append(made.status_code)
    figures.attacker_sent = len(statuses)
    figures.refused(429, statuses.count(429))
    windows = minutes(wall, time.time())
    # 2000 participants a minute per session: two such conversations, then 429 (two more
    # if a busy machine stretched the five across a minute's end).
    if windows == 1:
        assert statuses == [201, 201, 429, 429, 429], statuses
    assert statuses[:2] == [201, 201], statuses
    assert 429 in statuses, statuses
    assert statuses.count(201) <= 2 * windows, (statuses, windows)
    one_more = {"participants": ["x", *(f"y{n}" for n in range(1000))]}
    too_many = await http.post("/v1/conversations", json=one_more, headers=chat.bob.headers)
    assert too_many.status_code in (413, 422), too_many.text  # over max_participants
    chat.assert_unharmed()


async def test_10000_typing_changes_to_a_20_member_conversation(
    target: Target, http: httpx.AsyncClient, chat: LegitChat, figures: Figures
) -> None:
    mallory = await target.sign_in(http, "mallory")
    members = ["bob", *(f"member-{n}" for n in range(18))]
    conversation_id = await target.conversation(http, mallory, members)
    socket = await Socket.open(target, mallory)
    bobs_phone = await Socket.open(target, chat.bob)  # what a member's device is sent
    async with chat.during():
        start = time.monotonic()
        for n in range(10_000):
            state = "started" if n % 2 == 0 else "finished"
            await socket.send("typing.update", {"conversation_id": conversation_id, "state": state})
        counts = tally(figures, await socket.answered())
        elapsed = time.monotonic() - start
        await asyncio.sleep(0.5)  # the last coalesced change is relayed 0.3 s after the burst
    await socket.close()
    await bobs_phone.close()
    assert set(counts) == {"ok", "rate_limited"}, counts
    assert counts["ok"] <= allowed(20, elapsed)
    relayed = [f for f in bobs_phone.others if f["type"] == "signal"]
    assert relayed, "typing was not relayed at all"
    assert len(relayed) <= math.ceil((elapsed + 0.5) / 0.3) + 1, (len(relayed), elapsed)
    chat.assert_unharmed()
