"""Attack family 2: PATCH after PATCH, growing a conversation's metadata.

Documented (docs/protocol.md "Conversations", "Rate limits"): metadata is at most 16 KiB as
canonical JSON, and so is any one change (413 ``metadata_too_large``); 10 PATCHes a second
per session (429 ``rate_limited``); ``conversation.updated`` carries the change, not the
whole metadata, so the other participants' streams grow by the change only. A refused
PATCH still counts, so at full speed the attacker is stopped by the rate limit after 10; an
accomplice pacing PATCHes under the limit is stopped by the budget.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.abuse.conftest import Figures, LegitChat, Target, User

MAX_METADATA = 16 * 1024
ATTACK_SECONDS = 3.0


async def test_metadata_patches_growing_without_end(
    target: Target, http: httpx.AsyncClient, chat: LegitChat, figures: Figures
) -> None:
    mallory = await target.sign_in(http, "mallory")
    trudy = await target.sign_in(http, "trudy")  # her accomplice, at a pace the limits allow
    conversation_id = await target.conversation(http, mallory, ["bob", "trudy"])
    path = f"/v1/conversations/{conversation_id}"
    outcomes: list[str] = []

    async def patch(user: User, key: str, size: int) -> str:
        change = {"set": {key: "x" * size}}
        answer = await http.patch(path, json={"metadata": change}, headers=user.headers)
        outcome = "ok" if answer.is_success else str(answer.json()["error"]["id"])
        outcomes.append(outcome)
        return outcome

    async with chat.during():
        start = time.monotonic()
        while time.monotonic() - start < ATTACK_SECONDS:  # full speed: 429 after 10
            await patch(mallory, f"m{len(outcomes)}", 1024)
        for n in range(40):  # under the rate limit, until the budget refuses
            if await patch(trudy, f"t{n}", 1024) == "metadata_too_large":
                break
            await asyncio.sleep(0.15)
        await patch(trudy, "one", MAX_METADATA)  # one change over the budget on its own
    figures.attacker_sent = len(outcomes)
    for outcome in set(outcomes) - {"ok"}:
        figures.refused(outcome, outcomes.count(outcome))
    assert {"rate_limited", "metadata_too_large"} <= set(outcomes), set(outcomes)
    assert set(outcomes) <= {"ok", "rate_limited", "metadata_too_large"}
    assert outcomes[-2:] == ["metadata_too_large"] * 2
    assert outcomes.count("ok") <= MAX_METADATA // 1024
    seen = (await http.get(path, headers=chat.bob.headers)).json()["metadata"]
    assert len(str(seen)) <= MAX_METADATA + 1024
    events = (await http.get("/v1/events?after=0&limit=1000", headers=chat.bob.headers)).json()
    updates = [e for e in events["events"] if e["event"]["type"] == "conversation.updated"]
    assert len(updates) == outcomes.count("ok")
    assert max(len(str(e)) for e in updates) < 2048  # the change, not the whole metadata
    chat.assert_unharmed()
